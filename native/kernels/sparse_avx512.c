/* Sparse-input GEMV on AVX-512 (layout: sparse_ref.c). Kept inputs go a block at a time; for each 256-row line
 * the block's columns are summed into 8 zmm of int16 row sums (each column adds its value under its +1 row mask
 * and subtracts it under its -1 mask, the masks loaded straight into k registers from the line), then widened into
 * the int32 sums. A block of BLOCK columns, |x| <= 128, stays within int16 (255 * 128 < 32767). The next block's
 * lines are prefetched while this one runs: each kept column is a contiguous run, so the fetches stream. */
#include "kernels.h"
#if defined(__x86_64__)
#include "avx512.h"

enum { BLOCK = 64 };

void tl_sparse_avx512(const uint8_t *w, int64_t rows, const int32_t *idx, const int8_t *val, int32_t k, int32_t *sum) {
    int64_t tiles = (rows + TL_SPARSE_TILE - 1) / TL_SPARSE_TILE, column_bytes = tiles * 64;
    for (int32_t i0 = 0; i0 < k; i0 += BLOCK) {
        int32_t n = k - i0 < BLOCK ? k - i0 : BLOCK, n_next = k - i0 - n < BLOCK ? k - i0 - n : BLOCK;
        for (int64_t t = 0; t < tiles; t++) {
            __m512i acc[8];
            for (int g = 0; g < 8; g++) acc[g] = _mm512_setzero_si512();
            for (int32_t i = i0; i < i0 + n; i++) {
                const uint32_t *line = (const uint32_t *)(w + (int64_t)idx[i] * column_bytes + t * 64);
                if (i - i0 < n_next) prefetch_l2(w + (int64_t)idx[i + n] * column_bytes + t * 64);
                __m512i x = _mm512_set1_epi16(val[i]);
                for (int g = 0; g < 8; g++) {
                    acc[g] = _mm512_mask_add_epi16(acc[g], (__mmask32)line[g], acc[g], x);
                    acc[g] = _mm512_mask_sub_epi16(acc[g], (__mmask32)line[8 + g], acc[g], x);
                }
            }
            for (int g = 0; g < 8; g++) {
                __m512i *s = (__m512i *)(sum + t * TL_SPARSE_TILE + 32 * g);
                _mm512_storeu_si512(s, _mm512_add_epi32(_mm512_loadu_si512(s), _mm512_cvtepi16_epi32(_mm512_castsi512_si256(acc[g]))));
                _mm512_storeu_si512(s + 1, _mm512_add_epi32(_mm512_loadu_si512(s + 1),
                                                            _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(acc[g], 1))));
            }
        }
    }
}
#endif
