/* check_kernels.c - every kernel of the named ISAs against its plain C reference, bit for bit, over random weights
 * and shapes: odd row counts, token counts on both sides of the 4x4 tile and of the many-token (decoded) path,
 * rows longer than that path's code buffer, and an output stride wider than the matrix (nothing may be written
 * outside the rows asked for). Built for this CPU or cross-compiled: make test-arm runs it under qemu-aarch64 once
 * per ARM64 level.
 * Usage: check_kernels BEST ISA...  exits 1 unless this CPU's table (after TRITLM_ISA) is BEST and every kernel
 * of each named ISA matches its reference. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../kernels/kernels.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next(void) { /* xorshift64*: the same weights on every machine */
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return (uint32_t)((rng * 0x2545f4914f6cdd1dull) >> 32);
}
static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)(next() >> 8) / 16777216.0f; }

static const tl_kernels *ref;
static int failures, checks;

/* y of the kernel and of the reference, both over a stride ldy = rows + 3 pre-filled with the same sentinel. */
static void compare(const char *what, const char *isa, int64_t rows, int64_t cols, int32_t n, const float *y,
                    const float *y_ref, int64_t ldy) {
    checks++;
    for (int64_t i = 0; i < n * ldy; i++)
        if (memcmp(&y[i], &y_ref[i], sizeof(float)) != 0) {
            printf("MISMATCH %s %s rows=%lld cols=%lld n=%d: token %lld row %lld: %.9g vs reference %.9g\n", what, isa,
                   (long long)rows, (long long)cols, n, (long long)(i / ldy), (long long)(i % ldy), y[i], y_ref[i]);
            failures++;
            return;
        }
}

static float *sentinel_y(int32_t n, int64_t ldy) {
    float *y = malloc(sizeof(float) * n * ldy);
    for (int64_t i = 0; i < n * ldy; i++) y[i] = -12345.0f;
    return y;
}

static void check_ternary(const tl_kernels *k, const char *name, tl_ternary_fn *fn, tl_ternary_fn *fn_ref, int32_t type,
                          int64_t rows, int64_t cols, int32_t n) {
    int64_t wbytes = rows * tl_row_bytes(type, cols), ldy = rows + 3;
    uint8_t *w = malloc(wbytes);
    int8_t *q = malloc(n * cols);
    float *scale = malloc(sizeof(float) * n);
    int32_t *sum = malloc(sizeof(int32_t) * n);
    for (int64_t i = 0; i < wbytes; i++) w[i] = (uint8_t)next(); /* any byte: references decode every bit pattern */
    for (int32_t t = 0; t < n; t++) {
        sum[t] = 0;
        for (int64_t i = 0; i < cols; i++) q[t * cols + i] = (int8_t)next(), sum[t] += q[t * cols + i];
        scale[t] = uniform(0.5f, 100.0f);
    }
    float w_scale = uniform(0.01f, 2.0f), *y = sentinel_y(n, ldy), *y_ref = sentinel_y(n, ldy);
    tl_qact x = {q, scale, sum, n};
    fn_ref(w, cols, 0, rows, &x, w_scale, y_ref, ldy);
    fn(w, cols, 0, rows, &x, w_scale, y, ldy);
    compare(name, k->isa, rows, cols, n, y, y_ref, ldy);
    free(w), free(q), free(scale), free(sum), free(y), free(y_ref);
}

/* The row-list entry on every third row and the last, for n_tokens tokens: the reference kernel's values there, and
 * the sentinel elsewhere. */
