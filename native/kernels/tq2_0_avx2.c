/* tq2_0 on AVX2: chunk c (32 bytes) shifted right by 2n gives the codes of values 128c + 32n .. +32. Compiled again with
 * AVX_VNNI defined by tq2_0_avxvnni.c, for AVX-VNNI's dot (avx2.h). */
#include "kernels.h"
#if defined(__x86_64__)
#include "avx2.h"

#define BLOCK_VALUES TL_TQ2_0_VALUES
#define BLOCK_BYTES TL_TQ2_0_BYTES
static inline __m256i decode(const uint8_t *block, int seg) {
    __m256i chunk = _mm256_loadu_si256((const __m256i *)(block + 32 * (seg / 4)));
    return _mm256_and_si256(_mm256_srli_epi16(chunk, 2 * (seg % 4)), _mm256_set1_epi8(3));
}
#define FUSED_MANY_TOKENS
#ifdef AVX_VNNI
#define KERNEL tl_tq2_0_avxvnni
#else
#define KERNEL tl_tq2_0_avx2
#endif
#include "ternary_tile.h"
#endif
