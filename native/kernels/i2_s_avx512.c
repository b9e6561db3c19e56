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
/* Or only masked to bits (6, 4) or (2, 0) per half: codes times 2^bit (at most 3 * 64, still a byte for the unsigned
 * side of the dot); an int32 lane's dots (4 bytes of one half) are then multiples of its 2^bit, exactly divided back. */
#define SCALES 2
static inline __m512i decode_scaled(const uint8_t *block, int seg) {
    __m512i bytes = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)block));
    return _mm512_and_si512(bytes, seg ? halves8(0x0C, 0x03) : halves8((char)0xC0, 0x30));
}
static inline __m512i unscale(__m512i acc, int scale) { return _mm512_srav_epi32(acc, scale ? halves32(2, 0) : halves32(6, 4)); }
#define FUSED_MANY_TOKENS
#define KERNEL tl_i2_s_avx512
#define GROUPED_KERNEL tl_i2_s_r4_avx512
#include "ternary_tile.h"
#endif
