/* tq2_0 on AVX-512 VNNI. A 32-byte chunk c of the block holds values 128c + 32n + m in bits 2n: broadcast to
 * both halves and shifted by (0, 2) or (4, 6) per half, it yields 64 codes of consecutive values. */
#include "kernels.h"
#if defined(__x86_64__)
#include "avx512.h"

#define BLOCK_VALUES TL_TQ2_0_VALUES
#define BLOCK_BYTES TL_TQ2_0_BYTES
static inline __m512i chunk_of(const uint8_t *block, int seg) {
    return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(block + 32 * (seg / 2))));
}
static inline __m512i decode(const uint8_t *block, int seg) {
    __m512i shift = seg % 2 ? halves16(4, 6) : halves16(0, 2);
    return _mm512_and_si512(_mm512_srlv_epi16(chunk_of(block, seg), shift), _mm512_set1_epi8(3));
}
/* Or only masked to bits (0, 2) or (4, 6) per half: codes times 2^bit (at most 3 * 64, still a byte for the unsigned
 * side of the dot); an int32 lane's dots (4 bytes of one half) are then multiples of its 2^bit, exactly divided back. */
#define SCALES 2
static inline __m512i decode_scaled(const uint8_t *block, int seg) {
    return _mm512_and_si512(chunk_of(block, seg), seg % 2 ? halves8(0x30, (char)0xC0) : halves8(0x03, 0x0C));
}
static inline __m512i unscale(__m512i acc, int scale) { return _mm512_srav_epi32(acc, scale ? halves32(4, 6) : halves32(0, 2)); }
#define FUSED_MANY_TOKENS
#define KERNEL tl_tq2_0_avx512
#include "ternary_tile.h"
#endif
