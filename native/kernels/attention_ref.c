/* Attention over a block of keys, plainly: each query row alone, each sum in the canonical order kernels.h gives
 * (the reference the SIMD versions in attention_tile.h must equal bit for bit). */
#include <math.h>
#include <string.h>
#include "kernels.h"

void tl_attention_begin(int32_t rows, int32_t hd, tl_att_state *st) {
    int32_t hd16 = tl_att_hd16(hd);
    for (int32_t r = 0; r < rows; r++) st->max[r] = -INFINITY;
    memset(st->denom, 0, sizeof(float) * 16 * (size_t)rows);
    memset(st->acc, 0, sizeof(float) * (size_t)hd16 * (size_t)rows);
}

void tl_attention_end(const tl_att_state *st, int32_t rows, int32_t hd, float *out, int64_t out_stride) {
    int32_t hd16 = tl_att_hd16(hd);
    for (int32_t r = 0; r < rows; r++) {
        float lanes[16];
        memcpy(lanes, st->denom + 16 * r, sizeof lanes);
        float denom = tl_sum16(lanes);
        for (int32_t d = 0; d < hd; d++) out[r * out_stride + d] = st->acc[(int64_t)r * hd16 + d] / denom;
    }
}

void tl_attention_ref(const float *q, int32_t rows, int32_t hd, const float *k, const float *v, int64_t stride,
                      int32_t len, const int32_t *seen, float scale, tl_att_state *st) {
    int32_t hd16 = tl_att_hd16(hd);
    (void)len;
    for (int32_t r = 0; r < rows; r++) {
        const float *qr = q + (int64_t)r * hd16;
        float *w = st->w + (int64_t)r * TL_ATT_BLOCK, *denom = st->denom + 16 * r, *acc = st->acc + (int64_t)r * hd16;
        if (seen[r] <= 0) continue;
        // scores, and the block's largest
        float block_max = st->max[r];
        for (int32_t j = 0; j < seen[r]; j++) {
            float lanes[16] = {0};
            for (int32_t d = 0; d < hd; d++) lanes[d % 16] = fmaf(qr[d], k[j * stride + d], lanes[d % 16]);
            w[j] = tl_sum16(lanes) * scale;
            block_max = w[j] > block_max ? w[j] : block_max;
        }
        // a new maximum rescales what was summed so far
        if (block_max > st->max[r]) {
            float shrink = tl_att_exp(st->max[r] - block_max);
            for (int l = 0; l < 16; l++) denom[l] *= shrink;
            for (int32_t d = 0; d < hd; d++) acc[d] *= shrink;
            st->max[r] = block_max;
        }
        // softmax weights, then the weighted values
        for (int32_t j = 0; j < seen[r]; j++) {
            w[j] = tl_att_exp(w[j] - st->max[r]);
            denom[j % 16] += w[j];
        }
        for (int32_t j = 0; j < seen[r]; j++)
            for (int32_t d = 0; d < hd; d++) acc[d] = fmaf(w[j], v[j * stride + d], acc[d]);
    }
}
