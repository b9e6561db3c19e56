/* ternary_tile.h - the blocked ternary GEMM shared by every format of one SIMD ISA. Included by
 * <type>_<isa>.c after it defines:
 *   VEC, VEC_BYTES             the vector type of codes and activations, and its width in bytes
 *   VEC_ACC                    the vector type of int32 accumulators (VEC itself on x86)
 *   vec_zero(), vec_load(p)    a zero accumulator, and unaligned load of codes or activations
 *   vec_store(p, v)            unaligned store of codes
 *   vec_dot(acc, codes, x)     acc (int32 lanes) += unsigned codes . signed int8 x, by groups of 4 bytes; or,
 *                              without such a dot, VEC_PART, part_begin(acc), part_dot(part, codes, x) and
 *                              part_end(acc, part): a block's products summed in narrower lanes, widened into acc
 *                              once per block (AVX2), and TILE_PASS_CELLS: the partials a pass of rows keeps
 *   vec_sum(acc)               horizontal int32 sum
 *   vec_sum4_store(out, a, b, c, d)   out[0..3] = the horizontal sums of a, b, c, d
 *   BLOCK_VALUES, BLOCK_BYTES  the format's block
 *   decode(block, seg)         codes (w + 1, in 0..2) of values seg*VEC_BYTES .. +VEC_BYTES of a block
 *   KERNEL                     the tl_ternary_fn name to define
 * and optionally FUSED_TILE(src, row_bytes, R, x, cols, T, out), FUSED_MAX_COLS: the format's own few-token tile
 * (same contract as tile() below without a code buffer), used for rows shorter than FUSED_MAX_COLS; and
 * DECODED_TILE(codes, x, cols, T, out) with store_decoded(buf, row, cols, k, codes): the ISA's own many-token
 * tile over a 4-row code buffer in the layout store_decoded writes (default: rows one after another, run by
 * tile() below); or FUSED_MANY_TOKENS: no code buffer at all (below). A format whose rows end in values that are not a
 * whole block (tq1_0_lut) defines ROW_BYTES(cols), a row's bytes, and decode_tail(tail, seg): the codes of vector seg of
 * the cols % BLOCK_VALUES values after the row's whole blocks. A format may also define SCALES, decode_scaled(block, seg)
 * and unscale(acc, scale) (needing vec_add(a, b)): see tile_pass(). A format without FUSED_TILE may define
 * GROUPED_KERNEL, the name of a second tl_ternary_fn (and its _rows) over the same blocks in row groups (kernels.h's
 * TL_GROUP_ROWS: each 4 rows' blocks interleaved, then their tails), so that a tile reads one ascending stream.
 * A tile is up to 4 rows x 4 tokens: each code vector is reused for 4 tokens and each activation load for
 * 4 rows, with 16 accumulators in registers. Decoding (costly for tq1_0) is fused into the dot for a few
 * tokens (decode); with more tokens (prefill, batched decode) each 4-row tile is decoded once into an L1
 * buffer of codes and every token then runs on plain loads. A format whose decode costs less than that buffer's
 * store and reloads (tq2_0, i2_s on x86: a shift and a mask) defines FUSED_MANY_TOKENS and decodes in every tile,
 * with 4 tokens at a time outermost over a block of rows: the 4 tokens' activations stay in L1 while the block's
 * packed rows (4x smaller than int8 activations; in L2 after the first 4 tokens) stream past (x86 AVX-512: 8
 * tokens 1.5-2x faster than through the buffer, 128 tokens 1.1-1.6x; AVX2 1.05-1.1x). Codes are w + 1: dot = sum(codes * x) -
 * sum(x). A tile's sums come out per token (out[token][row]). */

enum { SEGS = BLOCK_VALUES / VEC_BYTES, TILE = 4, MAX_DECODED_COLS = 16384, ROW_BLOCK_BYTES = 128 << 10 };

#ifdef ROW_BYTES
#define TAIL_SEGS(cols) ((cols) % BLOCK_VALUES / VEC_BYTES)
#else
#define ROW_BYTES(cols) ((cols) / BLOCK_VALUES * BLOCK_BYTES)
#define TAIL_SEGS(cols) 0
#define decode_tail(tail, seg) decode(tail, seg) /* no tail: its loops run 0 times */
#endif

