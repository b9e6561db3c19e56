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
 * ELEM_BYTES undefined and defines ROW_BYTES(cols), and W_ROW with w_row(w, row_bytes, r, k0) and LINE_AT(row, k): row
 * r's decoding state from column k0 (where it is, its table), made once a tile, that load_w_line gets instead of the
 * row's first byte, and the byte it reads values k .. at (prefetched PREFETCH_TILES tiles of rows further on).
 * block_tile.h includes this driver over its own tile for the block-quantized types.
 * Tiles of up to 4 rows x 4 tokens reuse each converted weight vector for 4 tokens. An ISA whose 16 lanes take four
 * registers (NEON) uses 2 x 2 tiles, so the accumulators stay in its 32 registers. FTILE_WIDE_ROWS (AVX-512, with
 * keep_in_register(v)) takes 8 tokens at a time in tiles of FTILE_WIDE_ROWS x 8 (2 x 8: 16 accumulators), each line
 * (or block) decoded once for 8 tokens: 8 streams' logit rows are bound by the decoding and the FMAs, not by memory. */

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
#define w_row(w, row_bytes, r, k0) ((w) + (r) * (row_bytes))
#define LINE_AT(row, k) ((row) + (k) * ELEM_BYTES)
#endif
/* acc[r][t] += rows r0 .. r0 + R - 1 of w times tokens 0 .. T - 1 of x over columns k0 .. k1 - 1 (k0 a multiple of 64). */
static inline __attribute__((always_inline)) void ftile(const uint8_t *w, int64_t row_bytes, int64_t r0, int R,
                                                        const float *x, int64_t cols, int T, int64_t k0, int64_t k1,
                                                        ACC acc[FTILE][FTILE_T]) {
    W_ROW rows[FTILE];
    for (int r = 0; r < R; r++) rows[r] = w_row(w, row_bytes, r0 + r, k0);
    int64_t k = k0;
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
            if (T == 8) {                                                                             \
                keep_in_register(x0);                                                                 \
                keep_in_register(x1);                                                                 \
            }                                                                                         \
            for (int r = 0; r < R; r++) acc[r][t] = acc_fma(acc_fma(acc[r][t], lo[r], x0), hi[r], x1); \
        }                                                                                             \
    } while (0)
    for (; k + 64 <= k1; k += 64) {
        FTILE_LINE(k);
        FTILE_LINE(k + 32);
    }
    for (; k + 32 <= k1; k += 32) FTILE_LINE(k);
#undef FTILE_LINE
#endif
#ifdef ELEM_BYTES
    // two steps (one 64-byte line of bf16) per iteration: the once-a-line prefetch test folds away, ~15% faster from memory
    _Pragma("GCC unroll 2") for (; k < k1; k += 16) {
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
}

#endif

/* One tile of R rows x T tokens from row r, token t, its sums stored to y, then t past it (R, T constants here, so
 * ftile unrolls). */
#define FTILE_AT(R, T)                                                                 \
    do {                                                                               \
        ACC acc[FTILE][FTILE_T];                                                       \
        for (int i = 0; i < R; i++)                                                    \
            for (int j = 0; j < T; j++) acc[i][j] = acc_zero();                        \
        ftile(w, row_bytes, r, R, x + t * cols, cols, T, 0, cols, acc);                \
        for (int i = 0; i < R; i++)                                                    \
            for (int j = 0; j < T; j++) y[(t + j) * ldy + r + i] = acc_sum(acc[i][j]); \
        t += T;                                                                        \
    } while (0)
/* Rows r .. r + R - 1 against tokens t0 .. n - 1, in tiles of up to FTILE_TOKENS. */
#define FTILE_ROW_TILES(R)                                                   \
    for (int32_t t = t0; t < n;) {                                           \
        int32_t left = n - t;                                                \
        if (left >= 4 && FTILE_TOKENS >= 4) FTILE_AT(R, 4);                  \
        else if (left >= 3 && FTILE_TOKENS >= 3) FTILE_AT(R, 3);             \
        else if (left >= 2 && FTILE_TOKENS >= 2) FTILE_AT(R, 2);             \
        else FTILE_AT(R, 1);                                                 \
    }

