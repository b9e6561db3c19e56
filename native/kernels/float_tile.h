/* float_tile.h - the blocked float-weight GEMM (f32 activations) shared by the float types of one SIMD ISA,
 * summing in tl_float_fn's canonical order so every ISA matches the reference bit for bit. Included by
 * <type>_<isa>.c after it defines:
 *   ACC, acc_zero(), acc_fma(acc, w, x), acc_sum(acc)   16 float lanes (lane l takes k = l mod 16), fused
 *                                                        multiply-add, and the pairwise l+8, l+4, l+2, l+1 sum
 *   load_x(p)                                            16 f32 activations
 *   load_w(row, k)                                       weights k .. k+15 of a row, as f32
 *   ELEM_BYTES, FLOAT_KERNEL                             bytes per weight, and the tl_float_fn to define
 * and optionally FTILE_ROWS, FTILE_TOKENS: the tile shape (each 1..4; default 4 x 4), and LOAD_W_LINE with
 * load_w_line(&row, k, &lo, &hi): weights k .. k+15 and k+16 .. k+31 from one 64-byte line (bf16 on AVX-512), used for
 * whole lines before load_w takes any remaining 16. A packed layout read by whole lines only (bf16_lut_vbmi.c) leaves
 * ELEM_BYTES undefined and defines ROW_BYTES(cols), and W_ROW with w_row(w, row_bytes, r) and LINE_AT(row, k): row r's
 * decoding state (where it is, its table), made once a tile, that load_w_line gets instead of the row's first byte,
 * and the byte it reads values k .. at (prefetched PREFETCH_TILES tiles of rows further on). block_tile.h includes
 * this driver over its own tile for the block-quantized types.
 * Tiles of up to 4 rows x 4 tokens reuse each converted weight vector for 4 tokens. An ISA whose 16 lanes take
 * four registers (NEON) uses 2 x 2 tiles, so the accumulators stay in its 32 registers. */

enum { FTILE = 4 };
#ifndef FTILE_ROWS
#define FTILE_ROWS 4
#endif
#ifndef FTILE_TOKENS
#define FTILE_TOKENS 4
#endif

#ifndef BT_KERNEL /* else block_tile.h defined a block-quantized type's tile */
#ifndef ROW_BYTES
#define ROW_BYTES(cols) ((cols) * ELEM_BYTES)
#endif
#ifndef W_ROW
#define W_ROW const uint8_t *
#define w_row(w, row_bytes, r) ((w) + (r) * (row_bytes))
#define LINE_AT(row, k) ((row) + (k) * ELEM_BYTES)
#endif
/* Rows r0 .. r0 + R - 1 of w times tokens 0 .. T - 1 of x. */
static inline __attribute__((always_inline)) void ftile(const uint8_t *w, int64_t row_bytes, int64_t r0, int R,
                                                        const float *x, int64_t cols, int T, float out[FTILE][FTILE]) {
    ACC acc[FTILE][FTILE];
    W_ROW rows[FTILE];
    for (int r = 0; r < R; r++) {
        rows[r] = w_row(w, row_bytes, r0 + r);
        for (int t = 0; t < T; t++) acc[r][t] = acc_zero();
    }
    int64_t k = 0;
#ifdef LOAD_W_LINE
    // a line (32 values) per step, each lane adding its k + l, then its k + 16 + l: the canonical order; two lines a
    // pass where there are, so k % 64 is a constant in each (a layout can then decode a line's half without asking)
#define FTILE_LINE(k)                                                                                 \
    do {                                                                                              \
        ACC lo[FTILE], hi[FTILE];                                                                     \
        for (int r = 0; r < R; r++) {                                                                 \
            prefetch_l2(LINE_AT(rows[r], k) + PREFETCH_TILES * R * row_bytes);                        \
            load_w_line(&rows[r], k, &lo[r], &hi[r]);                                                 \
        }                                                                                             \
        for (int t = 0; t < T; t++) {                                                                 \
            ACC x0 = load_x(x + t * cols + (k)), x1 = load_x(x + t * cols + (k) + 16);                \
            for (int r = 0; r < R; r++) acc[r][t] = acc_fma(acc_fma(acc[r][t], lo[r], x0), hi[r], x1); \
        }                                                                                             \
    } while (0)
    for (; k + 64 <= cols; k += 64) {
        FTILE_LINE(k);
        FTILE_LINE(k + 32);
    }
    for (; k + 32 <= cols; k += 32) FTILE_LINE(k);
#undef FTILE_LINE
#endif
#ifdef ELEM_BYTES
    // two steps (one 64-byte line of bf16) per iteration: the once-a-line prefetch test folds away, ~15% faster from memory
    _Pragma("GCC unroll 2") for (; k < cols; k += 16) {
        ACC wv[FTILE];
        for (int r = 0; r < R; r++) {
            if (k * ELEM_BYTES % 64 == 0) prefetch_l2(LINE_AT(rows[r], k) + PREFETCH_TILES * R * row_bytes); /* once a line */
            wv[r] = load_w(rows[r], k);
        }
        for (int t = 0; t < T; t++) {
            ACC xv = load_x(x + t * cols + k);
            for (int r = 0; r < R; r++) acc[r][t] = acc_fma(acc[r][t], wv[r], xv);
        }
    }
#endif
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) out[r][t] = acc_sum(acc[r][t]);
}

#endif

void FLOAT_KERNEL(const void *w, int64_t cols, int64_t r0, int64_t r1, const float *x, int32_t n, float *y, int64_t ldy) {
    int64_t row_bytes = ROW_BYTES(cols);
    for (int64_t r = r0; r < r1;) {
        int R = r1 - r >= FTILE_ROWS ? FTILE_ROWS : 1;
        for (int32_t t = 0; t < n;) {
            int T = n - t >= FTILE_TOKENS ? FTILE_TOKENS : n - t;
            float out[FTILE][FTILE];
            const float *xt = x + t * cols;
            // constant tile shapes, so each call below unrolls fully
            if (R == FTILE_ROWS) {
                if (T == 4) ftile(w, row_bytes, r, FTILE_ROWS, xt, cols, 4, out);
                else if (T == 3) ftile(w, row_bytes, r, FTILE_ROWS, xt, cols, 3, out);
                else if (T == 2) ftile(w, row_bytes, r, FTILE_ROWS, xt, cols, 2, out);
                else ftile(w, row_bytes, r, FTILE_ROWS, xt, cols, 1, out);
            } else {
                if (T == 4) ftile(w, row_bytes, r, 1, xt, cols, 4, out);
                else if (T == 3) ftile(w, row_bytes, r, 1, xt, cols, 3, out);
                else if (T == 2) ftile(w, row_bytes, r, 1, xt, cols, 2, out);
                else ftile(w, row_bytes, r, 1, xt, cols, 1, out);
            }
            for (int i = 0; i < R; i++)
                for (int j = 0; j < T; j++) y[(t + j) * ldy + r + i] = out[i][j];
            t += T;
        }
        r += R;
    }
}
