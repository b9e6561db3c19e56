/* attention_tile.h - the blocked attention kernel (kernels.h: tl_attention_fn) over one ISA's 16 float lanes, in the
 * canonical order, so every ISA equals attention_ref.c bit for bit. Included by attention_<isa>.c after avx2.h or
 * avx512.h, with ATTENTION_KERNEL (the function to define), optionally KV_T with load_kv(p) and load_kv_n(p, n) (the
 * cache's element type and its 16 (n) values as floats: attention_f16_<isa>.c, tl_attention_f16_fn; default float),
 * and the tile shapes:
 *   ATT_ROWS x ATT_KEYS     query rows x keys scored together: each loaded query and key vector serves the others
 *   ATT_VROWS x ATT_VCHUNKS query rows x 16-value chunks of the weighted value sum kept in registers over a block
 * Many rows of one sequence (a prompt's tokens, a KV head's query heads) share each key and value row loaded; one
 * row (a decoded token) still fills every lane: the lanes run along the head dimension. */

/* Key and value rows are prefetched ATT_AHEAD positions ahead within the block: a task streams its KV head's rows
 * from memory, where the hardware prefetchers alone fell behind (with the cache's rows head by head, tg32 at depth
 * 2,000 on the 2B-4T shape 1.08-1.19x faster, 1.33-1.35x on AVX2; docs/benchmarks.md). */
enum { ATT_AHEAD = 16 };
#ifndef KV_T
#define KV_T float
#define load_kv(p) load_x(p)
#define load_kv_n(p, n) acc_load_n(p, n)
#endif
static inline void prefetch_row(const KV_T *row, int32_t hd) {
    for (int32_t d = 0; d < hd; d += 64 / (int32_t)sizeof(KV_T)) __builtin_prefetch(row + d, 0, 3);
}

/* exp(x) lane by lane, op for op as tl_att_exp */
static inline ACC acc_exp(ACC x) {
    ACC xc = acc_max(x, acc_set1(TL_ATT_EXP_MIN)), magic = acc_set1(12582912.0f);
    ACC n = acc_sub(acc_add(acc_mul(xc, acc_set1(1.44269504088896341f)), magic), magic);
    ACC r = acc_fma(xc, n, acc_set1(-0.693359375f));
    r = acc_fma(r, n, acc_set1(2.12194440e-4f));
    ACC p = acc_set1(1.9875691500e-4f);
    p = acc_fma(acc_set1(1.3981999507e-3f), p, r);
    p = acc_fma(acc_set1(8.3334519073e-3f), p, r);
    p = acc_fma(acc_set1(4.1665795894e-2f), p, r);
    p = acc_fma(acc_set1(1.6666665459e-1f), p, r);
    p = acc_fma(acc_set1(5.0000001201e-1f), p, r);
    ACC y = acc_add(acc_fma(r, p, acc_mul(r, r)), acc_set1(1.0f));
    return acc_keep_ge(acc_mul(y, acc_exp2i(n)), x, TL_ATT_EXP_MIN);
}

/* w[r][c] = (q_r . k_c) * scale for R rows x K keys; tail: values in the last 16-value chunk (16: a whole one) */
static inline __attribute__((always_inline)) void score_tile(const float *q, int32_t hd16, int R, const KV_T *k,
                                                             int64_t stride, int K, int32_t tail, float scale, float *w) {
    ACC acc[ATT_ROWS][ATT_KEYS];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < K; c++) acc[r][c] = acc_zero();
    for (int32_t d = 0; d < hd16; d += 16) {
        ACC kv[ATT_KEYS];
        for (int c = 0; c < K; c++) kv[c] = tail < 16 && d + 16 == hd16 ? load_kv_n(k + c * stride + d, tail) : load_kv(k + c * stride + d);
        for (int r = 0; r < R; r++) {
            ACC qv = load_x(q + r * hd16 + d);
            for (int c = 0; c < K; c++) acc[r][c] = acc_fma(acc[r][c], qv, kv[c]);
        }
    }
#if defined(ACC_SUMS4X4) && ATT_ROWS == 4 && ATT_KEYS == 4 /* a whole tile's sums at once */
    if (R == 4 && K == 4) {
        acc_sums4x4(acc, scale, w, TL_ATT_BLOCK);
        return;
    }
#endif
    for (int r = 0; r < R; r++)
        for (int c = 0; c < K; c++) w[r * TL_ATT_BLOCK + c] = acc_sum(acc[r][c]) * scale;
}