/* Rows r0 .. r1 - 1 against tokens t0 .. n - 1, in tiles of FTILE_ROWS rows, then single rows. */
static inline void narrow_tiles(const uint8_t *w, int64_t row_bytes, int64_t r0, int64_t r1, const float *x, int64_t cols,
                                int32_t t0, int32_t n, float *y, int64_t ldy) {
    for (int64_t r = r0; r < r1;) {
        if (r1 - r < FTILE_ROWS) {
            FTILE_ROW_TILES(1);
            r += 1;
        } else {
            FTILE_ROW_TILES(FTILE_ROWS);
            r += FTILE_ROWS;
        }
    }
}
#undef FTILE_AT
#undef FTILE_ROW_TILES

#ifdef FTILE_WIDE_ROWS
/* Rows r0 .. r1 - 1 (at most FWIDE_BLOCK, a multiple of FTILE_WIDE_ROWS) against tokens 0 .. n - 1 (a multiple of 8),
 * in tiles of FTILE_WIDE_ROWS x 8: a chunk of FWIDE_CHUNK columns of every tile in turn, the tiles' sums kept between
 * chunks, so the 8 tokens' chunk (8 KiB) stays in L1 (read from L2 at every row pair, 2 rows x 8 tokens ran slower
 * than 4 x 4). The block's rows stay in L2 for the next 8 tokens. */
enum { FWIDE_BLOCK = 16, FWIDE_CHUNK = 256 };
#ifdef BT_BLOCK_VALUES
_Static_assert(FWIDE_CHUNK % BT_BLOCK_VALUES == 0, "a chunk of columns holds whole blocks");
#endif
static void wide_tiles(const uint8_t *w, int64_t row_bytes, int64_t r0, int64_t r1, const float *x, int64_t cols, int32_t n,
                       float *y, int64_t ldy) {
    enum { R = FTILE_WIDE_ROWS, T = 8 };
    int tiles = (int)((r1 - r0) / R);
    for (int32_t t = 0; t < n; t += T) {
        ACC sums[FWIDE_BLOCK / R][R][T];
        for (int64_t k0 = 0; k0 < cols; k0 += FWIDE_CHUNK) {
            int64_t k1 = cols - k0 > FWIDE_CHUNK ? k0 + FWIDE_CHUNK : cols;
            for (int i = 0; i < tiles; i++) {
                ACC acc[FTILE][FTILE_T]; /* a local copy: kept in registers through the chunk */
                for (int a = 0; a < R; a++)
                    for (int j = 0; j < T; j++) acc[a][j] = k0 ? sums[i][a][j] : acc_zero();
                ftile(w, row_bytes, r0 + i * R, R, x + t * cols, cols, T, k0, k1, acc);
                for (int a = 0; a < R; a++)
                    for (int j = 0; j < T; j++) sums[i][a][j] = acc[a][j];
            }
        }
        for (int i = 0; i < tiles; i++)
            for (int a = 0; a < R; a++)
                for (int j = 0; j < T; j++) y[(t + j) * ldy + r0 + i * R + a] = acc_sum(sums[i][a][j]);
    }
}
#endif

void FLOAT_KERNEL(const void *w, int64_t cols, int64_t r0, int64_t r1, const float *x, int32_t n, float *y, int64_t ldy) {
    int64_t row_bytes = ROW_BYTES(cols);
#ifdef FTILE_WIDE_ROWS
    // from 8 tokens, blocks of rows: 8 tokens at a time in wide tiles, then the rest, while the block's rows are in L2
    int32_t wide = n / 8 * 8;
    for (int64_t r = r0; wide && r1 - r >= FTILE_WIDE_ROWS;) {
        int64_t rows = r1 - r >= FWIDE_BLOCK ? FWIDE_BLOCK : (r1 - r) / FTILE_WIDE_ROWS * FTILE_WIDE_ROWS;
        wide_tiles(w, row_bytes, r, r + rows, x, cols, wide, y, ldy);
        narrow_tiles(w, row_bytes, r, r + rows, x, cols, wide, n, y, ldy);
        r0 = r += rows;
    }
#endif
    narrow_tiles(w, row_bytes, r0, r1, x, cols, 0, n, y, ldy);
}
