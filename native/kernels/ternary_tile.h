/* ternary_tile.h - the blocked ternary GEMM shared by every format of one SIMD ISA. Included by
 * <type>_<isa>.c after it defines:
 *   VEC, VEC_BYTES             the vector type and its width in bytes (64 for AVX-512, 32 for AVX2)
 *   vec_zero(), vec_load(p)    zero and unaligned load
 *   vec_dot(acc, codes, x)     acc (int32 lanes) += unsigned codes . signed int8 x, by groups of 4 bytes
 *   vec_sum(acc)               horizontal int32 sum
 *   BLOCK_VALUES, BLOCK_BYTES  the format's block
 *   decode(block, seg)         codes (w + 1, in 0..2) of values seg*VEC_BYTES .. +VEC_BYTES of a block
 *   KERNEL                     the tl_ternary_fn name to define
 * A tile is up to 4 rows x 4 tokens: each decoded segment is reused for 4 tokens and each activation
 * load for 4 rows, so prefill streams the weights once per 4 tokens while 16 accumulators stay in registers.
 * Codes are w + 1, so the dot product is sum(codes * x) - sum(x). */

enum { SEGS = BLOCK_VALUES / VEC_BYTES, TILE = 4 };

static inline __attribute__((always_inline)) void tile(const uint8_t *w, int64_t row_bytes, int R,
                                                       const int8_t *x, int64_t cols, int T, int32_t out[TILE][TILE]) {
    VEC acc[TILE][TILE];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) acc[r][t] = vec_zero();
    for (int64_t b = 0; b < cols / BLOCK_VALUES; b++) {
        for (int seg = 0; seg < SEGS; seg++) {
            // decode this segment of R rows' blocks once, then dot it with T tokens
            VEC codes[TILE];
            for (int r = 0; r < R; r++) codes[r] = decode(w + r * row_bytes + b * BLOCK_BYTES, seg);
            for (int t = 0; t < T; t++) {
                VEC xv = vec_load(x + t * cols + b * BLOCK_VALUES + seg * VEC_BYTES);
                for (int r = 0; r < R; r++) acc[r][t] = vec_dot(acc[r][t], codes[r], xv);
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) out[r][t] = vec_sum(acc[r][t]);
}

void KERNEL(const uint8_t *w, int64_t cols, int64_t r0, int64_t r1, const tl_qact *x, float w_scale, float *y,
            int64_t ldy) {
    int64_t row_bytes = cols / BLOCK_VALUES * BLOCK_BYTES;
    for (int64_t r = r0; r < r1;) {
        int R = r1 - r >= TILE ? TILE : 1;
        for (int32_t t = 0; t < x->n;) {
            int T = x->n - t >= TILE ? TILE : x->n - t;
            int32_t out[TILE][TILE];
            const uint8_t *wr = w + r * row_bytes;
            const int8_t *xt = x->q + t * cols;
            // constant tile shapes, so each call below unrolls fully
            if (R == TILE) {
                if (T == 4) tile(wr, row_bytes, TILE, xt, cols, 4, out);
                else if (T == 3) tile(wr, row_bytes, TILE, xt, cols, 3, out);
                else if (T == 2) tile(wr, row_bytes, TILE, xt, cols, 2, out);
                else tile(wr, row_bytes, TILE, xt, cols, 1, out);
            } else {
                if (T == 4) tile(wr, row_bytes, 1, xt, cols, 4, out);
                else if (T == 3) tile(wr, row_bytes, 1, xt, cols, 3, out);
                else if (T == 2) tile(wr, row_bytes, 1, xt, cols, 2, out);
                else tile(wr, row_bytes, 1, xt, cols, 1, out);
            }
            for (int i = 0; i < R; i++)
                for (int j = 0; j < T; j++)
                    y[(t + j) * ldy + r + i] = (float)(out[i][j] - x->sum[t + j]) / x->scale[t + j] * w_scale;
            t += T;
        }
        r += R;
    }
}
