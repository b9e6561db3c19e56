/* tq2_0 reference: ggml's TQ2_0 block = qs[64] then fp16 d (ignored: the exact scale comes from metadata).
 * Byte m of 32-byte chunk c holds value 128c + m + 32n in bits 2n..2n+1, as code = value + 1. */
#include "kernels.h"

void tl_tq2_0_decode(const uint8_t *block, int8_t *values) {
    for (int c = 0; c < 2; c++)
        for (int m = 0; m < 32; m++)
            for (int n = 0; n < 4; n++) values[128 * c + m + 32 * n] = (int8_t)(((block[32 * c + m] >> (2 * n)) & 3) - 1);
}

void tl_tq2_0_ref(const uint8_t *w, int64_t cols, int64_t r0, int64_t r1, const tl_qact *x, float w_scale,
                  float *y, int64_t ldy) {
    tl_ternary_ref(tl_tq2_0_decode, TL_TQ2_0_VALUES, TL_TQ2_0_BYTES, 1, w, cols, r0, r1, x, w_scale, y, ldy);
}
