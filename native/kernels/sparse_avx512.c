/* Sparse-input GEMV on AVX-512 (layout: sparse_ref.c). Kept inputs go a block at a time, four at a time within it:
 * for each 256-row line the four columns' lines are interleaved (vpunpck) into 4 zmm whose 32-bit lanes hold one
 * row's four code bytes, and each of a byte's four 2-bit fields, masked in place (so worth 4^q times its code), is
 * dotted with the four inputs (vpdpbusd, the codes broadcast as one 32-bit word) into int32 row sums: 1024
 * multiply-adds in ~50 instructions, where adding each input under k-register row masks took ~130 (those masks
 * loaded from memory bound the kernel). A pass takes the low or the high bytes of each 16-byte lane (half the
 * rows: 8 zmm of sums, which stay in registers; 16 did not). At the block's end each sum drops its field's 4^q and
 * the block's sum of inputs (codes are W + 1). Each four prefetches the lines the kernel reads AHEAD fours later
 * (16 KiB), from its first four on: the engine gives a thread's chunk ~150 kept inputs (2-3 blocks), and prefetching
 * only the next block's lines left each chunk's first block to the hardware (a chunk took 2x as long). */
#include "kernels.h"
#if defined(__x86_64__)
#include "avx512.h"

enum { BLOCK = 64, AHEAD = 64 }; /* kept inputs a block (a multiple of 4); fours prefetched ahead */

void tl_sparse_avx512(const uint8_t *w, int64_t rows, const int32_t *idx, const int8_t *val, int32_t k, int32_t *sum) {
    int64_t tiles = (rows + TL_SPARSE_TILE - 1) / TL_SPARSE_TILE, column_bytes = tiles * 64;
    const uint8_t *col[BLOCK];
    uint32_t x[BLOCK / 4];
    tl_sparse_ahead ahead = {0, 0, 0};
    for (int f = 0; f < AHEAD; f++) tl_sparse_prefetch(&ahead, w, column_bytes, tiles, idx, k, BLOCK);
    for (int32_t i0 = 0; i0 < k; i0 += BLOCK) {
        int32_t n = k - i0 < BLOCK ? k - i0 : BLOCK, x_sum;
        int32_t fours = tl_sparse_fours(w, column_bytes, idx + i0, val + i0, n, col, x, &x_sum);
        __m512i xs = _mm512_set1_epi32(x_sum);
        for (int64_t t = 0; t < tiles; t++)
            for (int high = 0; high < 2; high++) {
                __m512i acc[8]; /* [q][j]: rows 64q + 16(2 high + j) .. + 15 of the line */
                for (int j = 0; j < 8; j++) acc[j] = _mm512_setzero_si512();
                for (int32_t f = 0; f < fours; f++) {
                    const uint8_t *const *c = col + 4 * f;
                    if (!high) tl_sparse_prefetch(&ahead, w, column_bytes, tiles, idx, k, BLOCK);
                    __m512i a = _mm512_loadu_si512(c[0] + t * 64), b = _mm512_loadu_si512(c[1] + t * 64);
                    __m512i d = _mm512_loadu_si512(c[2] + t * 64), e = _mm512_loadu_si512(c[3] + t * 64);
                    __m512i ab = high ? _mm512_unpackhi_epi8(a, b) : _mm512_unpacklo_epi8(a, b);
                    __m512i de = high ? _mm512_unpackhi_epi8(d, e) : _mm512_unpacklo_epi8(d, e);
                    __m512i z[2] = {_mm512_unpacklo_epi16(ab, de), _mm512_unpackhi_epi16(ab, de)};
                    __m512i xv = _mm512_set1_epi32((int)x[f]);
                    for (int q = 0; q < 4; q++)
                        for (int j = 0; j < 2; j++)
                            acc[2 * q + j] = vec_dot(acc[2 * q + j], _mm512_and_si512(z[j], _mm512_set1_epi8((char)(3 << 2 * q))), xv);
                }
                for (int q = 0; q < 4; q++)
                    for (int j = 0; j < 2; j++) {
                        int32_t *s = sum + t * TL_SPARSE_TILE + 64 * q + 16 * (2 * high + j);
                        __m512i v = _mm512_sub_epi32(_mm512_srai_epi32(acc[2 * q + j], 2 * q), xs);
                        _mm512_storeu_si512(s, _mm512_add_epi32(_mm512_loadu_si512(s), v));
                    }
            }
    }
}
#endif
