/* tq2_0 on AVX2 with AVX-VNNI's 4-byte dot: tq2_0_avx2.c's decode and tiles, the dot from avx2.h (for a file's own
 * layout, --mmap: the engine otherwise reads tq2_0 as i2_s, i2_s_avxvnni.c). */
#define AVX_VNNI
#include "tq2_0_avx2.c"
