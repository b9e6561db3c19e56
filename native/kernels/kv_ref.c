/* 3- and 4-bit KV cache rows (BitNet a4.8: keys after RoPE and values, per token and KV head). A row of dim
 * values (dim % 8 == 0) is symmetric absmax: s = top / max(max|x|, 1e-5) with top = 2^(bits-1) - 1, codes
 * c = clamp(round(x s), -top, top) stored as c + top + 1 (never 0), read back as c / s. Layout: 4 bits: byte i
 * holds values 2i (low nibble) and 2i+1; 3 bits: each 3 bytes hold 8 values, value v of the group at bits
 * 3v..3v+2 of the little-endian 24-bit word; then the f32 s. */
#include <math.h>
#include <string.h>
#include "kernels.h"

int64_t tl_kv_row_bytes(int32_t bits, int64_t dim) { return dim * bits / 8 + 4; }

void tl_kv_quantize_ref(const float *x, int64_t dim, int32_t bits, uint8_t *out) {
    int32_t top = (1 << (bits - 1)) - 1;
    float absmax = 0;
    for (int64_t i = 0; i < dim; i++) absmax = fmaxf(absmax, fabsf(x[i]));
    float s = (float)top / fmaxf(absmax, 1e-5f);
    memset(out, 0, (size_t)(dim * bits / 8));
    for (int64_t i = 0; i < dim; i++) {
        float v = x[i] * s;
        v = v > (float)top ? (float)top : v;
        v = v < (float)-top ? (float)-top : v;
        uint32_t code = (uint32_t)((int32_t)((v + 12582912.0f) - 12582912.0f) + top + 1);
        if (bits == 4) out[i / 2] |= (uint8_t)(code << 4 * (i % 2));
        else {
            uint8_t *g = out + i / 8 * 3;
            uint32_t at = 3 * (uint32_t)(i % 8);
            for (int b = 0; b < 3; b++) g[b] |= (uint8_t)((code << at) >> 8 * b);
        }
    }
    memcpy(out + dim * bits / 8, &s, 4);
}

void tl_kv_dequantize_ref(const uint8_t *in, int64_t dim, int32_t bits, float *x) {
    int32_t top = (1 << (bits - 1)) - 1;
    float s;
    memcpy(&s, in + dim * bits / 8, 4);
    for (int64_t i = 0; i < dim; i++) {
        uint32_t code;
        if (bits == 4) code = in[i / 2] >> 4 * (i % 2) & 15;
        else {
            const uint8_t *g = in + i / 8 * 3;
            code = ((uint32_t)g[0] | (uint32_t)g[1] << 8 | (uint32_t)g[2] << 16) >> 3 * (i % 8) & 7;
        }
        x[i] = (float)((int32_t)code - top - 1) / s;
    }
}

/* f16 cache rows (tl_config.kv_bits 16): IEEE half, rounded to nearest even as the hardware's conversions do. */
void tl_kv_f32_to_f16_ref(const float *x, int64_t n, uint16_t *out) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t f;
        memcpy(&f, &x[i], 4);
        uint32_t sign = f >> 16 & 0x8000u, a = f & 0x7fffffffu, h;
        if (a >= 0x47800000u) h = a > 0x7f800000u ? 0x7e00u : 0x7c00u; /* >= 65536 before rounding: inf; nan */
        else if (a < 0x38800000u) {                                   /* below 2^-14: a multiple of 2^-24 */
            float r;
            memcpy(&r, &a, 4);
            r += 0.5f; /* 0.5's last bit is 2^-24: the float adder rounds to even there */
            memcpy(&h, &r, 4);
            h -= 0x3f000000u;
        } else h = (a + 0xc8000fffu + (a >> 13 & 1)) >> 13; /* rebias (0xc8000000: -112 << 23), round the 13 bits to even */
        out[i] = (uint16_t)(h | sign);
    }
}

void tl_kv_f16_to_f32_ref(const uint16_t *in, int64_t n, float *x) {
    for (int64_t i = 0; i < n; i++) x[i] = tl_f16_to_f32(in[i]);
}