static void check_ternary_rows(const tl_kernels *k, const char *name, tl_ternary_rows_fn *fn, tl_ternary_fn *fn_ref,
                               int32_t type, int64_t rows, int64_t cols, int32_t n_tokens) {
    int64_t wbytes = rows * tl_row_bytes(type, cols), n = 0;
    uint8_t *w = malloc(wbytes);
    int8_t *q = malloc(cols * n_tokens);
    int32_t sum[16] = {0}, *list = malloc(sizeof(int32_t) * rows);
    float scale[16];
    for (int64_t i = 0; i < wbytes; i++) w[i] = (uint8_t)next();
    for (int32_t t = 0; t < n_tokens; t++) {
        for (int64_t i = 0; i < cols; i++) q[t * cols + i] = (int8_t)next(), sum[t] += q[t * cols + i];
        scale[t] = uniform(0.5f, 100.0f);
    }
    for (int64_t r = 0; r < rows; r++)
        if (r % 3 == 0 || r == rows - 1) list[n++] = (int32_t)r;
    float w_scale = uniform(0.01f, 2.0f), *y = sentinel_y(n_tokens, rows), *y_ref = sentinel_y(n_tokens, rows);
    tl_qact x = {q, scale, sum, n_tokens};
    for (int64_t i = 0; i < n; i++) fn_ref(w, cols, list[i], list[i] + 1, &x, w_scale, y_ref, rows);
    fn(w, cols, list, n, &x, w_scale, y, rows);
    compare(name, k->isa, rows, cols, n_tokens, y, y_ref, rows);
    free(w), free(q), free(list), free(y), free(y_ref);
}

/* A random finite f16 (subnormals included). */
static uint16_t random_f16(void) {
    uint16_t h = (uint16_t)next();
    return (h & 0x7c00) == 0x7c00 ? h & 0xbfff : h;
}

/* Values per block of a float type (f32, f16, bf16: the kernels' 16-value step). */
static int64_t block_values(int32_t type) {
    return type == TL_Q8_0 ? TL_Q8_0_VALUES : type == TL_Q4_K || type == TL_Q6_K ? TL_QK_K : 16;
}

/* Random weights of a float type: finite, over a range of exponents; quantized blocks are random bytes with finite
 * fp16 scales. */
static void random_float_weights(int32_t type, uint8_t *w, int64_t count) {
    if (block_values(type) > 16) {
        int64_t values = block_values(type), block = tl_row_bytes(type, values);
        for (int64_t i = 0; i < count / values * block; i++) w[i] = (uint8_t)next();
        for (int64_t b = 0; b < count / values; b++) {
            uint16_t d = random_f16(), dmin = random_f16(); /* Q8_0, Q4_K: d first (Q4_K: then dmin); Q6_K: d last */
            memcpy(w + b * block + (type == TL_Q6_K ? block - 2 : 0), &d, 2);
            if (type == TL_Q4_K) memcpy(w + b * block + 2, &dmin, 2);
        }
        return;
    }
    for (int64_t i = 0; i < count; i++) {
        if (type == TL_F32) {
            float f = uniform(-2.0f, 2.0f) * (float)(1 << (next() % 16)) / 256.0f;
            memcpy(w + 4 * i, &f, 4);
        } else {
            uint16_t h = type == TL_F16 ? random_f16() : (uint16_t)next();
            if (type == TL_BF16) h = (uint16_t)((h & 0x807f) | ((0x70 + next() % 32) << 7)); /* exponents 2^-15 .. 2^16 */
            memcpy(w + 2 * i, &h, 2);
        }
    }
}

static void check_float(const tl_kernels *k, const char *name, tl_float_fn *fn, tl_float_fn *fn_ref, int32_t type,
                        int64_t rows, int64_t cols, int32_t n) {
    if (fn == fn_ref) return; /* this ISA runs the reference itself */
    int64_t ldy = rows + 3;
    uint8_t *w = malloc(rows * tl_row_bytes(type, cols));
    float *x = malloc(sizeof(float) * n * cols), *y = sentinel_y(n, ldy), *y_ref = sentinel_y(n, ldy);
    random_float_weights(type, w, rows * cols);
    for (int64_t i = 0; i < n * cols; i++) x[i] = uniform(-1.0f, 1.0f);
    fn_ref(w, cols, 0, rows, x, n, y_ref, ldy);
    fn(w, cols, 0, rows, x, n, y, ldy);
    compare(name, k->isa, rows, cols, n, y, y_ref, ldy);
    free(w), free(x), free(y), free(y_ref);
}