#ifndef VEC_PART /* a 4-byte dot into int32 lanes: a block's partial sums are the accumulator itself */
#define VEC_PART VEC_ACC
#define part_begin(acc) (acc)
#define part_dot vec_dot
#define part_end(acc, part) (part)
#endif
#ifndef TILE_PASS_CELLS
#define TILE_PASS_CELLS (TILE * TILE)
#endif
#if defined(GROUPED_KERNEL) && defined(FUSED_TILE)
#error "a grouped layout is read by this template's tiles, not by FUSED_TILE"
#endif

/* Where a matrix's row r starts, and where a tile's row r (src: the tile's first row) and its block b are: rows one
 * after another, or grouped (TL_GROUP_ROWS): a group's rows r blocks apart, each row's blocks a group of blocks apart. */
static inline const uint8_t *row_at(const uint8_t *w, int64_t row_bytes, int64_t r, int grouped) {
    return grouped ? w + r / TILE * TILE * row_bytes + r % TILE * BLOCK_BYTES : w + r * row_bytes;
}
static inline const uint8_t *tile_row(const uint8_t *src, int64_t row_bytes, int r, int grouped) {
    return src + r * (grouped ? BLOCK_BYTES : row_bytes);
}
static inline const uint8_t *block_of(const uint8_t *row, int64_t b, int grouped) { return row + b * (grouped ? TILE : 1) * BLOCK_BYTES; }
/* Where row r's tail is (w: the matrix, or a tile's first row): after the row's blocks, or after its group's blocks,
 * the group's tails in row order. */
static inline const uint8_t *tail_at(const uint8_t *w, int64_t row_bytes, int64_t cols, int64_t r, int grouped) {
    int64_t blocks_bytes = cols / BLOCK_VALUES * BLOCK_BYTES;
    return grouped ? w + r / TILE * TILE * row_bytes + TILE * blocks_bytes + r % TILE * (row_bytes - blocks_bytes)
                   : w + r * row_bytes + blocks_bytes;
}
/* Every cache line of bytes at p into L2 */
static inline void prefetch_lines(const uint8_t *p, int64_t bytes) {
    for (int64_t at = 0; at < bytes; at += 64) prefetch_l2(p + at);
    if (bytes % 64) prefetch_l2(p + bytes - 1);
}

#ifndef SCALES /* no scaled decoding: decode() only */
#define SCALES 1
#define decode_scaled decode
#define unscale(acc, scale) (acc)
#endif

/* Rows p .. p + P - 1 of a tile into acc (see tile_rows()). A format with SCALES > 1 also decodes a segment, with one
 * op fewer, into codes times a per-lane power of 2 (decode_scaled: one of SCALES, that of seg % SCALES; unscale(acc, s)
 * divides scale s back out of int32 sums). Where a set of accumulators per scale fits in TILE_PASS_CELLS, a segment's
 * dots go to its scale's set, and the sets are scaled back and added once per row (x86 AVX-512, 2 tokens: 1.2x in
 * cache). Not for one token: that loop, so made 1.3x faster in cache, read 0.8-0.9x as fast from memory on x86 Zen 5
 * (slowing it down brought the rate back: as if its prefetches then ran out of room). */
