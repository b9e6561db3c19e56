/* Sparse-input GEMV on AVX2 (layout: sparse_ref.c). Half a tile (128 rows) at a time in 8 ymm of int16 sums:
 * each kept column's 16-bit row masks are spread to lanes (broadcast, and with the lane's bit, compare), then
 * its value is added under the +1 mask and subtracted under the -1 mask. int16 holds 255 columns, then int32. */
#include "kernels.h"
#if defined(__x86_64__)
#include "avx2.h"

enum { FLUSH = 255, HALF = TL_SPARSE_TILE / 2 };

void tl_sparse_avx2(const uint8_t *w, int64_t cols, int64_t r0, int64_t r1, const int32_t *idx, const int8_t *val,
                    int32_t k, float x_scale, float w_scale, float *y) {
    const __m256i bit = _mm256_setr_epi16(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, -32768);
    for (int64_t t0 = r0; t0 < r1; t0 += TL_SPARSE_TILE) {
        int32_t sum[TL_SPARSE_TILE] __attribute__((aligned(32))) = {0};
        const uint8_t *tile = w + (t0 / TL_SPARSE_TILE) * cols * 64;
        for (int half = 0; half < 2; half++) {
            for (int32_t i0 = 0; i0 < k; i0 += FLUSH) {
                __m256i acc[8];
                for (int g = 0; g < 8; g++) acc[g] = _mm256_setzero_si256();
                for (int32_t i = i0; i < k && i < i0 + FLUSH; i++) {
                    const uint16_t *line = (const uint16_t *)(tile + (int64_t)idx[i] * 64) + 8 * half;
                    __m256i x = _mm256_set1_epi16(val[i]);
                    for (int g = 0; g < 8; g++) {
                        __m256i plus = _mm256_cmpeq_epi16(_mm256_and_si256(_mm256_set1_epi16((short)line[g]), bit), bit);
                        __m256i minus = _mm256_cmpeq_epi16(_mm256_and_si256(_mm256_set1_epi16((short)line[16 + g]), bit), bit);
                        acc[g] = _mm256_sub_epi16(_mm256_add_epi16(acc[g], _mm256_and_si256(plus, x)), _mm256_and_si256(minus, x));
                    }
                }
                for (int g = 0; g < 8; g++) {
                    __m256i *s = (__m256i *)(sum + HALF * half + 16 * g);
                    s[0] = _mm256_add_epi32(s[0], _mm256_cvtepi16_epi32(_mm256_castsi256_si128(acc[g])));
                    s[1] = _mm256_add_epi32(s[1], _mm256_cvtepi16_epi32(_mm256_extracti128_si256(acc[g], 1)));
                }
            }
        }
        __m256 div = _mm256_set1_ps(x_scale), mul = _mm256_set1_ps(w_scale);
        int64_t n = r1 - t0 < TL_SPARSE_TILE ? r1 - t0 : TL_SPARSE_TILE;
        for (int64_t r = 0; r < n; r += 8) {
            __m256 v = _mm256_mul_ps(_mm256_div_ps(_mm256_cvtepi32_ps(_mm256_load_si256((const __m256i *)(sum + r))), div), mul);
            if (n - r >= 8) _mm256_storeu_ps(y + t0 + r, v);
            else {
                float tmp[8];
                _mm256_storeu_ps(tmp, v);
                for (int64_t j = 0; j < n - r; j++) y[t0 + r + j] = tmp[j];
            }
        }
    }
}
#endif
