/* i2_s on ARM64 with dotprod (sdot, ARMv8.2-A+): i2_s_neon.c at NEON level 1. */
#include "kernels.h"
#if defined(TL_NEON_DOTPROD)
#define NEON_LEVEL 1
#include "i2_s_neon.c"
#endif
