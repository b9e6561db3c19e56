/* i2_s on AVX-512 VNNI. Byte j of a 32-byte block holds values j, j+32, j+64, j+96 at bits 6, 4, 2, 0:
 * broadcast to both halves and shifted by (6, 4) or (2, 0) per half, it yields 64 codes of consecutive values. */
#include "kernels.h"
#if defined(__x86_64__)
#include "avx512.h"

#define BLOCK_VALUES TL_I2_S_VALUES
#define BLOCK_BYTES TL_I2_S_BYTES
static inline __m512i decode(const uint8_t *block, int seg) {
    __m512i bytes = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)block));
    __m512i shift = seg ? halves16(2, 0) : halves16(6, 4);
    return _mm512_and_si512(_mm512_srlv_epi16(bytes, shift), _mm512_set1_epi8(3));
}
#define FUSED_MANY_TOKENS
#define KERNEL tl_i2_s_avx512
#include "ternary_tile.h"
#endif
