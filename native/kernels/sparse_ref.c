/* Sparse-input GEMV (Q-Sparse, top-K activations): only the weight columns of kept inputs are read.
 *
 * That needs a column-major layout, built once at load from any ternary row format: rows are cut into tiles of
 * TL_SPARSE_TILE = 256, and tile t holds, for each input column j in order, 64 bytes (one cache line): a bit
 * per row set where W[256t + r][j] = +1 (bytes 0-31, bit r % 8 of byte r / 8), then where it is -1 (bytes
 * 32-63). 2 bits per weight as i2_s; rows past the matrix are zero. A token's dot then reads k lines per tile
 * (k = kept inputs) instead of all: at 50% top-K, half the weight bytes.
 *
 * Sums are exact integers, so the result equals the dense kernels' on the masked input bit for bit:
 * y[r] = (float)(sum_i W[r][idx[i]] val[i]) / x_scale * w_scale. */
#include <string.h>
#include "kernels.h"

int64_t tl_sparse_bytes(int64_t rows, int64_t cols) {
    return (rows + TL_SPARSE_TILE - 1) / TL_SPARSE_TILE * cols * 64;
}

int32_t tl_sparse_pack(int32_t type, const void *w, int64_t rows, int64_t cols, uint8_t *out) {
    tl_decode_block_fn *decode = type == TL_TQ2_0 ? tl_tq2_0_decode : type == TL_TQ1_0 ? tl_tq1_0_decode
                               : type == TL_I2_S ? tl_i2_s_decode : NULL;
    int64_t block = type == TL_I2_S ? TL_I2_S_VALUES : TL_QK_K, row_bytes = tl_row_bytes(type, cols);
    if (!decode || !row_bytes) return -1;
    memset(out, 0, (size_t)tl_sparse_bytes(rows, cols));
    int8_t values[256];
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *row = (const uint8_t *)w + r * row_bytes;
        for (int64_t b = 0; b < cols / block; b++) {
            decode(row + b * (row_bytes / (cols / block)), values);
            for (int64_t i = 0; i < block; i++) {
                int64_t j = b * block + i, rr = r % TL_SPARSE_TILE;
                uint8_t *line = out + ((r / TL_SPARSE_TILE) * cols + j) * 64;
                if (values[i] > 0) line[rr / 8] |= (uint8_t)(1u << (rr % 8));
                if (values[i] < 0) line[32 + rr / 8] |= (uint8_t)(1u << (rr % 8));
            }
        }
    }
    return 0;
}

void tl_sparse_ref(const uint8_t *w, int64_t cols, int64_t r0, int64_t r1, const int32_t *idx, const int8_t *val,
                   int32_t k, float x_scale, float w_scale, float *y) {
    for (int64_t t0 = r0; t0 < r1; t0 += TL_SPARSE_TILE) {
        int32_t sum[TL_SPARSE_TILE] = {0};
        const uint8_t *tile = w + (t0 / TL_SPARSE_TILE) * cols * 64;
        for (int32_t i = 0; i < k; i++) {
            const uint8_t *line = tile + (int64_t)idx[i] * 64;
            for (int r = 0; r < TL_SPARSE_TILE; r++) {
                if (line[r / 8] >> (r % 8) & 1) sum[r] += val[i];
                if (line[32 + r / 8] >> (r % 8) & 1) sum[r] -= val[i];
            }
        }
        for (int64_t r = t0; r < r1 && r < t0 + TL_SPARSE_TILE; r++) y[r] = (float)sum[r - t0] / x_scale * w_scale;
    }
}
