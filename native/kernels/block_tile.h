/* block_tile.h - the GEMM of a block-quantized float type (Q8_0, Q4_K, Q6_K) on one SIMD ISA, in its reference's
 * order. Included by <type>_<isa>.c after it defines float_tile.h's ACC, acc_zero(), acc_fma(), acc_sum(), load_x()
 * and:
 *   unpack(block, values)      the block's values as floats (then any per-block scale), rounded exactly as the
 *                              reference rounds them
 *   BT_BLOCK_VALUES, BT_BLOCK_BYTES, BT_KERNEL   values and bytes per block, and the tl_float_fn to define
 * and optionally block_dot(acc, values, x): acc after one block (default: the k-quants' canonical order, 16 FMAs
 * over the dequantized values, lane l taking k = l mod 16 across blocks), and float_tile.h's FTILE_ROWS/TOKENS.
 * A tile of rows x tokens (float_tile.h's driver) unpacks each row's block once into L1, then every token runs
 * its FMAs over it: several rows keep several independent FMA chains in flight (one row and one token waited on
 * the FMA latency at every step: x86 q8_0 ran at a quarter of the speed). The k-quants (the default order) also take
 * float_tile.h's FTILE_WIDE_ROWS on AVX-512; q8_0's own block_dot loads its values and x at every FMA, and 2 x 8 tiles
 * ran it slower (`make bench-kernels`: 8 tokens 2.7 -> 3.3x one). */

/* float_tile.h's tile: acc[r][t] += rows r0 .. r0 + R - 1 times tokens 0 .. T - 1 over columns k0 .. k1 - 1 (whole
 * blocks). */
static inline __attribute__((always_inline)) void ftile(const uint8_t *w, int64_t row_bytes, int64_t r0, int R,
                                                        const float *x, int64_t cols, int T, int64_t k0, int64_t k1,
                                                        ACC acc[FTILE][FTILE_T]) {
    float values[FTILE][BT_BLOCK_VALUES + 16] __attribute__((aligned(64))); /* room for per-block scales */
    for (int64_t b = k0 / BT_BLOCK_VALUES; b < k1 / BT_BLOCK_VALUES; b++) {
        for (int r = 0; r < R; r++) {
            const uint8_t *block = w + (r0 + r) * row_bytes + b * BT_BLOCK_BYTES;
            for (int off = 0; off < BT_BLOCK_BYTES; off += 64) prefetch_l2(block + PREFETCH_TILES * R * row_bytes + off);
            unpack(block, values[r]);
        }
#ifdef BLOCK_DOT
        for (int t = 0; t < T; t++)
            for (int r = 0; r < R; r++) acc[r][t] = block_dot(acc[r][t], values[r], x + t * cols + b * BT_BLOCK_VALUES);
#else
        // 16 values at a time: each token's x and each row's values loaded once (folded into every FMA, the loads
        // would outnumber the FMAs 2 to 1 and set the pace)
        for (int k = 0; k < BT_BLOCK_VALUES; k += 16) {
            ACC xv[FTILE_T];
            for (int t = 0; t < T; t++) {
                xv[t] = load_x(x + t * cols + b * BT_BLOCK_VALUES + k);
#ifdef keep_in_register
                keep_in_register(xv[t]);
#endif
            }
            for (int r = 0; r < R; r++) {
                ACC wv = load_x(values[r] + k);
                for (int t = 0; t < T; t++) acc[r][t] = acc_fma(acc[r][t], wv, xv[t]);
            }
        }
#endif
    }
}

#define ROW_BYTES(cols) ((cols) / BT_BLOCK_VALUES * BT_BLOCK_BYTES)
#define FLOAT_KERNEL BT_KERNEL
#include "float_tile.h" /* its driver, over the tiles above */
