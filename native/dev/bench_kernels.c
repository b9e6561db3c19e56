/* bench_kernels.c - GB/s of each matmul kernel at the BitNet b1.58 2B-4T shapes, every ISA next to its
 * reference. GEMV (1 token) streams copies of the matrix totalling > 256 MB so it measures memory, not cache;
 * GEMM (128 tokens, prefill) reports tokens/s through one matrix. Build and run: make bench-kernels */
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
};
enum { STREAM_BYTES = 256 << 20, GEMM_TOKENS = 128 };

typedef struct {
    const tl_kernels *k;
    const shape *s;
    const uint8_t *w;
    const int8_t *xq;
    const float *xf, *scale;
    const int32_t *sum;
    int32_t n;
    float *y;
} job;

enum { CHUNKS = 16 };

static void run_share(void *ctx, int32_t chunk, int32_t thread) {
    (void)thread;
    job *j = ctx;
    int64_t r0, r1;
    tl_split(j->s->rows, 16, chunk, CHUNKS, &r0, &r1);
    if (r0 >= r1) return;
    if (j->s->type == TL_BF16) { j->k->bf16(j->w, j->s->cols, r0, r1, j->xf, j->n, j->y, j->s->rows); return; }
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
    const char *isas[] = {"ref", "avx2", "avx512"};
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
    printf("%-6s %-12s %-7s %10s %10s %14s\n", "type", "shape", "isa", "1thr GB/s", "2thr GB/s", "pp128 2thr tok/s");
    for (size_t si = 0; si < sizeof SHAPES / sizeof SHAPES[0]; si++) {
        const shape *s = &SHAPES[si];
        int64_t matrix_bytes = s->type == TL_BF16 ? s->rows * s->cols * 2 : s->rows * tl_row_bytes(s->type, s->cols);
        int n_copies = (int)((STREAM_BYTES + matrix_bytes - 1) / matrix_bytes);
        uint8_t *copies = malloc((size_t)(matrix_bytes * n_copies));
        for (int64_t i = 0; i < matrix_bytes * n_copies; i++) copies[i] = (uint8_t)rand();
        if (s->type == TL_BF16) /* finite bf16 values only */
            for (int64_t i = 1; i < matrix_bytes * n_copies; i += 2) copies[i] &= 0x3f;
        for (int ii = 0; ii < 3; ii++) {
            const tl_kernels *k = tl_kernels_named(isas[ii]);
            if (!k) continue;
            job j = {k, s, copies, xq, xf, scale, sum, 1, y};
            double gbs[2], pp = 0;
            for (int nt = 1; nt <= 2; nt++) {
                tl_pool *pool = tl_pool_new(nt);
                double per_call = time_calls(pool, &j, copies, matrix_bytes, n_copies, ii ? min_time : min_time / 10);
                gbs[nt - 1] = matrix_bytes / per_call / 1e9;
                if (nt == 2 && ii) { /* prefill: 128 tokens through one (cached) matrix */
                    j.n = GEMM_TOKENS;
                    pp = GEMM_TOKENS / time_calls(pool, &j, copies, matrix_bytes, 1, min_time);
                    j.n = 1;
                }
                tl_pool_free(pool);
            }
            char dims[32];
            snprintf(dims, sizeof dims, "%lldx%lld", (long long)s->rows, (long long)s->cols);
            printf("%-6s %-12s %-7s %10.1f %10.1f %14.0f\n", s->name, dims, k->isa, gbs[0], gbs[1], pp);
            fflush(stdout);
        }
        free(copies);
    }
    return 0;
}
