/* Sparse-input GEMV on AVX-512 (layout: sparse_ref.c). A tile's 256 rows are 8 zmm of int16 sums; each kept
 * column adds its value under its +1 row mask and subtracts it under its -1 mask, the masks loaded straight into
 * k registers from the column's cache line. int16 holds 255 columns of |x| <= 128; then sums move to int32. */
#include "kernels.h"
#if defined(__x86_64__)
#include "avx512.h"

enum { FLUSH = 255 };

void tl_sparse_avx512(const uint8_t *w, int64_t cols, int64_t r0, int64_t r1, const int32_t *idx, const int8_t *val,
                      int32_t k, float x_scale, float w_scale, float *y) {
    for (int64_t t0 = r0; t0 < r1; t0 += TL_SPARSE_TILE) {
        int32_t sum[TL_SPARSE_TILE] __attribute__((aligned(64))) = {0};
        const uint8_t *tile = w + (t0 / TL_SPARSE_TILE) * cols * 64;
        for (int32_t i0 = 0; i0 < k; i0 += FLUSH) {
            __m512i acc[8];
            for (int g = 0; g < 8; g++) acc[g] = _mm512_setzero_si512();
            for (int32_t i = i0; i < k && i < i0 + FLUSH; i++) {
                const uint32_t *line = (const uint32_t *)(tile + (int64_t)idx[i] * 64);
                if (i + 8 < k) _mm_prefetch((const char *)(tile + (int64_t)idx[i + 8] * 64), _MM_HINT_T0);
                __m512i x = _mm512_set1_epi16(val[i]);
                for (int g = 0; g < 8; g++) {
                    acc[g] = _mm512_mask_add_epi16(acc[g], (__mmask32)line[g], acc[g], x);
                    acc[g] = _mm512_mask_sub_epi16(acc[g], (__mmask32)line[8 + g], acc[g], x);
                }
            }
            for (int g = 0; g < 8; g++) {
                __m512i *s = (__m512i *)(sum + 32 * g);
                s[0] = _mm512_add_epi32(s[0], _mm512_cvtepi16_epi32(_mm512_castsi512_si256(acc[g])));
                s[1] = _mm512_add_epi32(s[1], _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(acc[g], 1)));
            }
        }
        __m512 div = _mm512_set1_ps(x_scale), mul = _mm512_set1_ps(w_scale);
        int64_t n = r1 - t0 < TL_SPARSE_TILE ? r1 - t0 : TL_SPARSE_TILE;
        for (int64_t r = 0; r < n; r += 16) {
            __m512 v = _mm512_mul_ps(_mm512_div_ps(_mm512_cvtepi32_ps(_mm512_load_si512(sum + r)), div), mul);
            __mmask16 keep = n - r >= 16 ? 0xFFFF : (__mmask16)((1u << (n - r)) - 1);
            _mm512_mask_storeu_ps(y + t0 + r, keep, v);
        }
    }
}
#endif
