/* tq1_0 reference: ggml's TQ1_0 block = qs[48], qh[4], fp16 d (ignored: the exact scale comes from metadata).
 * Each byte packs base-3 digits (code = value + 1) as ceil(x * 256 / 243); digit k of a byte is recovered as
 * ((byte * 3^k mod 256) * 3) >> 8. qs[0..31] digit k is value m + 32k, qs[32..47] digit k is value
 * 160 + m + 16k (m = byte index within its part), qh digit k (k < 4) is value 240 + m + 4k. */
#include "kernels.h"

static int8_t digit(uint8_t byte, int k) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    uint8_t shifted = (uint8_t)(byte * pow3[k]);
    return (int8_t)(((uint16_t)shifted * 3 >> 8) - 1);
}

void tl_tq1_0_decode(const uint8_t *block, int8_t *values) {
    for (int k = 0; k < 5; k++) {
        for (int m = 0; m < 32; m++) values[m + 32 * k] = digit(block[m], k);
        for (int m = 0; m < 16; m++) values[160 + m + 16 * k] = digit(block[32 + m], k);
    }
    for (int k = 0; k < 4; k++)
        for (int m = 0; m < 4; m++) values[240 + m + 4 * k] = digit(block[48 + m], k);
}

void tl_tq1_0_ref(const uint8_t *w, int64_t cols, int64_t r0, int64_t r1, const tl_qact *x, float w_scale,
                  float *y, int64_t ldy) {
    tl_ternary_ref(tl_tq1_0_decode, TL_TQ1_0_VALUES, TL_TQ1_0_BYTES, 1, w, cols, r0, r1, x, w_scale, y, ldy);
}