static void check_isa(const tl_kernels *k) {
    static const int64_t ROWS[] = {1, 3, 4, 5, 7, 13};
    static const int32_t TOKENS[] = {1, 2, 3, 4, 5, 7, 8, 9, 13};
    static const int64_t BLOCKS[] = {1, 2, 3, 5};
    struct { const char *name; int32_t type; int64_t block; tl_ternary_fn *fn, *fn_ref; tl_ternary_rows_fn *rows; } tern[] = {
        {"tq1_0", TL_TQ1_0, 256, k->tq1_0, ref->tq1_0, k->tq1_0_rows}, {"tq2_0", TL_TQ2_0, 256, k->tq2_0, ref->tq2_0, k->tq2_0_rows},
        {"i2_s", TL_I2_S, 128, k->i2_s, ref->i2_s, k->i2_s_rows}};
    for (int f = 0; f < 3; f++) {
        int b = 0;
        for (size_t r = 0; r < sizeof ROWS / sizeof ROWS[0]; r++)
            for (size_t t = 0; t < sizeof TOKENS / sizeof TOKENS[0]; t++)
                check_ternary(k, tern[f].name, tern[f].fn, tern[f].fn_ref, tern[f].type, ROWS[r],
                              BLOCKS[b++ % 4] * tern[f].block, TOKENS[t]);
        // rows longer than the many-token code buffer (16384 values) take the fused path with many tokens; 61 of
        // them span two 128 KB row blocks of FUSED_MANY_TOKENS, then 4 + 1 rows
        check_ternary(k, tern[f].name, tern[f].fn, tern[f].fn_ref, tern[f].type, 61, 16384 + tern[f].block, 6);
        for (size_t r = 0; r < sizeof ROWS / sizeof ROWS[0]; r++)
            for (size_t t = 0; t < sizeof TOKENS / sizeof TOKENS[0]; t++)
                check_ternary_rows(k, tern[f].name, tern[f].rows, tern[f].fn_ref, tern[f].type, 4 * ROWS[r] + 1,
                                   BLOCKS[(r + t) % 4] * tern[f].block, TOKENS[t]);
    }
    static const int32_t FLOATS[] = {TL_F32, TL_F16, TL_BF16, TL_Q8_0, TL_Q4_K, TL_Q6_K};
    static const char *const FLOAT_NAMES[] = {"f32", "f16", "bf16", "q8_0", "q4_k", "q6_k"};
    static const int64_t COL_BLOCKS[] = {1, 2, 3, 5, 17};
    for (int f = 0; f < 6; f++) {
        tl_float_fn *fn = tl_float_kernel(k, FLOATS[f]), *fn_ref = tl_float_kernel(ref, FLOATS[f]);
        int c = 0;
        for (size_t r = 0; r < sizeof ROWS / sizeof ROWS[0]; r++)
            for (size_t t = 0; t < sizeof TOKENS / sizeof TOKENS[0]; t++, c++)
                check_float(k, FLOAT_NAMES[f], fn, fn_ref, FLOATS[f], ROWS[r], COL_BLOCKS[c % 5] * block_values(FLOATS[f]), TOKENS[t]);
        // more than 16 tokens (the block kernels take them 16 at a time)
        check_float(k, FLOAT_NAMES[f], fn, fn_ref, FLOATS[f], 3, 2 * block_values(FLOATS[f]), 21);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: check_kernels BEST ISA...\n");
        return 2;
    }
    ref = tl_kernels_named("ref");
    const char *best = tl_kernels_best()->isa;
    if (strcmp(best, argv[1]) != 0) {
        printf("FAIL: this CPU's kernel table is %s, expected %s\n", best, argv[1]);
        return 1;
    }
    for (int i = 2; i < argc; i++) {
        const tl_kernels *k = tl_kernels_named(argv[i]);
        if (!k) {
            printf("FAIL: ISA %s is unknown or not supported by this CPU\n", argv[i]);
            return 1;
        }
        check_isa(k);
    }
    printf("%s: table %s; %d kernel checks of %d ISA(s) against the reference, %d mismatched\n", failures ? "FAIL" : "ok",
           best, checks, argc - 2, failures);
    return failures != 0;
}
