/* tq1_0's lookup layout and its reference. tq1_0 packs 5 base-3 digits a byte, which SIMD can only take apart with
 * multiplies (tq1_0_avx512.c); this layout, built from tq1_0 at load where the kernels read it (AVX-512 VBMI:
 * tq1_0_lut_vbmi.c), holds 3 values in 5 bits instead, so a byte permute against a 32-entry table decodes them.
 * A row of cols values (a multiple of 64) is, in order:
 *   cols / 192 spans of 40 bytes: field g (g < 64) at bits 5g..5g+4 of the span (little-endian over its 40 bytes)
 *     holds values 192s + g, + 64, + 128 as c = c0 + 3 c1 + 9 c2 (c < 27), each code c_k = value + 1;
 *   a tail of cols % 192 values (0, 64 or 128), 16 bytes per 64: byte m of part p holds value 64p + m + 16n at bits
 *     2n..2n+1 as code value + 1.
 * So each 64 codes of a span face 64 consecutive activations. 1.67 bits per value (2560: 536 bytes a row, tq1_0 540;
 * 6912: 1440, tq1_0 1458); the tensor's scale stays the engine's float. docs/format.md says why this form. */
#include <stdlib.h>
#include "kernels.h"

enum { SPAN = TL_LUT_SPAN_VALUES, SPAN_BYTES = TL_LUT_SPAN_BYTES, FIELDS = SPAN / 3 };

static void decode_span(const uint8_t *span, int8_t values[SPAN]) {
    for (int g = 0; g < FIELDS; g++) {
        int bit = 5 * g, c = ((span[bit / 8] | (bit / 8 + 1 < SPAN_BYTES ? span[bit / 8 + 1] << 8 : 0)) >> bit % 8) & 31;
        for (int k = 0; k < 3; k++, c /= 3) values[g + FIELDS * k] = (int8_t)(c % 3 - 1);
    }
}

/* n (64 or 128) tail values */
static void decode_tail(const uint8_t *tail, int64_t n, int8_t *values) {
    for (int64_t i = 0; i < n; i++) values[i] = (int8_t)((tail[i / 64 * 16 + i % 16] >> (2 * (i % 64 / 16)) & 3) - 1);
}

void tl_tq1_0_lut_decode_row(const uint8_t *row, int64_t cols, int8_t *values) {
    int64_t spans = cols / SPAN;
    for (int64_t s = 0; s < spans; s++) decode_span(row + s * SPAN_BYTES, values + s * SPAN);
    decode_tail(row + spans * SPAN_BYTES, cols % SPAN, values + spans * SPAN);
}

/* values (codes, value + 1) to a row: each 8 fields of a span are 40 bits, built in one word */
static void encode_row(const int8_t *values, int64_t cols, uint8_t *row) {
    int64_t spans = cols / SPAN;
    for (int64_t s = 0; s < spans; s++)
        for (int q = 0; q < FIELDS / 8; q++) {
            const int8_t *v = values + s * SPAN + 8 * q;
            uint64_t bits = 0;
            for (int j = 0; j < 8; j++) bits |= (uint64_t)((v[j] + 1) + 3 * (v[j + FIELDS] + 1) + 9 * (v[j + 2 * FIELDS] + 1)) << 5 * j;
            for (int b = 0; b < 5; b++) row[s * SPAN_BYTES + 5 * q + b] = (uint8_t)(bits >> 8 * b);
        }
    for (int64_t m = 0; m < cols % SPAN / 4; m++) {
        const int8_t *v = values + spans * SPAN + m / 16 * 64 + m % 16;
        row[spans * SPAN_BYTES + m] = (uint8_t)((v[0] + 1) | (v[16] + 1) << 2 | (v[32] + 1) << 4 | (v[48] + 1) << 6);
    }
}

