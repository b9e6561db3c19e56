/* kquant_tile.h - the k-quant (Q4_K, Q6_K) GEMM of one SIMD ISA, in tl_kquant_ref's order. Included by
 * <type>_<isa>.c after it defines float_tile.h's ACC, acc_zero(), acc_fma(), acc_sum(), load_x() and:
 *   dequant(block, values)     the block's 256 values, rounded exactly as the reference dequantizes them
 *   KQ_BLOCK_BYTES, KQUANT_KERNEL   bytes per block, and the tl_float_fn to define
 * Each block is dequantized once per row (and 16 tokens) into L1; every token then runs 16 vector FMAs over it,
 * lane l taking k = l mod 16 across blocks as the canonical order does. */

enum { KQ_TOKENS = 16 };

void KQUANT_KERNEL(const void *w, int64_t cols, int64_t r0, int64_t r1, const float *x, int32_t n, float *y, int64_t ldy) {
    float values[TL_QK_K] __attribute__((aligned(64)));
    int64_t blocks = cols / TL_QK_K;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + r * blocks * KQ_BLOCK_BYTES;
        for (int32_t t0 = 0; t0 < n; t0 += KQ_TOKENS) {
            int32_t nt = n - t0 < KQ_TOKENS ? n - t0 : KQ_TOKENS;
            ACC acc[KQ_TOKENS];
            for (int32_t t = 0; t < nt; t++) acc[t] = acc_zero();
            for (int64_t b = 0; b < blocks; b++) {
                dequant(row + b * KQ_BLOCK_BYTES, values);
                for (int32_t t = 0; t < nt; t++) {
                    const float *xb = x + (int64_t)(t0 + t) * cols + b * TL_QK_K;
                    for (int k = 0; k < TL_QK_K; k += 16) acc[t] = acc_fma(acc[t], load_x(values + k), load_x(xb + k));
                }
            }
            for (int32_t t = 0; t < nt; t++) y[(t0 + t) * ldy + r] = acc_sum(acc[t]);
        }
    }
}
