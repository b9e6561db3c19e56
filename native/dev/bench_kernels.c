/* bench_kernels.c - each matmul kernel at the BitNet b1.58 2B-4T shapes, every ISA next to its reference:
 * GEMV (1 token) in cache (the first rows, < 512 KB, over and over: the kernel's own ceiling) and from memory
 * (copies of the matrix totalling > 256 MB), in GB/s of weights read; GEMM (128 tokens, prefill) in GMAC/s
 * on one thread and tokens/s through the whole matrix on two.
 * Build and run: make bench-kernels [ARGS="seconds [type]"] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "../kernels/kernels.h"
#include "../threads.h"
#include "../tritlm.h"

typedef struct { int32_t type; const char *name; int64_t rows, cols; } shape;
static const shape SHAPES[] = {
    {TL_TQ2_0, "tq2_0", 2560, 2560}, {TL_TQ2_0, "tq2_0", 640, 2560}, {TL_TQ2_0, "tq2_0", 6912, 2560},
    {TL_TQ2_0, "tq2_0", 2560, 6912}, {TL_TQ1_0, "tq1_0", 2560, 2560}, {TL_TQ1_0, "tq1_0", 640, 2560},
    {TL_TQ1_0, "tq1_0", 6912, 2560}, {TL_TQ1_0, "tq1_0", 2560, 6912}, {TL_I2_S, "i2_s", 2560, 2560},
    {TL_I2_S, "i2_s", 6912, 2560}, {TL_I2_S, "i2_s", 2560, 6912}, {TL_BF16, "bf16", 128256, 2560},
    {TL_Q8_0, "q8_0", 128256, 2560}, {TL_Q6_K, "q6_k", 128256, 2560}, {TL_Q4_K, "q4_k", 128256, 2560},
};
enum { STREAM_BYTES = 256 << 20, CACHE_BYTES = 512 << 10, GEMM_TOKENS = 128 };

typedef struct {
    const tl_kernels *k;
    const shape *s;
    const uint8_t *w;
    const int8_t *xq;
    const float *xf, *scale;
    const int32_t *sum;
    int32_t n;
    int64_t rows; /* the first rows of the matrix that a call runs */
    float *y;
} job;

enum { CHUNKS = 16 };

