/* bf16's lookup layout and its reference. A bf16 value is a high byte (sign, exponent bits 7..1) and a low byte
 * (exponent bit 0, 7 mantissa bits). Within a row of an output matrix the high bytes take few values (entropy ~2.6
 * bits: the exponents sit in a narrow band below the row's largest), so each is stored as a 4-bit code into the
 * row's table of its 16 most frequent high bytes, and the low byte as it is: 12 bits a value instead of 16, every
 * value exact. Built from bf16 at load where the kernels read it (AVX-512 VBMI: bf16_lut_vbmi.c). A row of cols
 * values (a multiple of 64) is, in order:
 *   a 64-byte header: bytes 0..15 the table T (the 16 high bytes of the row ordered by count, most first, ties by
 *     byte value, bytes that never occur filling it from 0 up); bytes 16..23 the little-endian int64 byte offset from
 *     the row's first byte to its exception list (0 if it has none); bytes 24..27 the int32 length of that list;
 *     the rest 0;
 *   cols / 64 blocks of 96 bytes: bytes 0..63 the low bytes of the block's values 0..63; byte 64 + m (m < 32) the
 *     code of value m in its low nibble and of value 32 + m in its high nibble.
 * Value j's high byte is T[code], except for the row's exceptions (high byte not in T, code 0): its list holds each
 * as 8 bytes, the uint32 column then the uint16 bf16 value and 2 zero bytes, by column. The lists of all rows follow
 * the last row in row order. 12.2 bits a value at 2560 columns (3904 bytes a row, bf16 5120); 8e-6 of the synthetic
 * 2B-4T file's values are exceptions, none of the embedded trained model's. docs/format.md says why this form. */
#include <math.h>
#include <string.h>
#include "kernels.h"

enum { HEADER = TL_BF16_LUT_HEADER, BLOCK = TL_BF16_LUT_BLOCK_VALUES, BLOCK_BYTES = TL_BF16_LUT_BLOCK_BYTES,
       EXCEPTION = TL_BF16_LUT_EXCEPTION_BYTES };

/* A row's table and each high byte's code (16: not in the table); returns how many of its values are exceptions.
 * Four histograms (the high bytes crowd into a few values: one counter would wait on its own increments), and the
 * table chosen among the bytes that occur. */
static int64_t row_table(const uint8_t *row, int64_t cols, uint8_t table[16], uint8_t code[256]) {
    uint32_t count[4][256] = {{0}};
    for (int64_t k = 0; k < cols; k += 4)
        for (int j = 0; j < 4; j++) count[j][row[2 * (k + j) + 1]]++;
    int64_t total[256], outside = 0;
    int n = 0, seen[256];
    for (int b = 0; b < 256; b++) {
        total[b] = (int64_t)count[0][b] + count[1][b] + count[2][b] + count[3][b];
        if (total[b]) seen[n++] = b; /* ascending */
    }
    memset(code, 16, 256);
    for (int slot = 0; slot < 16; slot++) { /* the most frequent byte not taken yet, the lowest of equals */
        int best = -1;
        for (int i = 0; i < n; i++)
            if (code[seen[i]] == 16 && (best < 0 || total[seen[i]] > total[best])) best = seen[i];
        for (int b = 0; best < 0; b++) /* fewer than 16 bytes occur: the lowest unused ones */
            if (code[b] == 16) best = b;
        table[slot] = (uint8_t)best, code[best] = (uint8_t)slot;
    }
    for (int i = 0; i < n; i++) outside += code[seen[i]] == 16 ? total[seen[i]] : 0;
    return outside;
}

int64_t tl_bf16_lut_tables(const uint8_t *bf16, int64_t cols, int64_t r0, int64_t r1, uint8_t *tables) {
    int64_t n = 0;
    for (int64_t r = r0; r < r1; r++) {
        uint8_t code[256];
        n += row_table(bf16 + r * 2 * cols, cols, tables + (r - r0) * 16, code);
    }
    return n;
}

