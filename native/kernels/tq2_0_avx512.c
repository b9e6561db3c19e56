/* tq2_0 on AVX-512 VNNI. A 32-byte chunk c of the block holds values 128c + 32n + m in bits 2n: broadcast to
 * both halves and shifted by (0, 2) or (4, 6) per half, it yields 64 codes of consecutive values. */
#include "kernels.h"
#if defined(__x86_64__)
#include "avx512.h"

#define BLOCK_VALUES TL_TQ2_0_VALUES
#define BLOCK_BYTES TL_TQ2_0_BYTES
static inline __m512i decode(const uint8_t *block, int seg) {
    __m512i chunk = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(block + 32 * (seg / 2))));
    __m512i shift = seg % 2 ? halves16(4, 6) : halves16(0, 2);
    return _mm512_and_si512(_mm512_srlv_epi16(chunk, shift), _mm512_set1_epi8(3));
}
#define FUSED_MANY_TOKENS
#define KERNEL tl_tq2_0_avx512
#include "ternary_tile.h"
#endif
