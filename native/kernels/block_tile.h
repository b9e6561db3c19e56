/* block_tile.h - the GEMM of a block-quantized float type (Q8_0, Q4_K, Q6_K) on one SIMD ISA, in its reference's
 * order. Included by <type>_<isa>.c after it defines float_tile.h's ACC, acc_zero(), acc_fma(), acc_sum(), load_x()
 * and:
 *   unpack(block, values)      the block's values as floats (then any per-block scale), rounded exactly as the
 *                              reference rounds them
 *   BT_BLOCK_VALUES, BT_BLOCK_BYTES, BT_KERNEL   values and bytes per block, and the tl_float_fn to define
 * and optionally block_dot(acc, values, x): acc after one block (default: the k-quants' canonical order, 16 FMAs
 * over the dequantized values, lane l taking k = l mod 16 across blocks).
 * Each block is unpacked once per row (and 16 tokens) into L1; every token then runs its FMAs over it. */

enum { BT_TOKENS = 16 };

#ifndef BLOCK_DOT
static inline ACC block_dot(ACC acc, const float *values, const float *x) {
    for (int k = 0; k < BT_BLOCK_VALUES; k += 16) acc = acc_fma(acc, load_x(values + k), load_x(x + k));
    return acc;
}
#endif

void BT_KERNEL(const void *w, int64_t cols, int64_t r0, int64_t r1, const float *x, int32_t n, float *y, int64_t ldy) {
    float values[BT_BLOCK_VALUES + 16] __attribute__((aligned(64))); /* room for per-block scales */
    int64_t blocks = cols / BT_BLOCK_VALUES;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + r * blocks * BT_BLOCK_BYTES;
        for (int32_t t0 = 0; t0 < n; t0 += BT_TOKENS) {
            int32_t nt = n - t0 < BT_TOKENS ? n - t0 : BT_TOKENS;
            ACC acc[BT_TOKENS];
            for (int32_t t = 0; t < nt; t++) acc[t] = acc_zero();
            for (int64_t b = 0; b < blocks; b++) {
                unpack(row + b * BT_BLOCK_BYTES, values);
                for (int32_t t = 0; t < nt; t++) acc[t] = block_dot(acc[t], values, x + (int64_t)(t0 + t) * cols + b * BT_BLOCK_VALUES);
            }
            for (int32_t t = 0; t < nt; t++) y[(t0 + t) * ldy + r] = acc_sum(acc[t]);
        }
    }
}