/* acc[r][0 .. 16 C) += sum_j w[r][j] v_j over j < most, for R rows; tail as in score_tile, for the last chunk */
static inline __attribute__((always_inline)) void value_tile(const float *w, int R, const KV_T *v, int64_t stride,
                                                             int C, int32_t tail, int32_t most, int32_t len, float *acc, int32_t hd16) {
    ACC sum[ATT_VROWS][ATT_VCHUNKS];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) sum[r][c] = load_x(acc + r * hd16 + 16 * c);
    for (int32_t j = 0; j < most; j++) {
        ACC vv[ATT_VCHUNKS];
        for (int c = 0; c < C; c++) {
            if (j + ATT_AHEAD < len) __builtin_prefetch(v + (j + ATT_AHEAD) * stride + 16 * c, 0, 3);
            vv[c] = tail < 16 && c == C - 1 ? load_kv_n(v + j * stride + 16 * c, tail) : load_kv(v + j * stride + 16 * c);
        }
        for (int r = 0; r < R; r++) {
            ACC wj = acc_set1(w[r * TL_ATT_BLOCK + j]);
            for (int c = 0; c < C; c++) sum[r][c] = acc_fma(sum[r][c], wj, vv[c]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) acc_store(acc + r * hd16 + 16 * c, sum[r][c]);
}

static int32_t most_seen(const int32_t *seen, int32_t n) {
    int32_t most = 0;
    for (int32_t i = 0; i < n; i++) most = seen[i] > most ? seen[i] : most;
    return most;
}

void ATTENTION_KERNEL(const float *q, int32_t rows, int32_t hd, const KV_T *k, const KV_T *v, int64_t stride,
                      int32_t len, const int32_t *seen, float scale, tl_att_state *st) {
    int32_t hd16 = tl_att_hd16(hd), tail = hd % 16 ? hd % 16 : 16;
    // scores: a tile of keys at a time, every tile of rows that sees one of them (the keys stay in L1)
    int32_t most = most_seen(seen, rows);
    for (int32_t j = 0; j < most;) {
        int K = most - j >= ATT_KEYS ? ATT_KEYS : 1;
        for (int c = 0; c < K && j + c + ATT_AHEAD < len; c++) prefetch_row(k + (j + c + ATT_AHEAD) * stride, hd);
        for (int32_t r = 0; r < rows;) {
            int R = rows - r >= ATT_ROWS ? ATT_ROWS : 1;
            if (most_seen(seen + r, R) > j) {
                const float *qr = q + (int64_t)r * hd16;
                const KV_T *kj = k + j * stride;
                float *w = st->w + (int64_t)r * TL_ATT_BLOCK + j;
                // constant tile shapes, so each call unrolls fully
                if (R == ATT_ROWS && K == ATT_KEYS) score_tile(qr, hd16, ATT_ROWS, kj, stride, ATT_KEYS, tail, scale, w);
                else if (R == ATT_ROWS) score_tile(qr, hd16, ATT_ROWS, kj, stride, 1, tail, scale, w);
                else if (K == ATT_KEYS) score_tile(qr, hd16, 1, kj, stride, ATT_KEYS, tail, scale, w);
                else score_tile(qr, hd16, 1, kj, stride, 1, tail, scale, w);
            }
            r += R;
        }
        j += K;
    }
    // each row: its block maximum, the rescale if it grew, softmax weights (0 past what it sees), denominators
    for (int32_t r = 0; r < rows; r++) {
        int32_t n = seen[r];
        float *w = st->w + (int64_t)r * TL_ATT_BLOCK, *acc = st->acc + (int64_t)r * hd16, block_max = st->max[r];
        if (n <= 0) { /* rows beside it may see keys: its weights there are 0 */
            for (int32_t j = 0; j < most; j++) w[j] = 0;
            continue;
        }
        ACC mv = acc_set1(-INFINITY);
        int32_t j = 0;
        for (; j + 16 <= n; j += 16) mv = acc_max(mv, load_x(w + j));
        for (; j < n; j++) block_max = w[j] > block_max ? w[j] : block_max;
        float lanes_max = acc_max_lanes(mv);
        block_max = lanes_max > block_max ? lanes_max : block_max;
        ACC denom = load_x(st->denom + 16 * r);
        if (block_max > st->max[r]) {
            ACC shrink = acc_set1(tl_att_exp(st->max[r] - block_max));
            denom = acc_mul(denom, shrink);
            for (int32_t d = 0; d < hd16; d += 16) acc_store(acc + d, acc_mul(load_x(acc + d), shrink));
            st->max[r] = block_max;
        }
        ACC m = acc_set1(st->max[r]);
        for (j = 0; j < n; j += 16) {
            ACC e = acc_exp(acc_sub(load_x(w + j), m));
            if (n - j < 16) e = acc_keep_n(e, n - j);
            acc_store(w + j, e);
            denom = acc_add(denom, e);
        }
        acc_store(st->denom + 16 * r, denom);
        for (; j < most; j++) w[j] = 0; /* rows beside it may see further: this row's weights there are 0 */
    }
    // weighted values, a tile of rows x value chunks at a time over the keys the tile's rows see
    for (int32_t r = 0; r < rows;) {
        int R = rows - r >= ATT_VROWS ? ATT_VROWS : 1;
        int32_t n = most_seen(seen + r, R);
        const float *w = st->w + (int64_t)r * TL_ATT_BLOCK;
        float *acc = st->acc + (int64_t)r * hd16;
        if (n > 0) {
            int32_t d = 0, full = hd / 16 * 16;
            for (; d + 16 * ATT_VCHUNKS <= full; d += 16 * ATT_VCHUNKS) {
                if (R == ATT_VROWS) value_tile(w, ATT_VROWS, v + d, stride, ATT_VCHUNKS, 16, n, len, acc + d, hd16);
                else value_tile(w, 1, v + d, stride, ATT_VCHUNKS, 16, n, len, acc + d, hd16);
            }
            for (; d < hd16; d += 16) {
                int32_t t = d + 16 <= hd ? 16 : hd - d;
                if (R == ATT_VROWS) value_tile(w, ATT_VROWS, v + d, stride, 1, t, n, len, acc + d, hd16);
                else value_tile(w, 1, v + d, stride, 1, t, n, len, acc + d, hd16);
            }
        }
        r += R;
    }
}
