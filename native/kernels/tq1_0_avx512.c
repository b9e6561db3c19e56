/* tq1_0 on AVX-512 VNNI. Each 64-value segment is built from the block's 16-byte lanes (qs[0:16], qs[16:32],
 * qs[32:48], qh) arranged so that its bytes times a per-lane power of 3 (mod 256) hold the wanted digits
 * in consecutive value order; digit = (t * 3) >> 8, i.e. (t >= 86) + (t >= 171).
 *   seg 0: [qs0 | qs0] x [1 | 3]          values   0..63   (qs0 = qs[0:32], digits 0, 1)
 *   seg 1: [qs0 | qs0] x [9 | 27]         values  64..127  (digits 2, 3)
 *   seg 2: [qs0 | qs1 | qs1] x [81|1|3]    values 128..191  (qs0 digit 4, qs1 = qs[32:48] digits 0, 1)
 *   seg 3: [qs1 | qs1 | qs1 | qh x4] x [9|27|81|1,3,9,27 per 4 bytes]   values 192..255
 * That decoding feeds prefill's code buffer. With few tokens the digits are never extracted: since
 * 3 t_k = 256 digit_k + t_(k+1) for t_k = byte * 3^k mod 256, sum(digit_k x) = (3 sum(t_k x) - sum(t_(k+1) x)) / 256,
 * so each block's 52 bytes, times 3 once per digit (two byte adds), are dotted with the activations as is. */
#include "kernels.h"
#if defined(__x86_64__)
#include "avx512.h"

#define BLOCK_VALUES TL_TQ1_0_VALUES
#define BLOCK_BYTES TL_TQ1_0_BYTES

/* powers of 3 per 16-bit lane (both bytes of a lane share one) for each segment */
static const int16_t POW3[4][32] __attribute__((aligned(64))) = {
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3},
    {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27},
    {81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3},
    {9, 9, 9, 9, 9, 9, 9, 9, 27, 27, 27, 27, 27, 27, 27, 27, 81, 81, 81, 81, 81, 81, 81, 81, 1, 1, 3, 3, 9, 9, 27, 27},
};

static inline __m512i decode(const uint8_t *block, int seg) {
    // the 52 payload bytes (masked: the last block of a tensor may end right after d)
    __m512i lanes = _mm512_maskz_loadu_epi8(0x000FFFFFFFFFFFFFull, block), src;
    if (seg < 2) src = _mm512_shuffle_i64x2(lanes, lanes, _MM_SHUFFLE(1, 0, 1, 0));
    else if (seg == 2) src = _mm512_shuffle_i64x2(lanes, lanes, _MM_SHUFFLE(2, 2, 1, 0));
    else {
        src = _mm512_shuffle_i64x2(lanes, lanes, _MM_SHUFFLE(3, 2, 2, 2));
        src = _mm512_mask_shuffle_epi32(src, 0xF000, src, _MM_PERM_AAAA); /* qh's 4 bytes, 4 times */
    }
    // t = byte * 3^k mod 256, per byte: 16-bit products are exact in the low byte; the high byte is
    // multiplied on its own so no carry reaches it
    __m512i pow3 = _mm512_load_si512(POW3[seg]);
    __m512i lo = _mm512_mullo_epi16(src, pow3);
    __m512i hi = _mm512_mullo_epi16(_mm512_and_si512(src, _mm512_set1_epi16((short)0xFF00)), pow3);
    __m512i t = _mm512_mask_blend_epi8(0xAAAAAAAAAAAAAAAAull, lo, hi);
    // digit = (t * 3) >> 8 = (t >= 86) + (t >= 171)
    __m512i one = _mm512_set1_epi8(1);
    __m512i codes = _mm512_maskz_mov_epi8(_mm512_cmpge_epu8_mask(t, _mm512_set1_epi8((char)86)), one);
    return _mm512_mask_add_epi8(codes, _mm512_cmpge_epu8_mask(t, _mm512_set1_epi8((char)171)), codes, one);
}

enum { PAYLOAD_MASK_BITS = 52, POW3_MAX_COLS = 32768 }; /* below that, |256 sum(digit x)| < 2^31: int32 sums wrap exactly */
static const uint64_t PAYLOAD = (1ull << PAYLOAD_MASK_BITS) - 1, QS1 = 0xFFFFull << 32, QH = 0xFull << 48;

/* The activations facing byte lanes of t_k = [qs0 (32) | qs1 (16) | qh (4) | 0]: values 32k + m, 160 + 16k + m,
 * 240 + 4k + m (qh has digits 0..3 only). */
