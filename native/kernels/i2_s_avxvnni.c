/* i2_s on AVX2 with AVX-VNNI's 4-byte dot: i2_s_avx2.c's decode and tiles, the dot from avx2.h. Every ternary type runs
 * through these on such a CPU unless a file's layout is kept (tq2_0 and tq1_0 are read as i2_s on x86 without AVX-512
 * VBMI, docs/format.md). */
#define AVX_VNNI
#include "i2_s_avx2.c"
