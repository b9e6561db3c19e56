/* Sparse-input GEMV on AVX2 (layout and blocking: sparse_ref.c, sparse_avx512.c). Half a line (128 rows) at a time
 * in 8 ymm of int16 sums: each kept column's 16-bit row masks are spread to lanes (broadcast, and with the lane's
 * bit, compare), then its value is added under the +1 mask and subtracted under the -1 mask. */
#include "kernels.h"
#if defined(__x86_64__)
#include "avx2.h"

enum { BLOCK = 64 };

void tl_sparse_avx2(const uint8_t *w, int64_t rows, const int32_t *idx, const int8_t *val, int32_t k, int32_t *sum) {
    const __m256i bit = _mm256_setr_epi16(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, -32768);
    int64_t tiles = (rows + TL_SPARSE_TILE - 1) / TL_SPARSE_TILE, column_bytes = tiles * 64;
    for (int32_t i0 = 0; i0 < k; i0 += BLOCK) {
        int32_t n = k - i0 < BLOCK ? k - i0 : BLOCK, n_next = k - i0 - n < BLOCK ? k - i0 - n : BLOCK;
        for (int64_t t = 0; t < tiles; t++)
            for (int half = 0; half < 2; half++) {
                __m256i acc[8];
                for (int g = 0; g < 8; g++) acc[g] = _mm256_setzero_si256();
                for (int32_t i = i0; i < i0 + n; i++) {
                    const uint16_t *line = (const uint16_t *)(w + (int64_t)idx[i] * column_bytes + t * 64) + 8 * half;
                    if (half == 0 && i - i0 < n_next) prefetch_l2(w + (int64_t)idx[i + n] * column_bytes + t * 64);
                    __m256i x = _mm256_set1_epi16(val[i]);
                    for (int g = 0; g < 8; g++) {
                        __m256i plus = _mm256_cmpeq_epi16(_mm256_and_si256(_mm256_set1_epi16((short)line[g]), bit), bit);
                        __m256i minus = _mm256_cmpeq_epi16(_mm256_and_si256(_mm256_set1_epi16((short)line[16 + g]), bit), bit);
                        acc[g] = _mm256_sub_epi16(_mm256_add_epi16(acc[g], _mm256_and_si256(plus, x)), _mm256_and_si256(minus, x));
                    }
                }
                for (int g = 0; g < 8; g++) {
                    __m256i *s = (__m256i *)(sum + t * TL_SPARSE_TILE + 128 * half + 16 * g);
                    _mm256_storeu_si256(s, _mm256_add_epi32(_mm256_loadu_si256(s), _mm256_cvtepi16_epi32(_mm256_castsi256_si128(acc[g]))));
                    _mm256_storeu_si256(s + 1, _mm256_add_epi32(_mm256_loadu_si256(s + 1),
                                                                _mm256_cvtepi16_epi32(_mm256_extracti128_si256(acc[g], 1))));
                }
            }
    }
}
#endif