static void run_share(void *ctx, int32_t chunk, int32_t thread) {
    (void)thread;
    job *j = ctx;
    int64_t r0, r1;
    tl_split(j->rows, 16, chunk, CHUNKS, &r0, &r1);
    if (r0 >= r1) return;
    tl_float_fn *ff = tl_float_kernel(j->k, j->s->type);
    if (ff) { ff(j->w, j->s->cols, r0, r1, j->xf, j->n, j->y, j->s->rows); return; }
    tl_ternary_fn *fn = j->s->type == TL_TQ2_0 ? j->k->tq2_0 : j->s->type == TL_TQ1_0 ? j->k->tq1_0 : j->k->i2_s;
    tl_qact qa = {j->xq, j->scale, j->sum, j->n};
    fn(j->w, j->s->cols, r0, r1, &qa, 1.0f, j->y, j->s->rows);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Seconds of the fastest call, cycling through n_copies matrices for at least min_time (and 3 calls). The
 * fastest call is the one no other process interrupted: this machine's cores are shared. */
static double time_calls(tl_pool *pool, job *j, const uint8_t *copies, int64_t matrix_bytes, int n_copies, double min_time) {
    double start = now(), best = 1e30;
    for (int calls = 0; calls < 3 || now() - start < min_time; calls++) {
        j->w = copies + (int64_t)(calls % n_copies) * matrix_bytes;
        double t0 = now();
        tl_pool_run(pool, run_share, j, CHUNKS);
        double dt = now() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

int main(int argc, char **argv) {
    const char *isas[] = {"ref", "avx2", "avx512", "neon", "dotprod", "i8mm"}; /* those this CPU has */
    double min_time = argc > 1 ? atof(argv[1]) : 0.3;
    int64_t max_cols = 6912;
    int8_t *xq = malloc(GEMM_TOKENS * max_cols);
    float *xf = malloc(sizeof(float) * GEMM_TOKENS * max_cols), scale[GEMM_TOKENS];
    int32_t sum[GEMM_TOKENS];
    float *y = malloc(sizeof(float) * GEMM_TOKENS * 128256);
    srand(1);
    for (int64_t i = 0; i < GEMM_TOKENS * max_cols; i++) xq[i] = (int8_t)(rand() % 255 - 127), xf[i] = (float)(rand() % 2001 - 1000) / 1000;
    for (int t = 0; t < GEMM_TOKENS; t++) scale[t] = 1, sum[t] = 0;
    printf("memory read bandwidth: %.1f GB/s (1 thread), %.1f GB/s (2 threads)\n", tl_read_bandwidth(STREAM_BYTES, 1),
           tl_read_bandwidth(STREAM_BYTES, 2));
    const char *only = argc > 2 ? argv[2] : NULL; /* one type's shapes only */
    printf("%-6s %-12s %-7s %12s %12s %12s %14s %14s\n", "type", "shape", "isa", "cache GB/s", "mem 1t GB/s",
           "mem 2t GB/s", "pp 1t GMAC/s", "pp128 2t tok/s");
    for (size_t si = 0; si < sizeof SHAPES / sizeof SHAPES[0]; si++) {
        const shape *s = &SHAPES[si];
        if (only && strcmp(only, s->name) != 0) continue;
        int64_t row_bytes = s->type == TL_BF16 ? s->cols * 2 : tl_row_bytes(s->type, s->cols);
        int64_t matrix_bytes = s->rows * row_bytes, cached_rows = CACHE_BYTES / row_bytes / 16 * 16;
        int n_copies = (int)((STREAM_BYTES + matrix_bytes - 1) / matrix_bytes);
        uint8_t *copies = malloc((size_t)(matrix_bytes * n_copies));
        for (int64_t i = 0; i < matrix_bytes * n_copies; i++) copies[i] = (uint8_t)rand();
        if (s->type == TL_BF16) /* finite bf16 values only */
            for (int64_t i = 1; i < matrix_bytes * n_copies; i += 2) copies[i] &= 0x3f;
        if (s->type == TL_Q8_0 || s->type == TL_Q6_K || s->type == TL_Q4_K) /* finite fp16 block scales */
            for (int64_t i = 0; i < matrix_bytes * n_copies; i++) copies[i] &= 0x3b;
        for (int ii = 0; ii < (int)(sizeof isas / sizeof isas[0]); ii++) {
            const tl_kernels *k = tl_kernels_named(isas[ii]);
            if (!k) continue;
            double t = ii ? min_time : min_time / 10, gbs[2], cache, gmacs = 0, pp = 0;
            tl_pool *pools[2] = {tl_pool_new(1), tl_pool_new(2)};
            job j = {k, s, copies, xq, xf, scale, sum, 1, cached_rows, y};
            cache = cached_rows * row_bytes / time_calls(pools[0], &j, copies, matrix_bytes, 1, t) / 1e9;
            j.rows = s->rows;
            for (int nt = 1; nt <= 2; nt++)
                gbs[nt - 1] = matrix_bytes / time_calls(pools[nt - 1], &j, copies, matrix_bytes, n_copies, t) / 1e9;
            if (ii) { /* prefill: 128 tokens through a few cached rows (1 thread), through the matrix (2 threads) */
                j.n = GEMM_TOKENS;
                j.rows = 64;
                gmacs = 64.0 * s->cols * GEMM_TOKENS / time_calls(pools[0], &j, copies, matrix_bytes, 1, t) / 1e9;
                j.rows = s->rows;
                pp = GEMM_TOKENS / time_calls(pools[1], &j, copies, matrix_bytes, 1, t);
            }
            tl_pool_free(pools[0]);
            tl_pool_free(pools[1]);
            char dims[32];
            snprintf(dims, sizeof dims, "%lldx%lld", (long long)s->rows, (long long)s->cols);
            printf("%-6s %-12s %-7s %12.1f %12.1f %12.1f %14.0f %14.0f\n", s->name, dims, k->isa, cache, gbs[0], gbs[1],
                   gmacs, pp);
            fflush(stdout);
        }
        free(copies);
    }
    return 0;
}
