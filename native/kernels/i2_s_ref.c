/* i2_s reference: bitnet.cpp's x86 I2_S. A 128-value block is 32 bytes; byte j holds values j, j+32, j+64,
 * j+96 in bits 7-6, 5-4, 3-2, 1-0 as code = value + 1. Rows are cols/4 bytes; the f32 scale after the last
 * row is read by the loader, not here. */
#include "kernels.h"

void tl_i2_s_decode(const uint8_t *block, int8_t *values) {
    for (int j = 0; j < 32; j++)
        for (int n = 0; n < 4; n++) values[j + 32 * n] = (int8_t)(((block[j] >> (6 - 2 * n)) & 3) - 1);
}

void tl_i2_s_ref(const uint8_t *w, int64_t cols, int64_t r0, int64_t r1, const tl_qact *x, float w_scale,
                 float *y, int64_t ldy) {
    tl_ternary_ref(tl_i2_s_decode, TL_I2_S_VALUES, TL_I2_S_BYTES, w, cols, r0, r1, x, w_scale, y, ldy);
}