static inline __m512i facing(const int8_t *x, int k) {
    __m512i v = k < 4 ? _mm512_loadu_si512(x + 32 * k) : _mm512_maskz_loadu_epi8(PAYLOAD & ~QH, x + 32 * k);
    v = _mm512_mask_loadu_epi8(v, QS1, x + 128 + 16 * k);
    return k < 4 ? _mm512_mask_loadu_epi8(v, QH, x + 192 + 4 * k) : v;
}

/* R rows x P (1 or 2) tokens of sum(digit x) from powers of 3 (see the top) into out[token][row]. Every loop is
 * unrolled: else GCC keeps two tokens' sums in memory and stores them every block (2-3x slower at 2 and 3 tokens). */
static inline __attribute__((always_inline)) void pow3_pass(const uint8_t *src, int64_t row_bytes, int R, const int8_t *x,
                                                            int64_t cols, int P, int first, int32_t out[4][4]) {
    __m512i a[4][2], b[4][2]; /* sum(t_k x), sum(t_(k+1) x) */
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int t = 0; t < P; t++) a[r][t] = b[r][t] = _mm512_setzero_si512();
    for (int64_t blk = 0; blk < cols / BLOCK_VALUES; blk++) {
        __m512i pow[4];
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            if (first) prefetch_l2(src + (r + PREFETCH_TILES * R) * row_bytes + blk * BLOCK_BYTES);
            pow[r] = _mm512_maskz_loadu_epi8(PAYLOAD, src + r * row_bytes + blk * BLOCK_BYTES);
        }
        const int8_t *xb = x + blk * BLOCK_VALUES;
        #pragma GCC unroll 5
        for (int k = 0; k < 5; k++) {
            __m512i xv[2];
            #pragma GCC unroll 4
            for (int t = 0; t < P; t++) xv[t] = facing(xb + t * cols, k);
            // t_(k+1) = 3 t_k mod 256, then both dotted with the activations facing digit k
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m512i next = _mm512_add_epi8(pow[r], _mm512_add_epi8(pow[r], pow[r]));
                #pragma GCC unroll 4
                for (int t = 0; t < P; t++) {
                    a[r][t] = _mm512_dpbusd_epi32(a[r][t], pow[r], xv[t]);
                    b[r][t] = _mm512_dpbusd_epi32(b[r][t], next, xv[t]);
                }
                pow[r] = next;
            }
        }
    }
    #pragma GCC unroll 4
    for (int t = 0; t < P; t++) {
        if (R == 4) {
            __m128i sa = vec_sum4(a[0][t], a[1][t], a[2][t], a[3][t]), sb = vec_sum4(b[0][t], b[1][t], b[2][t], b[3][t]);
            __m128i three_a = _mm_add_epi32(sa, _mm_add_epi32(sa, sa));
            _mm_storeu_si128((__m128i *)out[t], _mm_srai_epi32(_mm_sub_epi32(three_a, sb), 8)); /* exact: a multiple of 256 */
        } else out[t][0] = (int32_t)(3u * (uint32_t)vec_sum(a[0][t]) - (uint32_t)vec_sum(b[0][t])) / 256;
    }
}

/* R rows x T tokens, two tokens a pass (each pass reads the rows from L1 after the first). */
static inline __attribute__((always_inline)) void pow3_tile(const uint8_t *src, int64_t row_bytes, int R, const int8_t *x,
                                                            int64_t cols, int T, int32_t out[4][4]) {
    for (int t0 = 0; t0 < T; t0 += 2) {
        if (T - t0 >= 2) pow3_pass(src, row_bytes, R, x + t0 * cols, cols, 2, t0 == 0, out + t0);
        else pow3_pass(src, row_bytes, R, x + t0 * cols, cols, 1, t0 == 0, out + t0);
    }
}
/* A row of tq1_0 as codes (value + 1), for the repack into the lookup layout (tq1_0_lut_vbmi.c). */
void tl_tq1_0_avx512_codes(const uint8_t *row, int64_t cols, int8_t *codes) {
    for (int64_t b = 0; b < cols / BLOCK_VALUES; b++)
        for (int seg = 0; seg < 4; seg++) _mm512_storeu_si512(codes + b * BLOCK_VALUES + 64 * seg, decode(row + b * BLOCK_BYTES, seg));
}

#define FUSED_TILE pow3_tile
#define FUSED_MAX_COLS POW3_MAX_COLS
#define KERNEL tl_tq1_0_avx512
#include "ternary_tile.h"
#endif