static inline __attribute__((always_inline)) void tile_pass(const uint8_t *src, int64_t row_bytes, const uint8_t *const *list,
                                                            const uint8_t *const *list_ahead, const uint8_t *const *tails, int R, int p, int P,
                                                            const int8_t *x, int64_t cols, int T, int decoded, int grouped,
                                                            VEC_ACC acc[TILE][TILE]) {
    int sets = !decoded && T > 1 && P * T * SCALES <= TILE_PASS_CELLS ? SCALES : 1;
#if SCALES > 1
    VEC_ACC set_acc[SCALES][TILE][TILE];
#define SET_ACC(s, r, t) set_acc[s][r][t]
#else /* straight into acc: through a copy, GCC ran AVX2's 4 tokens 4% slower (and AVX-512's 4% faster) */
#define SET_ACC(s, r, t) acc[r][t]
#endif
    for (int s = 0; s < sets; s++)
        for (int r = p; r < p + P; r++)
            for (int t = 0; t < T; t++) SET_ACC(s, r, t) = vec_zero();
    for (int64_t b = 0; b < cols / BLOCK_VALUES; b++) {
        if (!decoded && p == 0 && grouped && !list) /* the tile's block b: its rows' side by side */
            prefetch_lines(block_of(src + PREFETCH_TILES * R * row_bytes, b, grouped), R * BLOCK_BYTES);
        else for (int r = 0; !decoded && p == 0 && (!list || list_ahead) && r < R; r++) {
            const uint8_t *ahead = block_of(list ? list_ahead[r] : tile_row(src + PREFETCH_TILES * R * row_bytes, row_bytes, r, grouped), b, grouped);
            prefetch_l2(ahead);
            if (BLOCK_BYTES > 64) prefetch_l2(ahead + 64); /* a 66-byte block can span 3 lines */
        }
        VEC_PART part[SCALES][TILE][TILE];
        for (int s = 0; s < sets; s++)
            for (int r = p; r < p + P; r++)
                for (int t = 0; t < T; t++) part[s][r][t] = part_begin(SET_ACC(s, r, t));
        _Pragma("GCC unroll 8") for (int seg = 0; seg < SEGS; seg++) {
            // codes of this segment for the pass's rows (decoded here, or loaded from the tile's code buffer)
            int64_t k = b * BLOCK_VALUES + seg * VEC_BYTES;
            VEC codes[TILE];
            for (int r = p; r < p + P; r++) {
                const uint8_t *block = block_of(list ? list[r] : tile_row(src, row_bytes, r, grouped), b, grouped);
                codes[r] = decoded ? vec_load(src + r * cols + k) : sets > 1 ? decode_scaled(block, seg) : decode(block, seg);
            }
            // dotted with T tokens
            int s = seg % sets;
            for (int t = 0; t < T; t++) {
                VEC xv = vec_load(x + t * cols + k);
                for (int r = p; r < p + P; r++) part[s][r][t] = part_dot(part[s][r][t], codes[r], xv);
            }
        }
        for (int s = 0; s < sets; s++)
            for (int r = p; r < p + P; r++)
                for (int t = 0; t < T; t++) SET_ACC(s, r, t) = part_end(SET_ACC(s, r, t), part[s][r][t]);
    }
#if SCALES > 1
    for (int r = p; r < p + P; r++)
        for (int t = 0; t < T; t++) {
            acc[r][t] = sets > 1 ? unscale(set_acc[0][r][t], 0) : set_acc[0][r][t];
            for (int s = 1; s < sets; s++) acc[r][t] = vec_add(acc[r][t], unscale(set_acc[s][r][t], s));
        }
#endif
#undef SET_ACC
    // the row's tail after its whole blocks, if the format has one
    for (int seg = 0; seg < TAIL_SEGS(cols); seg++) {
        int64_t k = cols / BLOCK_VALUES * BLOCK_VALUES + seg * VEC_BYTES;
        VEC codes[TILE];
        VEC_PART part[TILE][TILE];
        for (int r = p; r < p + P; r++)
            codes[r] = decoded ? vec_load(src + r * cols + k) : decode_tail(list ? tails[r] : tail_at(src, row_bytes, cols, r, grouped), seg);
        for (int t = 0; t < T; t++) {
            VEC xv = vec_load(x + t * cols + k);
            for (int r = p; r < p + P; r++) part[r][t] = part_dot(part_begin(acc[r][t]), codes[r], xv);
            for (int r = p; r < p + P; r++) acc[r][t] = part_end(acc[r][t], part[r][t]);
        }
    }
}

/* R rows x T tokens: the rows in passes of up to TILE_PASS_CELLS / T (all R unless the ISA has few registers),
 * each pass over the whole row. The rows are src's, row_bytes apart or grouped (prefetched PREFETCH_TILES tiles
 * ahead), or their decoded codes; or, with list, the packed rows list[r] with their tails at tails[r] (prefetching
 * list_ahead[r] unless it is NULL). */
static inline __attribute__((always_inline)) void tile_rows(const uint8_t *src, int64_t row_bytes, const uint8_t *const *list,
                                                            const uint8_t *const *list_ahead, const uint8_t *const *tails, int R, const int8_t *x,
                                                            int64_t cols, int T, int decoded, int grouped, int32_t out[TILE][TILE]) {
    VEC_ACC acc[TILE][TILE];
    int pass = TILE_PASS_CELLS / T < R ? TILE_PASS_CELLS / T : R;
    _Pragma("GCC unroll 4") for (int p = 0; p < R; p += pass)
        tile_pass(src, row_bytes, list, list_ahead, tails, R, p, R - p < pass ? R - p : pass, x, cols, T, decoded, grouped, acc);
    for (int t = 0; t < T; t++) {
        if (R == TILE) vec_sum4_store(out[t], acc[0][t], acc[1][t], acc[2][t], acc[3][t]);
        else out[t][0] = vec_sum(acc[0][t]);
    }
}

