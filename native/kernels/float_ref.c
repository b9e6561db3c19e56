/* Float-typed weights (F32, F16, BF16, Q8_0; the k-quants' own files use tl_kquant_ref) against f32 activations, in the canonical summation order of
 * tl_float_fn: 16 lanes of fused multiply-adds (fmaf is exactly what a SIMD FMA computes), then the
 * pairwise lane sum. Also the row -> f32 conversion used for embedding lookups. */
#include <math.h>
#include <string.h>
#include "kernels.h"

float tl_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, mant = h & 1023;
    union { uint32_t u; float f; } v;
    if (exp == 31) v.u = sign | 0x7f800000u | (mant << 13);            /* inf / nan */
    else if (exp) v.u = sign | ((exp + 112) << 23) | (mant << 13);    /* normal: rebias 15 -> 127 */
    else {                                                             /* zero / subnormal: mant * 2^-24 */
        v.f = ldexpf((float)mant, -24);
        v.u |= sign;
    }
    return v.f;
}

void tl_row_to_f32(int32_t type, const void *w, int64_t cols, int64_t row, float *out) {
    if (type == TL_BF16_LUT) { /* the engine's repacked bf16 (bf16_lut_ref.c) */
        tl_bf16_lut_row_to_f32(w, cols, row, out);
        return;
    }
    const uint8_t *p = (const uint8_t *)w + row * tl_row_bytes(type, cols);
    tl_dequant_block_fn *dequant = type == TL_Q4_K ? tl_q4_k_dequant : type == TL_Q6_K ? tl_q6_k_dequant : NULL;
    if (dequant) { /* k-quants: whole TL_QK_K-value blocks */
        for (int64_t b = 0; b < cols / TL_QK_K; b++) dequant(p + b * tl_row_bytes(type, TL_QK_K), out + b * TL_QK_K);
        return;
    }
    for (int64_t k = 0; k < cols; k++) {
        uint16_t h;
        switch (type) {
        case TL_F32: memcpy(&out[k], p + 4 * k, 4); break;
        case TL_F16: memcpy(&h, p + 2 * k, 2); out[k] = tl_f16_to_f32(h); break;
        case TL_BF16: memcpy(&h, p + 2 * k, 2); out[k] = tl_bf16_to_f32(h); break;
        default: { /* Q8_0 */
            const uint8_t *block = p + (k / TL_Q8_0_VALUES) * TL_Q8_0_BYTES;
            memcpy(&h, block, 2);
            out[k] = tl_f16_to_f32(h) * (float)(int8_t)block[2 + k % TL_Q8_0_VALUES];
        }
        }
    }
}

/* One row of a plain (non-block) float type dotted with n tokens, through a per-element loader. */
typedef float load_fn(const uint8_t *row, int64_t k);
static float load_f32(const uint8_t *row, int64_t k) { float f; memcpy(&f, row + 4 * k, 4); return f; }
static float load_f16(const uint8_t *row, int64_t k) { uint16_t h; memcpy(&h, row + 2 * k, 2); return tl_f16_to_f32(h); }
static float load_bf16(const uint8_t *row, int64_t k) { uint16_t h; memcpy(&h, row + 2 * k, 2); return tl_bf16_to_f32(h); }

static void float_ref(load_fn *load, int64_t elem_bytes, const void *w, int64_t cols, int64_t r0, int64_t r1,
                      const float *x, int32_t n, float *y, int64_t ldy) {
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + r * cols * elem_bytes;
        for (int32_t t = 0; t < n; t++) {
            float acc[16] = {0};
            for (int64_t k = 0; k < cols; k++) acc[k % 16] = fmaf(load(row, k), x[t * cols + k], acc[k % 16]);
            y[t * ldy + r] = tl_sum16(acc);
        }
    }
}

void tl_f32_ref(const void *w, int64_t cols, int64_t r0, int64_t r1, const float *x, int32_t n, float *y, int64_t ldy) {
    float_ref(load_f32, 4, w, cols, r0, r1, x, n, y, ldy);
}
void tl_f16_ref(const void *w, int64_t cols, int64_t r0, int64_t r1, const float *x, int32_t n, float *y, int64_t ldy) {
    float_ref(load_f16, 2, w, cols, r0, r1, x, n, y, ldy);
}
void tl_bf16_ref(const void *w, int64_t cols, int64_t r0, int64_t r1, const float *x, int32_t n, float *y, int64_t ldy) {
    float_ref(load_bf16, 2, w, cols, r0, r1, x, n, y, ldy);
}

/* Q8_0: per block, lanes first sum q * x (two values each), then the block adds d * partial to each lane. */
void tl_q8_0_ref(const void *w, int64_t cols, int64_t r0, int64_t r1, const float *x, int32_t n, float *y, int64_t ldy) {
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + r * tl_row_bytes(TL_Q8_0, cols);
        for (int32_t t = 0; t < n; t++) {
            float acc[16] = {0};
            for (int64_t b = 0; b < cols / TL_Q8_0_VALUES; b++) {
                const uint8_t *block = row + b * TL_Q8_0_BYTES;
                uint16_t h;
                memcpy(&h, block, 2);
                float d = tl_f16_to_f32(h), part[16] = {0};
                for (int k = 0; k < TL_Q8_0_VALUES; k++)
                    part[k % 16] = fmaf((float)(int8_t)block[2 + k], x[t * cols + b * TL_Q8_0_VALUES + k], part[k % 16]);
                for (int l = 0; l < 16; l++) acc[l] = fmaf(d, part[l], acc[l]);
            }
            y[t * ldy + r] = tl_sum16(acc);
        }
    }
}

/* A k-quant row: each block dequantized once per row into 256 floats, then dotted with every token in the
 * canonical order (block length 256 is a multiple of 16, so lane k % 16 continues across blocks). */
void tl_kquant_ref(tl_dequant_block_fn *dequant, int64_t block_bytes, const void *w, int64_t cols, int64_t r0,
                   int64_t r1, const float *x, int32_t n, float *y, int64_t ldy) {
    float values[TL_QK_K];
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + r * (cols / TL_QK_K) * block_bytes;
        for (int32_t t0 = 0; t0 < n; t0 += 16) { /* up to 16 tokens' accumulators live at once */
            int32_t nt = n - t0 < 16 ? n - t0 : 16;
            float acc[16][16] = {{0}};
            for (int64_t b = 0; b < cols / TL_QK_K; b++) {
                dequant(row + b * block_bytes, values);
                for (int32_t t = 0; t < nt; t++) {
                    const float *xb = x + (int64_t)(t0 + t) * cols + b * TL_QK_K;
                    for (int k = 0; k < TL_QK_K; k++) acc[t][k % 16] = fmaf(values[k], xb[k], acc[t][k % 16]);
                }
            }
            for (int32_t t = 0; t < nt; t++) y[(t0 + t) * ldy + r] = tl_sum16(acc[t]);
        }
    }
}
