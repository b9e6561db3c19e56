/* The reference ternary matmul shared by all formats: decode each block to values, integer dot per token. */
#include "kernels.h"

void tl_ternary_ref(tl_decode_block_fn *decode, int64_t block_values, int64_t block_bytes, int64_t group, const uint8_t *w,
                    int64_t cols, int64_t r0, int64_t r1, const tl_qact *x, float w_scale, float *y, int64_t ldy) {
    int64_t blocks = cols / block_values, row_bytes = blocks * block_bytes;
    int8_t values[TL_QK_K]; /* the largest ternary block */
    for (int64_t r = r0; r < r1; r++) {
        // row r's block b follows its group's blocks b' < b and block b of the group's rows before r (group 1: rows in turn)
        const uint8_t *row = w + r / group * group * row_bytes + r % group * block_bytes;
        for (int32_t t = 0; t < x->n; t++) {
            const int8_t *q = x->q + t * cols;
            int32_t sum = 0;
            for (int64_t b = 0; b < blocks; b++) {
                decode(row + b * group * block_bytes, values);
                for (int64_t k = 0; k < block_values; k++) sum += values[k] * q[b * block_values + k];
            }
            y[t * ldy + r] = (float)sum / x->scale[t] * w_scale;
        }
    }
}

void tl_group_rows(const uint8_t *rows, int64_t row_bytes, int64_t block_bytes, int64_t blocks, uint8_t *out) {
    int64_t tail = row_bytes - blocks * block_bytes;
    for (int64_t r = 0; r < TL_GROUP_ROWS; r++) {
        for (int64_t b = 0; b < blocks; b++)
            memcpy(out + tl_group_block_at(row_bytes, block_bytes, r, b), rows + r * row_bytes + b * block_bytes, (size_t)block_bytes);
        memcpy(out + TL_GROUP_ROWS * blocks * block_bytes + r * tail, rows + r * row_bytes + blocks * block_bytes, (size_t)tail);
    }
}

/* The reference row-list entries: each listed row on its own through the format's reference kernel. */
#define ROWS_REF(type)                                                                                                \
    void tl_##type##_ref_rows(const uint8_t *w, int64_t cols, const int32_t *rows, int64_t n, const tl_qact *x,      \
                              float w_scale, float *y, int64_t ldy) {                                                \
        for (int64_t i = 0; i < n; i++) tl_##type##_ref(w, cols, rows[i], rows[i] + 1, x, w_scale, y, ldy);          \
    }
ROWS_REF(tq1_0)
ROWS_REF(tq2_0)
ROWS_REF(i2_s)
ROWS_REF(i2_s_r4)
ROWS_REF(tq1_0_lut)
ROWS_REF(tq1_0_lut_r4)