static inline __attribute__((always_inline)) void tile(const uint8_t *src, int64_t row_bytes, int R, const int8_t *x,
                                                       int64_t cols, int T, int decoded, int grouped, int32_t out[TILE][TILE]) {
    tile_rows(src, row_bytes, NULL, NULL, NULL, R, x, cols, T, decoded, grouped, out);
}

/* One function per tile shape (rows, tokens, decoded or grouped), so each unrolls fully. */
typedef void tile_fn(const uint8_t *src, int64_t row_bytes, const int8_t *x, int64_t cols, int32_t out[TILE][TILE]);
#ifdef FUSED_TILE
#define FEW_TOKENS(s, rb, R, x, c, T, o) if (c < FUSED_MAX_COLS) FUSED_TILE(s, rb, R, x, c, T, o); else tile(s, rb, R, x, c, T, 0, 0, o)
#else
#define FEW_TOKENS(s, rb, R, x, c, T, o) tile(s, rb, R, x, c, T, 0, 0, o)
#endif
#ifdef DECODED_TILE
#define MANY_TOKENS(s, rb, R, x, c, T, o) DECODED_TILE(s, x, c, T, o)
#else
#define MANY_TOKENS(s, rb, R, x, c, T, o) tile(s, rb, R, x, c, T, 1, 0, o)
static inline void store_decoded(int8_t *buf, int row, int64_t cols, int64_t k, VEC codes) { vec_store(buf + row * cols + k, codes); }
#endif
#define TILE_FN(R, T, D) \
    static void tile_##R##_##T##_##D(const uint8_t *s, int64_t rb, const int8_t *x, int64_t c, int32_t o[TILE][TILE]) { \
        if (D) { MANY_TOKENS(s, rb, R, x, c, T, o); } \
        else { FEW_TOKENS(s, rb, R, x, c, T, o); } \
    }
TILE_FN(1, 1, 0) TILE_FN(1, 2, 0) TILE_FN(1, 3, 0) TILE_FN(1, 4, 0)
TILE_FN(4, 1, 0) TILE_FN(4, 2, 0) TILE_FN(4, 3, 0) TILE_FN(4, 4, 0)
#ifdef FUSED_MANY_TOKENS
#define DECODED_TILES {{NULL}}
#else
TILE_FN(4, 1, 1) TILE_FN(4, 2, 1) TILE_FN(4, 3, 1) TILE_FN(4, 4, 1)
#define DECODED_TILES {{NULL}, {NULL, tile_4_1_1, tile_4_2_1, tile_4_3_1, tile_4_4_1}}
#endif
#ifdef GROUPED_KERNEL /* whole groups only: the kernel runs other rows through the row list */
#define GROUPED_TILE_FN(T) \
    static void grouped_tile_##T(const uint8_t *s, int64_t rb, const int8_t *x, int64_t c, int32_t o[TILE][TILE]) { \
        tile(s, rb, TILE, x, c, T, 0, 1, o); \
    }
GROUPED_TILE_FN(1) GROUPED_TILE_FN(2) GROUPED_TILE_FN(3) GROUPED_TILE_FN(4)
#define GROUPED_TILES {{NULL}, {NULL, grouped_tile_1, grouped_tile_2, grouped_tile_3, grouped_tile_4}}
#else
#define GROUPED_TILES {{NULL}}
#endif
enum { ROWS_FORM, DECODED_FORM, GROUPED_FORM }; /* how a tile reads its rows */
static tile_fn *const TILES[3][2][TILE + 1] = { /* [form][R == 4][T] */
    {{NULL, tile_1_1_0, tile_1_2_0, tile_1_3_0, tile_1_4_0}, {NULL, tile_4_1_0, tile_4_2_0, tile_4_3_0, tile_4_4_0}},
    DECODED_TILES,
    GROUPED_TILES,
};

/* Rows r .. r + R - 1 for tokens t .. t + T - 1 into y = (sum - sum(x)) / s * w_scale, as the reference rounds it
 * (4 rows: one vector, by the compiler). src: the rows (in a form), or their decoded codes. */
static inline void tile_to_y(const uint8_t *src, int64_t row_bytes, int R, int form, const tl_qact *x, int32_t t,
                             int T, int64_t cols, float w_scale, float *y, int64_t ldy, int64_t r) {
    int32_t out[TILE][TILE];
    TILES[form][R == TILE][T](src, row_bytes, x->q + t * cols, cols, out);
    for (int j = 0; j < T; j++) {
        float *yt = y + (t + j) * ldy + r, s = x->scale[t + j];
        int32_t xsum = x->sum[t + j];
        if (R == TILE)
            for (int i = 0; i < TILE; i++) yt[i] = (float)(out[j][i] - xsum) / s * w_scale;
        else yt[0] = (float)(out[j][0] - xsum) / s * w_scale;
    }
}

