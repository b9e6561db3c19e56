/* i2_s on AVX2 with AVX-VNNI's 4-byte dot: i2_s_avx2.c's decode and tiles, the dot from avx2.h. Every ternary type runs
 * through these on such a CPU unless a file's layout is kept (tq2_0 is read as i2_s on every x86 level, tq1_0 on those
 * without AVX-512: docs/format.md). */
#define AVX_VNNI
#include "i2_s_avx2.c"
