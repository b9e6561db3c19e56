/* tq1_0 on AVX2, 32 values per segment. Segments 0-4 are qs[0:32] digit k (values 32k..); then
 *   seg 5: [qs1 | qs1] x [1 | 3]      values 160..191  (qs1 = qs[32:48])
 *   seg 6: [qs1 | qs1] x [9 | 27]     values 192..223
 *   seg 7: [qs1 | qh x4] x [81 | 1,3,9,27 per 4 bytes]   values 224..255
 * Digit k of a byte is ((byte * 3^k mod 256) * 3) >> 8. decode() gets it with 16-bit multiplies (the prefill
 * path, decoded once per 4-row tile); the few-token path steps t_k = byte * 3^k mod 256 through segments 0-4 with
 * byte adds (t_(k+1) = 3 t_k) and compares it, in about two thirds of decode()'s time (AVX2 has no byte multiply). */
#include "kernels.h"
#if defined(__x86_64__)
#include "avx2.h"

#define BLOCK_VALUES TL_TQ1_0_VALUES
#define BLOCK_BYTES TL_TQ1_0_BYTES

static const int16_t POW3[8][16] __attribute__((aligned(32))) = {
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3},
    {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9},
    {27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27},
    {81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81},
    {1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3},
    {9, 9, 9, 9, 9, 9, 9, 9, 27, 27, 27, 27, 27, 27, 27, 27},
    {81, 81, 81, 81, 81, 81, 81, 81, 1, 1, 3, 3, 9, 9, 27, 27},
};

static inline __m256i decode(const uint8_t *block, int seg) {
    __m256i src;
    if (seg < 5) src = _mm256_loadu_si256((const __m256i *)block);
    else {
        __m128i qs1 = _mm_loadu_si128((const __m128i *)(block + 32));
        __m128i qh = _mm_set1_epi32(block[48] | block[49] << 8 | block[50] << 16 | (int32_t)((uint32_t)block[51] << 24));
        src = _mm256_set_m128i(seg < 7 ? qs1 : qh, qs1);
    }
    __m256i pow3 = _mm256_load_si256((const __m256i *)POW3[seg]);
    // low bytes: the 16-bit product's low byte is byte * 3^k mod 256; moved to the top, mulhi by 3 gives the digit
    __m256i lo = _mm256_mulhi_epu16(_mm256_slli_epi16(_mm256_mullo_epi16(src, pow3), 8), _mm256_set1_epi16(3));
    // high bytes: multiplied alone (no carry from below), the digit comes out in the low byte; move it up
    __m256i hi = _mm256_mullo_epi16(_mm256_and_si256(src, _mm256_set1_epi16((short)0xFF00)), pow3);
    hi = _mm256_slli_epi16(_mm256_mulhi_epu16(hi, _mm256_set1_epi16(3)), 8);
    return _mm256_or_si256(lo, hi);
}

/* The digit (0..2) of each byte t_k, given s = t_k - 128 as signed bytes: (t >= 86) + (t >= 171). Stepping s
 * instead of t costs nothing: 3 (t - 128) = 3 t - 128 (mod 256). */
static inline __m256i digit(__m256i s) {
    __m256i ge86 = _mm256_cmpgt_epi8(s, _mm256_set1_epi8(86 - 128 - 1)), ge171 = _mm256_cmpgt_epi8(s, _mm256_set1_epi8(171 - 128 - 1));
    return _mm256_abs_epi8(_mm256_add_epi8(ge86, ge171));
}

/* R rows x T tokens into out[token][row]; each digit vector is dotted with every token. A block's u8 x s8 pair sums
 * (|2 * 2 * 128| each) add up in int16 before one widening to int32 per block: 8 x 512 cannot overflow. */
static inline __attribute__((always_inline)) void step_tile(const uint8_t *src, int64_t row_bytes, int R, const int8_t *x,
                                                            int64_t cols, int T, int32_t out[4][4]) {
    __m256i acc[4][4];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_si256();
    for (int64_t blk = 0; blk < cols / BLOCK_VALUES; blk++) {
        const uint8_t *b = src + blk * BLOCK_BYTES;
        const int8_t *xb = x + blk * BLOCK_VALUES;
        __m256i s[4], sum16[4][4];
        for (int r = 0; r < R; r++) {
            prefetch_l2(b + (r + PREFETCH_TILES * R) * row_bytes);
            s[r] = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(b + r * row_bytes)), _mm256_set1_epi8((char)0x80));
            for (int t = 0; t < T; t++) sum16[r][t] = _mm256_setzero_si256();
        }
        for (int seg = 0; seg < 8; seg++) {
            // segments 0-4 from the stepped bytes, 5-7 by decode()
            __m256i codes[4];
            for (int r = 0; r < R; r++) codes[r] = seg < 5 ? digit(s[r]) : decode(b + r * row_bytes, seg);
            for (int t = 0; t < T; t++) {
                __m256i xv = _mm256_loadu_si256((const __m256i *)(xb + t * cols + 32 * seg));
                for (int r = 0; r < R; r++) sum16[r][t] = _mm256_add_epi16(sum16[r][t], _mm256_maddubs_epi16(codes[r], xv));
            }
            for (int r = 0; seg < 4 && r < R; r++) s[r] = _mm256_add_epi8(s[r], _mm256_add_epi8(s[r], s[r]));
        }
        for (int r = 0; r < R; r++)
            for (int t = 0; t < T; t++) acc[r][t] = _mm256_add_epi32(acc[r][t], _mm256_madd_epi16(sum16[r][t], _mm256_set1_epi16(1)));
    }
    for (int t = 0; t < T; t++) {
        if (R == 4) vec_sum4_store(out[t], acc[0][t], acc[1][t], acc[2][t], acc[3][t]);
        else out[t][0] = vec_sum(acc[0][t]);
    }
}
#define FUSED_TILE step_tile
#define FUSED_MAX_COLS TL_MAX_ROW
#define KERNEL tl_tq1_0_avx2
#include "ternary_tile.h"
#endif
