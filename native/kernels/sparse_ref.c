/* Sparse-input GEMV: only the weight columns of nonzero inputs are read. It serves Q-Sparse's top-K inputs and
 * relu² models' down_proj input, whose int8 codes are mostly exact zeros (a zero input contributes nothing, so
 * skipping it is lossless).
 *
 * That needs the weights stored by input channel, built once at load from any ternary row format: column j is
 * ceil(rows / 256) consecutive 64-byte lines (one cache line each), line t covering rows 256t .. 256t + 255 as 2-bit
 * codes W + 1 (i2_s's): bits 2q, 2q + 1 of byte p hold row 256t + 64q + row_of(p), rows past the matrix code 1 (0).
 * row_of swaps the two middle base-4 digits of p (p = 16a + 4b + m holds row 16b + 4a + m): interleaving four
 * columns' lines a byte then two bytes at a time (x86 vpunpck{l,h}bw, then {l,h}wd, which work within 16-byte lanes)
 * then lines each row's four codes up in 32-bit lanes of consecutive rows, ready for a 4-byte dot (VNNI) with the four
 * inputs. A kept input reads one contiguous run of rows / 4 bytes (640 B for 2560 rows), which the hardware
 * prefetchers stream like a dense row; a layout cut into row tiles first would scatter each input over single lines,
 * far apart, and run at memory latency instead.
 *
 * The kernel adds the kept inputs' integer contributions to int32 row sums, so a caller can split the kept inputs
 * over threads and add the partial sums in any order: the result equals the dense kernels' on the same codes bit
 * for bit once scaled as they do, y[r] = (float)sum[r] / x_scale * w_scale. */
#include <stdlib.h>
#include <string.h>
#include "kernels.h"

/* the byte of a line's 64-byte row group that holds row r (0 <= r < 64); its own inverse */
static int row_byte(int r) { return 16 * (r / 4 % 4) + 4 * (r / 16) + r % 4; }

int64_t tl_sparse_bytes(int64_t rows, int64_t cols) {
    return (rows + TL_SPARSE_TILE - 1) / TL_SPARSE_TILE * cols * 64;
}

int32_t tl_sparse_pack(int32_t type, const void *w, int64_t rows, int64_t cols, uint8_t *out) {
    tl_decode_block_fn *decode = type == TL_TQ2_0 ? tl_tq2_0_decode : type == TL_TQ1_0 ? tl_tq1_0_decode
                               : type == TL_I2_S ? tl_i2_s_decode : NULL;
    int64_t block = tl_block_values(type), row_bytes = tl_row_bytes(type, cols);
    int64_t tiles = (rows + TL_SPARSE_TILE - 1) / TL_SPARSE_TILE;
    int8_t(*values)[TL_QK_K] = calloc(TL_SPARSE_TILE, sizeof *values); /* a tile's rows of one block, decoded */
    if (!decode || !row_bytes || block > TL_QK_K || !values) return free(values), -1;
    // a tile of rows and a block of columns at a time: decoded once, then each column's line written whole
    for (int64_t t = 0; t < tiles; t++)
        for (int64_t b = 0; b < cols / block; b++) {
            int64_t n = rows - t * TL_SPARSE_TILE < TL_SPARSE_TILE ? rows - t * TL_SPARSE_TILE : TL_SPARSE_TILE;
            for (int64_t r = 0; r < TL_SPARSE_TILE; r++)
                if (r < n) decode((const uint8_t *)w + (t * TL_SPARSE_TILE + r) * row_bytes + b * (row_bytes / (cols / block)), values[r]);
                else memset(values[r], 0, TL_QK_K); /* rows past the matrix */
            for (int64_t i = 0; i < block; i++) {
                uint8_t *line = out + ((b * block + i) * tiles + t) * 64;
                memset(line, 0, 64);
                for (int r = 0; r < TL_SPARSE_TILE; r++) line[row_byte(r % 64)] |= (uint8_t)((values[r][i] + 1) << 2 * (r / 64));
            }
        }
    free(values);
    return 0;
}

void tl_sparse_ref(const uint8_t *w, int64_t rows, const int32_t *idx, const int8_t *val, int32_t k, int32_t *sum) {
    int64_t tiles = (rows + TL_SPARSE_TILE - 1) / TL_SPARSE_TILE;
    for (int32_t i = 0; i < k; i++) {
        const uint8_t *column = w + (int64_t)idx[i] * tiles * 64;
        for (int64_t r = 0; r < tiles * TL_SPARSE_TILE; r++) {
            int code = column[r / TL_SPARSE_TILE * 64 + row_byte((int)(r % 64))] >> 2 * (r % TL_SPARSE_TILE / 64) & 3;
            sum[r] += (code - 1) * val[i];
        }
    }
}
