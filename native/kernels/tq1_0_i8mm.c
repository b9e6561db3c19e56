/* tq1_0 on ARM64 with i8mm (smmla for many tokens, sdot for few; ARMv8.6-A+): tq1_0_neon.c at NEON level 2. */
#include "kernels.h"
#if defined(TL_NEON_I8MM)
#define NEON_LEVEL 2
#include "tq1_0_neon.c"
#endif
