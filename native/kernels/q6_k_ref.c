/* Q6_K (ggml's k-quant, 6.5625 bits a value): blocks of 256 values = ql[128] (low 4 bits), qh[64] (high 2 bits),
 * 16 int8 sub-block scales, then fp16 d. Used for token embeddings and the output matrix of llama.cpp's and
 * bitnet.cpp's files; the dot product is the canonical float order over the dequantized values. */
#include <string.h>
#include "kernels.h"

void tl_q6_k_dequant(const uint8_t *block, float *values) {
    const uint8_t *ql = block, *qh = block + 128;
    const int8_t *scales = (const int8_t *)(block + 192);
    uint16_t h;
    memcpy(&h, block + 208, 2);
    float d = tl_f16_to_f32(h);
    for (int v = 0; v < TL_QK_K; v++) {
        int half = v / 128, r = v % 128; /* each half: 64 ql bytes (two nibbles) and 32 qh bytes (four pairs) */
        int low = (ql[half * 64 + r % 64] >> (4 * (r / 64))) & 15;
        int high = (qh[half * 32 + r % 32] >> (2 * (r / 32))) & 3;
        values[v] = d * (float)scales[v / 16] * (float)((low | high << 4) - 32); /* (d * scale) * q, as ggml */
    }
}

void tl_q6_k_ref(const void *w, int64_t cols, int64_t r0, int64_t r1, const float *x, int32_t n, float *y, int64_t ldy) {
    tl_kquant_ref(tl_q6_k_dequant, TL_Q6_K_BYTES, w, cols, r0, r1, x, n, y, ldy);
}
