/* Q4_K (ggml's k-quant, 4.5 bits a value): blocks of 256 values = fp16 d, fp16 dmin, 12 bytes of eight 6-bit
 * sub-block scales and mins, then qs[128] (two 4-bit values a byte). value = (d * scale) * q - dmin * min. */
#include <string.h>
#include "kernels.h"

/* The 6-bit scale and min of sub-block j: j < 4 in the low 6 bits of bytes j and j + 4; j >= 4 split into
 * a low nibble in byte j + 4 and the top 2 bits of bytes j - 4 (scale) and j (min). */
static void scale_min(const uint8_t *s, int j, int *scale, int *min) {
    if (j < 4) {
        *scale = s[j] & 63;
        *min = s[j + 4] & 63;
    } else {
        *scale = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
        *min = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

void tl_q4_k_sub_block(const uint8_t *block, int j, float *dl, float *ml) {
    uint16_t h;
    int scale, min;
    scale_min(block + 4, j, &scale, &min);
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