/* tq1_0 rows are decoded through a table of each byte's 5 digits (tq1_0_ref.c's decoder takes a multiply per value) */
int32_t tl_tq1_0_lut_pack(const uint8_t *tq1_0, int64_t cols, int64_t r0, int64_t r1, uint8_t *out) {
    int8_t *values = malloc((size_t)cols), digits[256][5];
    if (!values) return -1;
    for (int byte = 0; byte < 256; byte++) {
        int8_t block[TL_TQ1_0_VALUES];
        uint8_t one[TL_TQ1_0_BYTES] = {0};
        one[0] = (uint8_t)byte;
        tl_tq1_0_decode(one, block); /* byte 0's digit k is value 32k */
        for (int k = 0; k < 5; k++) digits[byte][k] = block[32 * k];
    }
    int64_t blocks = cols / TL_TQ1_0_VALUES, row_bytes = tl_tq1_0_lut_row_bytes(cols);
    for (int64_t r = r0; r < r1; r++) {
        for (int64_t b = 0; b < blocks; b++) { /* as tl_tq1_0_decode */
            const uint8_t *block = tq1_0 + (r * blocks + b) * TL_TQ1_0_BYTES;
            int8_t *v = values + b * TL_TQ1_0_VALUES;
            for (int k = 0; k < 5; k++) {
                for (int m = 0; m < 32; m++) v[m + 32 * k] = digits[block[m]][k];
                for (int m = 0; m < 16; m++) v[160 + m + 16 * k] = digits[block[32 + m]][k];
            }
            for (int k = 0; k < 4; k++)
                for (int m = 0; m < 4; m++) v[240 + m + 4 * k] = digits[block[48 + m]][k];
        }
        encode_row(values, cols, out + r * row_bytes);
    }
    free(values);
    return 0;
}

int32_t tl_tq1_0_lut_r4_pack(tl_tq1_0_lut_pack_fn *pack, const uint8_t *tq1_0, int64_t rows, int64_t cols, uint8_t *out) {
    enum { G = TL_GROUP_ROWS };
    int64_t row_bytes = tl_tq1_0_lut_row_bytes(cols), in_row_bytes = tl_row_bytes(TL_TQ1_0, cols);
    uint8_t *group = rows % G ? NULL : malloc((size_t)(G * row_bytes));
    int32_t rc = group ? 0 : -1;
    for (int64_t g = 0; rc == 0 && g < rows / G; g++)
        if ((rc = pack(tq1_0 + g * G * in_row_bytes, cols, 0, G, group)) == 0)
            tl_group_rows(group, row_bytes, SPAN_BYTES, cols / SPAN, out + g * G * row_bytes);
    free(group);
    return rc;
}

/* The reference kernel: each span (and the tail) decoded, then the integer dot per token, as tl_ternary_ref; rows one
 * after another (group 1) or in row groups (TL_GROUP_ROWS). */
static void lut_ref(int64_t group, const uint8_t *w, int64_t cols, int64_t r0, int64_t r1, const tl_qact *x, float w_scale,
                    float *y, int64_t ldy) {
    int64_t spans = cols / SPAN, row_bytes = tl_tq1_0_lut_row_bytes(cols), tail_bytes = row_bytes - spans * SPAN_BYTES;
    int8_t values[SPAN];
    for (int64_t r = r0; r < r1; r++) {
        // row r's span s follows its group's spans s' < s and span s of the group's rows before r; its tail follows the
        // group's spans and the tails of the group's rows before r
        const uint8_t *first = w + r / group * group * row_bytes, *row = first + r % group * SPAN_BYTES;
        const uint8_t *tail = first + group * spans * SPAN_BYTES + r % group * tail_bytes;
        for (int32_t t = 0; t < x->n; t++) {
            const int8_t *q = x->q + t * cols;
            int32_t sum = 0;
            for (int64_t s = 0; s <= spans; s++) {
                int64_t n = s < spans ? SPAN : cols % SPAN;
                if (s < spans) decode_span(row + s * group * SPAN_BYTES, values);
                else decode_tail(tail, n, values);
                for (int64_t k = 0; k < n; k++) sum += values[k] * q[s * SPAN + k];
            }
            y[t * ldy + r] = (float)sum / x->scale[t] * w_scale;
        }
    }
}

void tl_tq1_0_lut_ref(const uint8_t *w, int64_t cols, int64_t r0, int64_t r1, const tl_qact *x, float w_scale,
                      float *y, int64_t ldy) {
    lut_ref(1, w, cols, r0, r1, x, w_scale, y, ldy);
}

void tl_tq1_0_lut_r4_ref(const uint8_t *w, int64_t cols, int64_t r0, int64_t r1, const tl_qact *x, float w_scale,
                         float *y, int64_t ldy) {
    lut_ref(TL_GROUP_ROWS, w, cols, r0, r1, x, w_scale, y, ldy);
}
