/* Sparse-input GEMV on AVX2 (layout: sparse_ref.c; blocking, interleave, prefetch: sparse_avx512.c). Without a
 * 4-byte dot, each 2-bit field is shifted down to its code (0..2) and multiplied with vpmaddubsw into int16 pairs
 * (two inputs each), summed over the block in int16 (|pair| <= 2 * 2 * 128, BLOCK / 4 of them: no overflow) and
 * widened once a block. 16 ymm registers hold the 8 int16 sums of one quarter of a line: the half of its bytes a
 * pass loads and the low or high bytes of each 16-byte lane it interleaves. */
#include "kernels.h"
#if defined(__x86_64__)
#include "avx2.h"

enum { BLOCK = 64, AHEAD = 64 }; /* kept inputs a block (a multiple of 4, at most 4 * 32767 / 512); fours ahead */

void tl_sparse_avx2(const uint8_t *w, int64_t rows, const int32_t *idx, const int8_t *val, int32_t k, int32_t *sum) {
    const __m256i low2 = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    int64_t tiles = (rows + TL_SPARSE_TILE - 1) / TL_SPARSE_TILE, column_bytes = tiles * 64;
    const uint8_t *col[BLOCK];
    uint32_t x[BLOCK / 4];
    tl_sparse_ahead ahead = {0, 0, 0};
    for (int f = 0; f < AHEAD; f++) tl_sparse_prefetch(&ahead, w, column_bytes, tiles, idx, k, BLOCK);
    for (int32_t i0 = 0; i0 < k; i0 += BLOCK) {
        int32_t n = k - i0 < BLOCK ? k - i0 : BLOCK, x_sum;
        int32_t fours = tl_sparse_fours(w, column_bytes, idx + i0, val + i0, n, col, x, &x_sum);
        __m256i xs = _mm256_set1_epi32(x_sum);
        for (int64_t t = 0; t < tiles; t++) {
            for (int quarter = 0; quarter < 4; quarter++) {
                int half = quarter / 2, high = quarter % 2; /* bytes 32 * half .., the high bytes of its 16-byte lanes */
                __m256i acc[8]; /* [q][j]: rows 64q + 16(2 high + j) + 8 half .. + 7 of the line, as int16 pairs */
                for (int j = 0; j < 8; j++) acc[j] = _mm256_setzero_si256();
                for (int32_t f = 0; f < fours; f++) {
                    const uint8_t *const *c = col + 4 * f;
                    if (!quarter) tl_sparse_prefetch(&ahead, w, column_bytes, tiles, idx, k, BLOCK);
                    int64_t at = t * 64 + 32 * half;
                    __m256i a = _mm256_loadu_si256((const __m256i *)(c[0] + at)), b = _mm256_loadu_si256((const __m256i *)(c[1] + at));
                    __m256i d = _mm256_loadu_si256((const __m256i *)(c[2] + at)), e = _mm256_loadu_si256((const __m256i *)(c[3] + at));
                    __m256i ab = high ? _mm256_unpackhi_epi8(a, b) : _mm256_unpacklo_epi8(a, b);
                    __m256i de = high ? _mm256_unpackhi_epi8(d, e) : _mm256_unpacklo_epi8(d, e);
                    __m256i z[2] = {_mm256_unpacklo_epi16(ab, de), _mm256_unpackhi_epi16(ab, de)};
                    __m256i xv = _mm256_set1_epi32((int)x[f]);
                    for (int q = 0; q < 4; q++)
                        for (int j = 0; j < 2; j++) {
                            __m256i codes = _mm256_and_si256(_mm256_srli_epi16(z[j], 2 * q), low2);
                            acc[2 * q + j] = _mm256_add_epi16(acc[2 * q + j], _mm256_maddubs_epi16(codes, xv));
                        }
                }
                for (int q = 0; q < 4; q++)
                    for (int j = 0; j < 2; j++) {
                        __m256i *s = (__m256i *)(sum + t * TL_SPARSE_TILE + 64 * q + 16 * (2 * high + j) + 8 * half);
                        __m256i v = _mm256_sub_epi32(_mm256_madd_epi16(acc[2 * q + j], ones), xs);
                        _mm256_storeu_si256(s, _mm256_add_epi32(_mm256_loadu_si256(s), v));
                    }
            }
        }
    }
}
#endif
