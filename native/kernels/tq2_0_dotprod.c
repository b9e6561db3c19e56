/* tq2_0 on ARM64 with dotprod (sdot, ARMv8.2-A+): tq2_0_neon.c at NEON level 1. */
#include "kernels.h"
#if defined(TL_NEON_DOTPROD)
#define NEON_LEVEL 1
#include "tq2_0_neon.c"
#endif
