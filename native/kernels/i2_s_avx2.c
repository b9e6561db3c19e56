/* i2_s on AVX2: the 32-byte block shifted right by 6 - 2n gives the codes of values 32n .. 32n+31. Compiled again with
 * AVX_VNNI defined by i2_s_avxvnni.c, for AVX-VNNI's dot (avx2.h). */
#include "kernels.h"
#if defined(__x86_64__)
#include "avx2.h"

#define BLOCK_VALUES TL_I2_S_VALUES
#define BLOCK_BYTES TL_I2_S_BYTES
static inline __m256i decode(const uint8_t *block, int seg) {
    __m256i bytes = _mm256_loadu_si256((const __m256i *)block);
    return _mm256_and_si256(_mm256_srli_epi16(bytes, 6 - 2 * seg), _mm256_set1_epi8(3));
}
#define FUSED_MANY_TOKENS
#ifdef AVX_VNNI
#define KERNEL tl_i2_s_avxvnni
#define GROUPED_KERNEL tl_i2_s_r4_avxvnni
#else
#define KERNEL tl_i2_s_avx2
#define GROUPED_KERNEL tl_i2_s_r4_avx2
#endif
#include "ternary_tile.h"
#endif