static inline __attribute__((always_inline)) void matmul(const uint8_t *w, int64_t cols, int64_t r0, int64_t r1,
                                                         const tl_qact *x, float w_scale, float *y, int64_t ldy, int grouped) {
    int64_t row_bytes = ROW_BYTES(cols);
#ifdef FUSED_MANY_TOKENS
    // blocks of rows that stay in L2; in each, 4 tokens at a time over all its rows
    int64_t block_rows = ROW_BLOCK_BYTES / row_bytes / TILE * TILE;
    block_rows = block_rows > TILE ? block_rows : TILE;
    for (int64_t b0 = r0; b0 < r1; b0 += block_rows) {
        int64_t b1 = r1 - b0 > block_rows ? b0 + block_rows : r1;
        for (int32_t t = 0; t < x->n; t += TILE) {
            int T = x->n - t >= TILE ? TILE : x->n - t;
            for (int64_t r = b0; r < b1;) {
                int R = b1 - r >= TILE ? TILE : 1;
                tile_to_y(row_at(w, row_bytes, r, grouped), row_bytes, R, grouped ? GROUPED_FORM : ROWS_FORM, x, t, T, cols,
                          w_scale, y, ldy, r);
                r += R;
            }
        }
    }
#else
    int8_t codes[TILE * MAX_DECODED_COLS] __attribute__((aligned(64)));
    for (int64_t r = r0; r < r1;) {
        int R = r1 - r >= TILE ? TILE : 1;
        const uint8_t *wr = w + r * row_bytes; /* grouped: the group's start, as r is a group's first row */
        // many tokens: decode the 4-row tile once
        int decoded = R == TILE && x->n > TILE && cols <= MAX_DECODED_COLS;
        for (int i = 0; decoded && i < R; i++)
            for (int64_t b = 0; b < cols / BLOCK_VALUES; b++) {
                // the tile PREFETCH_TILES ahead, so its decode reads L2 while this one's tokens run (grouped: its block
                // b with its first row's)
                const uint8_t *ahead = block_of(tile_row(wr + PREFETCH_TILES * TILE * row_bytes, row_bytes, i, grouped), b, grouped);
                if (grouped && i == 0) prefetch_lines(ahead, TILE * BLOCK_BYTES);
                if (!grouped) prefetch_l2(ahead);
                if (!grouped && BLOCK_BYTES > 64) prefetch_l2(ahead + 64);
                for (int seg = 0; seg < SEGS; seg++)
                    store_decoded(codes, i, cols, b * BLOCK_VALUES + seg * VEC_BYTES,
                                  decode(block_of(tile_row(wr, row_bytes, i, grouped), b, grouped), seg));
            }
        for (int i = 0; decoded && i < R; i++)
            for (int seg = 0; seg < TAIL_SEGS(cols); seg++)
                store_decoded(codes, i, cols, cols / BLOCK_VALUES * BLOCK_VALUES + seg * VEC_BYTES,
                              decode_tail(tail_at(wr, row_bytes, cols, i, grouped), seg));
        for (int32_t t = 0; t < x->n; t += TILE)
            tile_to_y(decoded ? (const uint8_t *)codes : wr, row_bytes, R, decoded ? DECODED_FORM : grouped ? GROUPED_FORM : ROWS_FORM,
                      x, t, x->n - t >= TILE ? TILE : x->n - t, cols, w_scale, y, ldy, r);
        r += R;
    }
#endif
}


/* Listed rows only: y[t * ldy + rows[i]] for i < n and each token t, as KERNEL gives them (a relu² model's up_proj
 * computes only the rows where some token's relu(gate) is nonzero). Tiles of 4 listed rows (the last tile repeats its
 * last row) x up to 4 tokens; rows are not contiguous, so the first tokens' tile prefetches the listed rows
 * PREFETCH_TILES tiles ahead explicitly (later tokens find the tile in cache). */
#define ROWS_NAME(k) ROWS_NAME_(k)
#define ROWS_NAME_(k) k##_rows
#define LIST_TILE(T, G) \
    static void list_tile_##T##_##G(const uint8_t *const src[TILE], const uint8_t *const *ahead, const uint8_t *const tails[TILE], \
                                    const int8_t *x, int64_t cols, int32_t out[TILE][TILE]) { \
        tile_rows(src[0], 0, src, ahead, tails, TILE, x, cols, T, 0, G, out); \
    }
