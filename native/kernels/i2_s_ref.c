/* i2_s reference: bitnet.cpp's x86 I2_S. A 128-value block is 32 bytes; byte j holds values j, j+32, j+64,
 * j+96 in bits 7-6, 5-4, 3-2, 1-0 as code = value + 1. Rows are cols/4 bytes; the f32 scale after the last
 * row is read by the loader, not here. */
#include <stdlib.h>
#include "kernels.h"

void tl_i2_s_decode(const uint8_t *block, int8_t *values) {
    for (int j = 0; j < 32; j++)
        for (int n = 0; n < 4; n++) values[j + 32 * n] = (int8_t)(((block[j] >> (6 - 2 * n)) & 3) - 1);
}

void tl_i2_s_ref(const uint8_t *w, int64_t cols, int64_t r0, int64_t r1, const tl_qact *x, float w_scale,
                 float *y, int64_t ldy) {
    tl_ternary_ref(tl_i2_s_decode, TL_I2_S_VALUES, TL_I2_S_BYTES, 1, w, cols, r0, r1, x, w_scale, y, ldy);
}

/* i2_s in row groups (kernels.h: TL_I2_S_R4, TL_GROUP_ROWS) */
void tl_i2_s_r4_ref(const uint8_t *w, int64_t cols, int64_t r0, int64_t r1, const tl_qact *x, float w_scale,
                    float *y, int64_t ldy) {
    tl_ternary_ref(tl_i2_s_decode, TL_I2_S_VALUES, TL_I2_S_BYTES, TL_GROUP_ROWS, w, cols, r0, r1, x, w_scale, y, ldy);
}

/* values (cols, whole i2_s blocks) as an i2_s row: byte j of a block holds values j, j + 32, j + 64, j + 96 */
static void encode_row(const int8_t *values, int64_t cols, uint8_t *row) {
    for (int64_t b = 0; b < cols / TL_I2_S_VALUES; b++) {
        const int8_t *v = values + b * TL_I2_S_VALUES;
        for (int j = 0; j < TL_I2_S_BYTES; j++)
            row[b * TL_I2_S_BYTES + j] = (uint8_t)((v[j] + 1) << 6 | (v[j + 32] + 1) << 4 | (v[j + 64] + 1) << 2 | (v[j + 96] + 1));
    }
}

int32_t tl_i2_s_pack(int32_t type, int32_t group, const uint8_t *w, int64_t rows, int64_t cols, uint8_t *out) {
    int64_t blocks = cols / TL_I2_S_VALUES, row_bytes = blocks * TL_I2_S_BYTES, in_row_bytes = tl_row_bytes(type, cols);
    if ((type != TL_I2_S && type != TL_TQ2_0 && type != TL_TQ1_0) || (group != 1 && group != TL_GROUP_ROWS) || !in_row_bytes ||
        cols % TL_I2_S_VALUES || rows % group)
        return -1;
    uint8_t *rows_buf = malloc((size_t)(group * row_bytes));
    int8_t *values = type == TL_TQ1_0 ? malloc((size_t)cols) : NULL;
    if (!rows_buf || (type == TL_TQ1_0 && !values)) return free(rows_buf), free(values), -1;
    for (int64_t g = 0; g < rows / group; g++) {
        // the group's rows as i2_s rows, then to their place (grouped)
        const uint8_t *in = w + g * group * in_row_bytes;
        if (type == TL_TQ2_0) tl_i2_s_from_tq2_0(in, group * cols / TL_QK_K, rows_buf);
        else if (type == TL_I2_S) memcpy(rows_buf, in, (size_t)(group * row_bytes));
        else
            for (int64_t r = 0; r < group; r++) {
                for (int64_t b = 0; b < cols / TL_TQ1_0_VALUES; b++)
                    tl_tq1_0_decode(in + r * in_row_bytes + b * TL_TQ1_0_BYTES, values + b * TL_TQ1_0_VALUES);
                encode_row(values, cols, rows_buf + r * row_bytes);
            }
        if (group == 1) memcpy(out + g * row_bytes, rows_buf, (size_t)row_bytes);
        else tl_group_rows(rows_buf, row_bytes, TL_I2_S_BYTES, blocks, out + g * group * row_bytes);
    }
    free(rows_buf), free(values);
    return 0;
}

/* tq2_0 blocks as i2_s, exactly (each block's d is dropped: the engine passes a tensor's one scale apart). A tq2_0
 * byte holds values m + 32n of its 32-byte chunk at bits 2n, an i2_s byte at bits 6 - 2n: each byte's four fields
 * reverse, and a 66-byte tq2_0 block becomes two 32-byte i2_s blocks. out may be tq2_0 itself: block b is read whole
 * before its 64 bytes go to 64b, below the next block's start 66(b + 1). */
void tl_i2_s_from_tq2_0(const uint8_t *tq2_0, int64_t blocks, uint8_t *out) {
    for (int64_t b = 0; b < blocks; b++) {
        uint8_t qs[TL_QK_K / 4];
        memcpy(qs, tq2_0 + b * TL_TQ2_0_BYTES, sizeof qs);
        for (int j = 0; j < (int)sizeof qs; j++)
            out[b * (int64_t)sizeof qs + j] = (uint8_t)(qs[j] << 6 | (qs[j] & 0x0C) << 2 | (qs[j] >> 2 & 0x0C) | qs[j] >> 6);
    }
}