int64_t tl_bf16_lut_pack(const uint8_t *bf16, int64_t cols, int64_t r0, int64_t r1, const uint8_t *tables, uint8_t *rows_out,
                         uint8_t *exceptions_out, int64_t exceptions_at) {
    int64_t row_bytes = tl_bf16_lut_row_bytes(cols);
    uint8_t *exception = exceptions_out;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = bf16 + r * 2 * cols;
        uint8_t *packed = rows_out + (r - r0) * row_bytes, code[256];
        memset(packed, 0, HEADER);
        memcpy(packed, tables + (r - r0) * 16, 16);
        memset(code, 16, 256);
        for (int slot = 0; slot < 16; slot++) code[packed[slot]] = (uint8_t)slot;
        const uint8_t *first = exception;
        for (int64_t b = 0; b < cols / BLOCK; b++) {
            const uint8_t *v = row + 2 * b * BLOCK;
            uint8_t *block = packed + HEADER + b * BLOCK_BYTES, outside = 0;
            for (int m = 0; m < 32; m++) {
                uint8_t c0 = code[v[2 * m + 1]], c1 = code[v[2 * (m + 32) + 1]];
                block[m] = v[2 * m], block[m + 32] = v[2 * (m + 32)];
                block[BLOCK + m] = (uint8_t)((c0 & 15) | (c1 & 15) << 4); /* an exception's 16 leaves code 0 */
                outside |= c0 | c1;
            }
            for (int k = 0; outside & 16 && k < BLOCK; k++) /* list the block's exceptions, by column */
                if (code[v[2 * k + 1]] == 16) {
                    uint32_t col = (uint32_t)(b * BLOCK + k);
                    memcpy(exception, &col, 4);
                    memcpy(exception + 4, v + 2 * k, 2);
                    exception[6] = exception[7] = 0;
                    exception += EXCEPTION;
                }
        }
        int32_t n = (int32_t)((exception - first) / EXCEPTION);
        int64_t offset = n ? exceptions_at + (first - exceptions_out) - r * row_bytes : 0;
        memcpy(packed + 16, &offset, 8);
        memcpy(packed + 24, &n, 4);
    }
    return (exception - exceptions_out) / EXCEPTION;
}

/* Block b of a packed row as its 64 bf16 values, the row's exceptions from *next on patched in (*next advanced). */
static void decode_block(const uint8_t *packed, int64_t b, const uint8_t *list, int32_t n, int32_t *next, uint16_t values[BLOCK]) {
    const uint8_t *block = packed + HEADER + b * BLOCK_BYTES;
    for (int k = 0; k < BLOCK; k++) values[k] = (uint16_t)(packed[block[BLOCK + k % 32] >> (k / 32 * 4) & 15] << 8 | block[k]);
    for (; *next < n; ++*next) {
        uint32_t col;
        memcpy(&col, list + *next * EXCEPTION, 4);
        if (col >= (b + 1) * BLOCK) break;
        memcpy(&values[col % BLOCK], list + *next * EXCEPTION + 4, 2);
    }
}

void tl_bf16_lut_row_to_f32(const uint8_t *w, int64_t cols, int64_t row, float *out) {
    const uint8_t *packed = w + row * tl_bf16_lut_row_bytes(cols);
    int32_t n, next = 0;
    const uint8_t *list = tl_bf16_lut_exceptions(packed, &n);
    uint16_t values[BLOCK];
    for (int64_t b = 0; b < cols / BLOCK; b++) {
        decode_block(packed, b, list, n, &next, values);
        for (int k = 0; k < BLOCK; k++) out[b * BLOCK + k] = tl_bf16_to_f32(values[k]);
    }
}

/* The reference kernel: each row's blocks decoded, then the canonical order of tl_float_fn per token. */
void tl_bf16_lut_ref(const void *w, int64_t cols, int64_t r0, int64_t r1, const float *x, int32_t n, float *y, int64_t ldy) {
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *packed = (const uint8_t *)w + r * tl_bf16_lut_row_bytes(cols);
        int32_t n_exceptions;
        const uint8_t *list = tl_bf16_lut_exceptions(packed, &n_exceptions);
        for (int32_t t = 0; t < n; t++) {
            float acc[16] = {0};
            int32_t next = 0;
            uint16_t values[BLOCK];
            for (int64_t b = 0; b < cols / BLOCK; b++) {
                decode_block(packed, b, list, n_exceptions, &next, values);
                for (int k = 0; k < BLOCK; k++) acc[k % 16] = fmaf(tl_bf16_to_f32(values[k]), x[t * cols + b * BLOCK + k], acc[k % 16]);
            }
            y[t * ldy + r] = tl_sum16(acc);
        }
    }
}