typedef void list_tile_fn(const uint8_t *const src[TILE], const uint8_t *const *ahead, const uint8_t *const tails[TILE],
                          const int8_t *x, int64_t cols, int32_t out[TILE][TILE]);
LIST_TILE(1, 0) LIST_TILE(2, 0) LIST_TILE(3, 0) LIST_TILE(4, 0)
#ifdef GROUPED_KERNEL
LIST_TILE(1, 1) LIST_TILE(2, 1) LIST_TILE(3, 1) LIST_TILE(4, 1)
#define GROUPED_LIST_TILES {NULL, list_tile_1_1, list_tile_2_1, list_tile_3_1, list_tile_4_1}
#else
#define GROUPED_LIST_TILES {NULL}
#endif
static list_tile_fn *const LIST_TILES[2][TILE + 1] = {{NULL, list_tile_1_0, list_tile_2_0, list_tile_3_0, list_tile_4_0},
                                                      GROUPED_LIST_TILES}; /* [grouped][T] */

static inline __attribute__((always_inline)) void matmul_rows(const uint8_t *w, int64_t cols, const int32_t *rows, int64_t n,
                                                              const tl_qact *x, float w_scale, float *y, int64_t ldy, int grouped) {
    int64_t row_bytes = ROW_BYTES(cols);
    for (int64_t i = 0; i < n; i += TILE) {
        const uint8_t *src[TILE], *ahead[TILE], *tails[TILE];
        for (int r = 0; r < TILE; r++) {
            int64_t at = i + r < n ? i + r : n - 1, next = i + PREFETCH_TILES * TILE + r < n ? i + PREFETCH_TILES * TILE + r : n - 1;
            src[r] = row_at(w, row_bytes, rows[at], grouped), ahead[r] = row_at(w, row_bytes, rows[next], grouped);
            tails[r] = tail_at(w, row_bytes, cols, rows[at], grouped);
        }
        for (int32_t t = 0; t < x->n; t += TILE) {
            int T = x->n - t >= TILE ? TILE : x->n - t;
            int32_t out[TILE][TILE];
            LIST_TILES[grouped][T](src, t ? NULL : ahead, tails, x->q + t * cols, cols, out);
            for (int j = 0; j < T; j++)
                for (int r = 0; r < TILE && i + r < n; r++)
                    y[(t + j) * ldy + rows[i + r]] = (float)(out[j][r] - x->sum[t + j]) / x->scale[t + j] * w_scale;
        }
    }
}

void KERNEL(const uint8_t *w, int64_t cols, int64_t r0, int64_t r1, const tl_qact *x, float w_scale, float *y, int64_t ldy) {
    matmul(w, cols, r0, r1, x, w_scale, y, ldy, 0);
}
void ROWS_NAME(KERNEL)(const uint8_t *w, int64_t cols, const int32_t *rows, int64_t n, const tl_qact *x, float w_scale,
                       float *y, int64_t ldy) {
    matmul_rows(w, cols, rows, n, x, w_scale, y, ldy, 0);
}
#ifdef GROUPED_KERNEL
/* Whole groups through the tiles; rows before the first and after the last (none in the engine, whose row chunks are
 * whole groups) through the row list. */
void GROUPED_KERNEL(const uint8_t *w, int64_t cols, int64_t r0, int64_t r1, const tl_qact *x, float w_scale, float *y,
                    int64_t ldy) {
    int64_t g0 = (r0 + TILE - 1) / TILE * TILE, g1 = r1 / TILE * TILE;
    if (g0 >= g1) g0 = g1 = r1;
    int32_t edges[2 * TILE], n = 0;
    for (int64_t r = r0; r < g0; r++) edges[n++] = (int32_t)r;
    for (int64_t r = g1; r < r1; r++) edges[n++] = (int32_t)r;
    if (n) matmul_rows(w, cols, edges, n, x, w_scale, y, ldy, 1);
    if (g1 > g0) matmul(w, cols, g0, g1, x, w_scale, y, ldy, 1);
}
void ROWS_NAME(GROUPED_KERNEL)(const uint8_t *w, int64_t cols, const int32_t *rows, int64_t n, const tl_qact *x,
                               float w_scale, float *y, int64_t ldy) {
    matmul_rows(w, cols, rows, n, x, w_scale, y, ldy, 1);
}
#endif
