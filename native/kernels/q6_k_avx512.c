/* Q6_K weights x f32 activations on AVX-512: a block's 256 6-bit codes assembled as bytes 64 at a time (low
 * nibbles from ql, 2 high bits from qh), then 16 at a time widened to f32 and scaled by (d * scale) as the reference. */
#include "kernels.h"
#if defined(__x86_64__)
#include "avx512.h"

/* 16 signed codes (one 128-bit lane of q) to f32, times their sub-block's d * scale */
#define SCALED(q, lane, dl) _mm512_mul_ps(dl, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(q, lane))))

static inline void unpack(const uint8_t *block, float *values) {
    const uint8_t *ql = block, *qh = block + 128;
    __m512 d = _mm512_set1_ps(_cvtsh_ss(load_u16(block + 208)));
    __m512 dl = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(block + 192)))));
    __m512i nib = _mm512_set1_epi8(15), two = _mm512_set1_epi8(3), off = _mm512_set1_epi8(32);
    for (int half = 0; half < 2; half++) { /* values 128 * half + r: r < 64 low nibbles, r >= 64 high nibbles */
        __m512i l = _mm512_loadu_si512(ql + 64 * half);
        __m512i h = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(qh + 32 * half)));
        __m512i h01 = _mm512_and_si512(_mm512_srlv_epi16(h, halves16(0, 2)), two); /* r = 0..63 */
        __m512i h23 = _mm512_and_si512(_mm512_srlv_epi16(h, halves16(4, 6)), two); /* r = 64..127 */
        /* signed codes (6-bit value - 32) of r = 0..63 and 64..127 */
        __m512i q0 = _mm512_sub_epi8(_mm512_or_si512(_mm512_and_si512(l, nib), _mm512_slli_epi16(h01, 4)), off);
        __m512i q1 = _mm512_sub_epi8(_mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), nib), _mm512_slli_epi16(h23, 4)), off);
        float *v = values + 128 * half;
        int s = 8 * half; /* the half's first sub-block */
        _mm512_store_ps(v + 0, SCALED(q0, 0, _mm512_permutexvar_ps(_mm512_set1_epi32(s + 0), dl)));
        _mm512_store_ps(v + 16, SCALED(q0, 1, _mm512_permutexvar_ps(_mm512_set1_epi32(s + 1), dl)));
        _mm512_store_ps(v + 32, SCALED(q0, 2, _mm512_permutexvar_ps(_mm512_set1_epi32(s + 2), dl)));
        _mm512_store_ps(v + 48, SCALED(q0, 3, _mm512_permutexvar_ps(_mm512_set1_epi32(s + 3), dl)));
        _mm512_store_ps(v + 64, SCALED(q1, 0, _mm512_permutexvar_ps(_mm512_set1_epi32(s + 4), dl)));
        _mm512_store_ps(v + 80, SCALED(q1, 1, _mm512_permutexvar_ps(_mm512_set1_epi32(s + 5), dl)));
        _mm512_store_ps(v + 96, SCALED(q1, 2, _mm512_permutexvar_ps(_mm512_set1_epi32(s + 6), dl)));
        _mm512_store_ps(v + 112, SCALED(q1, 3, _mm512_permutexvar_ps(_mm512_set1_epi32(s + 7), dl)));
    }
}
#define BT_BLOCK_VALUES TL_QK_K
#define BT_BLOCK_BYTES TL_Q6_K_BYTES
#define FTILE_WIDE_ROWS 2
#define BT_KERNEL tl_q6_k_avx512
#include "block_tile.h"
#endif
