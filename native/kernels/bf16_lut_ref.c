/* bf16's lookup layout and its reference. A bf16 value is a high byte (sign, exponent bits 7..1) and a low byte
 * (exponent bit 0, 7 mantissa bits). Within a row of an output matrix the high bytes take few values (entropy ~2.6
 * bits: the exponents sit in a narrow band below the row's largest), so each is stored as a 4-bit code into the
 * row's table of its 16 most frequent high bytes, and the low byte as it is: 12 bits a value instead of 16, every
 * value exact. Built from bf16 at load where the kernels read it (AVX-512 VBMI: bf16_lut_vbmi.c). A row of cols
 * values (a multiple of 64) is:
 *   a 64-byte header: bytes 0..15 the table T (the 16 high bytes of the row ordered by count, most first, ties by
 *     byte value, bytes that never occur filling it from 0 up); bytes 16..23 the little-endian int64 byte offset from
 *     the header's first byte to the row's exception list (0 if it has none); bytes 24..27 the int32 length of that
 *     list; the rest 0;
 *   cols / 64 blocks of 96 bytes: bytes 0..63 the low bytes of the block's values 0..63; byte 64 + m (m < 32) the
 *     code of value m in its low nibble and of value 32 + m in its high nibble.
 * Rows go in groups of 4 (the last filled up with rows of zero bytes), each group the 4 headers in row order, then
 * block 0 of its rows 0..3, block 1 of rows 0..3, ...: the kernels' 4-row tile reads it in one ascending stream (4
 * rows read side by side as 4 streams got ~25% less from memory). Value j's high byte is T[code], except for the
 * row's exceptions (high byte not in T, code 0): its list holds each as 8 bytes, the uint32 column then the uint16
 * bf16 value and 2 zero bytes, by column. The lists of all rows follow the last group in row order. 12.2 bits a value at 2560 columns (3904 bytes a row, bf16 5120); 8e-6 of the synthetic
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
    int64_t start = tl_bf16_lut_header_at(row_bytes, r0); /* rows_out's place in the layout */
    uint8_t *exception = exceptions_out;
    for (int64_t r = r1; r % TL_BF16_LUT_GROUP; r++) { /* the last group's missing rows */
        memset(rows_out + (tl_bf16_lut_header_at(row_bytes, r) - start), 0, HEADER);
        for (int64_t b = 0; b < cols / BLOCK; b++) memset(rows_out + (tl_bf16_lut_block_at(row_bytes, r, b) - start), 0, BLOCK_BYTES);
    }
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = bf16 + r * 2 * cols;
        uint8_t *header = rows_out + (tl_bf16_lut_header_at(row_bytes, r) - start), code[256];
        memset(header, 0, HEADER);
        memcpy(header, tables + (r - r0) * 16, 16);
        memset(code, 16, 256);
        for (int slot = 0; slot < 16; slot++) code[header[slot]] = (uint8_t)slot;
        const uint8_t *first = exception;
        for (int64_t b = 0; b < cols / BLOCK; b++) {
            const uint8_t *v = row + 2 * b * BLOCK;
            uint8_t *block = rows_out + (tl_bf16_lut_block_at(row_bytes, r, b) - start), outside = 0;
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
        int64_t offset = n ? exceptions_at + (first - exceptions_out) - tl_bf16_lut_header_at(row_bytes, r) : 0;
        memcpy(header + 16, &offset, 8);
        memcpy(header + 24, &n, 4);
    }
    return (exception - exceptions_out) / EXCEPTION;
}

/* Block b of row r of the layout as its 64 bf16 values, the row's exceptions from *next on patched in (*next advanced). */
static void decode_block(const uint8_t *w, int64_t row_bytes, int64_t r, int64_t b, int32_t *next, uint16_t values[BLOCK]) {
    const uint8_t *header = w + tl_bf16_lut_header_at(row_bytes, r), *block = w + tl_bf16_lut_block_at(row_bytes, r, b);
    int32_t n;
    const uint8_t *list = tl_bf16_lut_exceptions(header, &n);
    for (int k = 0; k < BLOCK; k++) values[k] = (uint16_t)(header[block[BLOCK + k % 32] >> (k / 32 * 4) & 15] << 8 | block[k]);
    for (; *next < n; ++*next) {
        uint32_t col;
        memcpy(&col, list + *next * EXCEPTION, 4);
        if (col >= (b + 1) * BLOCK) break;
        memcpy(&values[col % BLOCK], list + *next * EXCEPTION + 4, 2);
    }
}

void tl_bf16_lut_row_to_f32(const uint8_t *w, int64_t cols, int64_t row, float *out) {
    int32_t next = 0;
    uint16_t values[BLOCK];
    for (int64_t b = 0; b < cols / BLOCK; b++) {
        decode_block(w, tl_bf16_lut_row_bytes(cols), row, b, &next, values);
        for (int k = 0; k < BLOCK; k++) out[b * BLOCK + k] = tl_bf16_to_f32(values[k]);
    }
}

/* The reference kernel: each row's blocks decoded, then the canonical order of tl_float_fn per token. */
void tl_bf16_lut_ref(const void *w, int64_t cols, int64_t r0, int64_t r1, const float *x, int32_t n, float *y, int64_t ldy) {
    for (int64_t r = r0; r < r1; r++)
        for (int32_t t = 0; t < n; t++) {
            float acc[16] = {0};
            int32_t next = 0;
            uint16_t values[BLOCK];
            for (int64_t b = 0; b < cols / BLOCK; b++) {
                decode_block(w, tl_bf16_lut_row_bytes(cols), r, b, &next, values);
                for (int k = 0; k < BLOCK; k++) acc[k % 16] = fmaf(tl_bf16_to_f32(values[k]), x[t * cols + b * BLOCK + k], acc[k % 16]);
            }
            y[t * ldy + r] = tl_sum16(acc);
        }
}
