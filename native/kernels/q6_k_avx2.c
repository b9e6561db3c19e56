/* Q6_K weights x f32 activations on AVX2: a block's 256 6-bit codes assembled as bytes 32 at a time (low
 * nibbles from ql, 2 high bits from qh), then 8 at a time widened to f32 and scaled by (d * scale) as the reference. */
#include "kernels.h"
#if defined(__x86_64__)
#include "avx2.h"

/* 8 signed codes (the low 8 bytes of q) to f32, times their sub-block's d * scale */
static inline __m256 scaled8(__m128i q, __m256 dl) { return _mm256_mul_ps(dl, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q))); }
/* lane j of two 8-float vectors (j = 0..15) in every lane */
static inline __m256 lane(__m256 a, __m256 b, int j) { return _mm256_permutevar8x32_ps(j < 8 ? a : b, _mm256_set1_epi32(j % 8)); }

static inline void unpack(const uint8_t *block, float *values) {
    const uint8_t *ql = block, *qh = block + 128;
    __m256 d = _mm256_set1_ps(_cvtsh_ss(load_u16(block + 208)));
    __m256 dla = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(block + 192)))));
    __m256 dlb = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(block + 200)))));
    __m256i nib = _mm256_set1_epi8(15), two = _mm256_set1_epi8(3), off = _mm256_set1_epi8(32);
    for (int half = 0; half < 2; half++) /* values 128 * half + r, r = 32 * i + 64 * n (n: 0 low, 1 high nibble) */
        for (int i = 0; i < 2; i++) {
            __m256i l = _mm256_loadu_si256((const __m256i *)(ql + 64 * half + 32 * i));
            __m256i h = _mm256_loadu_si256((const __m256i *)(qh + 32 * half));
            __m256i hl = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * i), two), 4);
            __m256i hh = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * i + 4), two), 4);
            __m256i q[2] = {_mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(l, nib), hl), off),
                            _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l, 4), nib), hh), off)};
            for (int n = 0; n < 2; n++) { /* 32 values from sub-blocks s, s + 1 */
                int v = 128 * half + 64 * n + 32 * i, s = v / 16;
                __m128i lo = _mm256_castsi256_si128(q[n]), hi = _mm256_extracti128_si256(q[n], 1);
                __m256 da = lane(dla, dlb, s), db = lane(dla, dlb, s + 1);
                _mm256_store_ps(values + v, scaled8(lo, da));
                _mm256_store_ps(values + v + 8, scaled8(_mm_unpackhi_epi64(lo, lo), da));
                _mm256_store_ps(values + v + 16, scaled8(hi, db));
                _mm256_store_ps(values + v + 24, scaled8(_mm_unpackhi_epi64(hi, hi), db));
            }
        }
}
#define FTILE_ROWS 2 /* 16 ymm registers: 4 rows x 2 ymm of accumulators and values would spill */
#define BT_BLOCK_VALUES TL_QK_K
#define BT_BLOCK_BYTES TL_Q6_K_BYTES
#define BT_KERNEL tl_q6_k_avx2
#include "block_tile.h"
#endif
