/* Q4_K (ggml's k-quant, 4.5 bits a value): blocks of 256 values = fp16 d, fp16 dmin, 12 bytes of eight 6-bit
 * sub-block scales and mins, then qs[128] (two 4-bit values a byte). value = (d * scale) * q - dmin * min. */
#include <string.h>
#include "kernels.h"

void tl_q4_k_sub_block(const uint8_t *block, int j, float *dl, float *ml) {
    uint16_t h;
    int scale, min;
    tl_q4_k_scale_min(block + 4, j, &scale, &min);
    memcpy(&h, block, 2);
    *dl = tl_f16_to_f32(h) * (float)scale;
    memcpy(&h, block + 2, 2);
    *ml = tl_f16_to_f32(h) * (float)min;
}

void tl_q4_k_dequant(const uint8_t *block, float *values) {
    const uint8_t *qs = block + 16;
    for (int j = 0; j < 8; j++) { /* sub-blocks of 32: pair j/2 of 32 bytes, low nibbles then high */
        float dl, ml;
        tl_q4_k_sub_block(block, j, &dl, &ml);
        for (int l = 0; l < 32; l++) values[j * 32 + l] = dl * (float)((qs[j / 2 * 32 + l] >> (4 * (j % 2))) & 15) - ml;
    }
}

void tl_q4_k_ref(const void *w, int64_t cols, int64_t r0, int64_t r1, const float *x, int32_t n, float *y, int64_t ldy) {
    tl_kquant_ref(tl_q4_k_dequant, TL_Q4_K_BYTES, w, cols, r0, r1, x, n, y, ldy);
}
