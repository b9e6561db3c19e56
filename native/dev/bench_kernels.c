/* bench_kernels.c - each matmul kernel at the BitNet b1.58 2B-4T shapes, every ISA next to its reference:
 * GEMV (1 token; also 2 and 4 tokens, batched decode) in cache (the first rows, < 512 KB, over and over: the kernel's
 * own ceiling) and from memory (copies of the matrix totalling > 256 MB), in GB/s of weights read; GEMM (128 tokens,
 * prefill) in GMAC/s on one thread and tokens/s through the whole matrix on two; batched decode (8 tokens, as 8 streams
 * decode together) from memory on two threads, as the time of 8 tokens over the time of one (1.0: 8 for the price of
 * one). Then the relu² sparse-decode kernels against the dense GEMV, from memory on one thread: down_proj (2560x6912)
 * over a fraction of nonzero inputs (sparse_*.c), and up_proj (6912x2560) on a fraction of its rows (the row-list entry).
 * bf16_lut is bf16 repacked at load where an ISA reads it so (kernels.h), packed here from values drawn as a trained
 * output matrix's (normal, one scale), so it holds as few exceptions.
 * Matrices streamed from memory sit on 2 MiB pages where the system has transparent huge pages, as the engine's weights
 * and the bandwidth probe's buffer, so its "mem" columns compare with the probe (on 4 KiB pages one run read the bf16
 * GEMV at 29 GB/s on 2 threads where the probe, on 2 MiB pages, read 79).
 * On AVX-512 it first prints one core's compute peaks (int8 vpdpbusd, f32 FMA): the ceilings of the GMAC/s column; with
 * AVX-VNNI, those of the AVX2 levels' int8 dots on ymm too.
 * Build and run: make bench-kernels [ARGS="seconds [type]"] (type: the types whose names start with it) */
#define _DEFAULT_SOURCE /* clock_gettime */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "../kernels/kernels.h"
#include "../probe.h"
#include "../threads.h"
#include "../tritlm.h"

typedef struct { int32_t type; const char *name; int64_t rows, cols; } shape;
static const shape SHAPES[] = {
    {TL_TQ2_0, "tq2_0", 2560, 2560}, {TL_TQ2_0, "tq2_0", 640, 2560}, {TL_TQ2_0, "tq2_0", 6912, 2560},
    {TL_TQ2_0, "tq2_0", 2560, 6912}, {TL_TQ1_0, "tq1_0", 2560, 2560}, {TL_TQ1_0, "tq1_0", 640, 2560},
    {TL_TQ1_0, "tq1_0", 6912, 2560}, {TL_TQ1_0, "tq1_0", 2560, 6912}, {TL_TQ1_0_LUT, "tq1_0_lut", 2560, 2560},
    {TL_TQ1_0_LUT, "tq1_0_lut", 640, 2560}, {TL_TQ1_0_LUT, "tq1_0_lut", 6912, 2560}, {TL_TQ1_0_LUT, "tq1_0_lut", 2560, 6912},
    {TL_TQ1_0_LUT_R4, "tq1_0_lut_r4", 2560, 2560}, {TL_TQ1_0_LUT_R4, "tq1_0_lut_r4", 640, 2560},
    {TL_TQ1_0_LUT_R4, "tq1_0_lut_r4", 6912, 2560}, {TL_TQ1_0_LUT_R4, "tq1_0_lut_r4", 2560, 6912},
    {TL_I2_S, "i2_s", 2560, 2560},
    {TL_I2_S, "i2_s", 6912, 2560}, {TL_I2_S, "i2_s", 2560, 6912}, {TL_I2_S_R4, "i2_s_r4", 2560, 2560},
    {TL_I2_S_R4, "i2_s_r4", 6912, 2560}, {TL_I2_S_R4, "i2_s_r4", 2560, 6912}, {TL_BF16, "bf16", 128256, 2560},
    {TL_BF16_LUT, "bf16_lut", 128256, 2560},
    {TL_Q8_0, "q8_0", 128256, 2560}, {TL_Q6_K, "q6_k", 128256, 2560}, {TL_Q4_K, "q4_k", 128256, 2560},
};
enum { STREAM_BYTES = 256 << 20, CACHE_BYTES = 512 << 10, GEMM_TOKENS = 128, BATCH_TOKENS = 8 };

/* A ternary type's kernel in a table; tq1_0_lut(_r4) and i2_s_r4, repacked at load where an ISA reads them so
 * (kernels.h), have their references outside the tables. NULL: the ISA has none. */
static tl_ternary_fn *ternary_fn(const tl_kernels *k, int32_t type) {
    if (type == TL_TQ1_0_LUT) return strcmp(k->isa, "ref") == 0 ? tl_tq1_0_lut_ref : k->tq1_0_lut;
    if (type == TL_TQ1_0_LUT_R4) return strcmp(k->isa, "ref") == 0 ? tl_tq1_0_lut_r4_ref : k->tq1_0_lut_r4;
    if (type == TL_I2_S_R4) return strcmp(k->isa, "ref") == 0 ? tl_i2_s_r4_ref : k->i2_s_r4;
    return type == TL_TQ2_0 ? k->tq2_0 : type == TL_TQ1_0 ? k->tq1_0 : type == TL_I2_S ? k->i2_s : NULL;
}
/* A float type's kernel in a table; bf16_lut as tq1_0_lut */
static tl_float_fn *float_fn(const tl_kernels *k, int32_t type) {
    if (type == TL_BF16_LUT) return strcmp(k->isa, "ref") == 0 ? tl_bf16_lut_ref : k->bf16_lut;
    return tl_float_kernel(k, type);
}
static tl_ternary_rows_fn *ternary_rows_fn(const tl_kernels *k, int32_t type) {
    if (type == TL_TQ1_0_LUT) return strcmp(k->isa, "ref") == 0 ? tl_tq1_0_lut_ref_rows : k->tq1_0_lut_rows;
    if (type == TL_TQ1_0_LUT_R4) return strcmp(k->isa, "ref") == 0 ? tl_tq1_0_lut_r4_ref_rows : k->tq1_0_lut_r4_rows;
    if (type == TL_I2_S_R4) return strcmp(k->isa, "ref") == 0 ? tl_i2_s_r4_ref_rows : k->i2_s_r4_rows;
    return type == TL_TQ2_0 ? k->tq2_0_rows : type == TL_TQ1_0 ? k->tq1_0_rows : k->i2_s_rows;
}

/* Whether ISA isas[i] runs a type with the same kernel as a lower one this CPU has (avx512vbmi adds only tq1_0_lut and bf16_lut, amx only i2_s). */
static int same_as_lower(const char *const *isas, int i, int32_t type) {
    const tl_kernels *k = tl_kernels_named(isas[i]);
    for (int j = 0; j < i; j++) {
        const tl_kernels *lower = tl_kernels_named(isas[j]);
        if (lower && (float_fn(k, type) ? float_fn(k, type) == float_fn(lower, type)
                                               : ternary_fn(k, type) == ternary_fn(lower, type)))
            return 1;
    }
    return 0;
}

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
    tl_float_fn *ff = float_fn(j->k, j->s->type);
    if (ff) { ff(j->w, j->s->cols, r0, r1, j->xf, j->n, j->y, j->s->rows); return; }
    tl_ternary_fn *fn = ternary_fn(j->k, j->s->type);
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

/* Fastest of `calls` calls of run(i) (i: the call's number, to cycle through copies). */
static double fastest(void (*run)(void *, int), void *arg, int calls) {
    double best = 1e30;
    for (int i = 0; i < calls; i++) {
        double t0 = now();
        run(arg, i);
        double dt = now() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

typedef struct {
    const tl_kernels *k;
    int32_t type;
    int64_t rows, cols, bytes; /* a copy's bytes */
    int n_copies, n;           /* n: kept inputs or rows */
    const uint8_t *w;
    const int32_t *list;
    const int8_t *val;
    const tl_qact *x;
    float *y;
    int32_t *sum;
} sparse_job;

static void run_dense(void *arg, int i) {
    sparse_job *j = arg;
    ternary_fn(j->k, j->type)(j->w + (int64_t)(i % j->n_copies) * j->bytes, j->cols, 0, j->rows, j->x, 1, j->y, j->rows);
}
static void run_sparse(void *arg, int i) {
    sparse_job *j = arg;
    memset(j->sum, 0, sizeof(int32_t) * (size_t)((j->rows + 255) / 256 * 256));
    j->k->sparse(j->w + (int64_t)(i % j->n_copies) * j->bytes, j->rows, j->list, j->val, j->n, j->sum);
}
static void run_rows(void *arg, int i) {
    sparse_job *j = arg;
    ternary_rows_fn(j->k, j->type)(j->w + (int64_t)(i % j->n_copies) * j->bytes, j->cols, j->list, j->n, j->x, 1, j->y, j->rows);
}

#if defined(__x86_64__)
#include <immintrin.h>
/* One core's compute ceilings, which the "pp 1t GMAC/s" column compares with: 12 independent chains (more than
 * latency x throughput needs) of vpdpbusd (64 int8 MACs each: the ternary kernels' dot) and of f32 FMA (16: the float
 * kernels'), in registers; with AVX-VNNI, the AVX2 levels' dots on ymm too (32 int8 MACs each: AVX-VNNI's vpdpbusd,
 * AVX2's vpmaddubsw + vpaddw). The fastest of PEAK_RUNS runs, as the kernels' columns take their fastest call (on a
 * shared machine a long run averages in the time the core spent on others). */
#define CHAINS(X, arg) X(0, arg) X(1, arg) X(2, arg) X(3, arg) X(4, arg) X(5, arg) X(6, arg) X(7, arg) X(8, arg) \
    X(9, arg) X(10, arg) X(11, arg)
#define DECLARE(i, T) T a##i = w;
#define STEP(i, step) a##i = step(a##i);
#define SUM(i, add) total = add(total, a##i);
#define KEEP __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6), "+v"(a7), \
                                   "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11))
enum { PEAK_STEPS = 1000000, PEAK_RUNS = 20 };
/* name(): PEAK_STEPS steps of the 12 chains a = step(a) (w, the other operand, set to w_init), then their sum as an
 * int (used, so they are computed) */
#define PEAK_RUN(name, isa, T, w_init, step, add, to_int) \
    __attribute__((target(isa))) static int name(void) { \
        T w = w_init, total = w; \
        CHAINS(DECLARE, T) \
        for (long k = 0; k < PEAK_STEPS; k++) { CHAINS(STEP, step) KEEP; } \
        CHAINS(SUM, add) \
        return to_int(total); \
    }
#define DOT_ZMM(a) _mm512_dpbusd_epi32(a, w, w)
#define FMA_ZMM(a) _mm512_fmadd_ps(a, w, w)
#define DOT_YMM(a) _mm256_dpbusd_avx_epi32(a, w, w)
#define MADDUBS_YMM(a) _mm256_add_epi16(a, _mm256_maddubs_epi16(a, w)) /* a, not w: a product of w alone would leave the loop */
#define FLOAT_TO_INT(sum) (int)_mm512_reduce_add_ps(sum)
#define LANE0(v) _mm256_extract_epi32(v, 0)
PEAK_RUN(int8_dot_run, "avx512f,avx512bw,avx512vnni", __m512i, _mm512_set1_epi8(1), DOT_ZMM, _mm512_add_epi32, _mm512_reduce_add_epi32)
PEAK_RUN(fma_run, "avx512f", __m512, _mm512_set1_ps(0.5f), FMA_ZMM, _mm512_add_ps, FLOAT_TO_INT)
PEAK_RUN(vnni_ymm_run, "avx2,avxvnni", __m256i, _mm256_set1_epi8(1), DOT_YMM, _mm256_add_epi32, LANE0)
PEAK_RUN(maddubs_run, "avx2", __m256i, _mm256_set1_epi8(1), MADDUBS_YMM, _mm256_add_epi32, LANE0)
/* G operations a second: the fastest of PEAK_RUNS runs of PEAK_STEPS steps of 12 chains, ops each */
static double peak(int (*run)(void), double ops) {
    double best = 1e30;
    int sums = 0; /* the chains' sums, used, so they are computed */
    for (int r = 0; r < PEAK_RUNS; r++) {
        double t = now();
        sums += run();
        t = now() - t;
        best = t < best ? t : best;
    }
    return sums == 1 ? 0 : PEAK_STEPS * 12.0 * ops / best / 1e9;
}
#endif

/* The relu² decode kernels at 2B-4T's MLP shapes on one thread, each against the dense GEMV of the same matrix. */
static void bench_sparse(const tl_kernels *k, int32_t type, const char *name, int calls) {
    static const double KEPT[] = {0.5, 0.3, 0.2, 0.15, 0.1};
    int8_t *xq = malloc(6912), *val = malloc(6912);
    int32_t *list = malloc(sizeof(int32_t) * 6912), *sum = malloc(sizeof(int32_t) * 7168), xsum = 0;
    float *y = malloc(sizeof(float) * 6912), scale = 1;
    for (int i = 0; i < 6912; i++) xq[i] = (int8_t)(rand() % 255 - 127), xsum += xq[i];
    tl_qact x = {xq, &scale, &xsum, 1};
    /* 0: down_proj, sparse inputs (copied from the file's form, not a layout of its own); 1: up_proj, listed rows */
    for (int which = type == TL_TQ1_0_LUT || type == TL_TQ1_0_LUT_R4 || type == TL_I2_S_R4; which < 2; which++) {
        int64_t rows = which ? 6912 : 2560, cols = which ? 2560 : 6912, bytes = rows * tl_row_bytes(type, cols);
        int64_t sparse_bytes = which ? 0 : tl_sparse_bytes(rows, cols);
        int n_copies = (int)(STREAM_BYTES / bytes + 1);
        uint8_t *w = tl_alloc_huge((size_t)(bytes * n_copies + TL_LUT_READ_PAST));
        uint8_t *packed = which ? NULL : tl_alloc_huge((size_t)(sparse_bytes * n_copies));
        for (int64_t i = 0; i < bytes * n_copies; i++) w[i] = (uint8_t)rand();
        for (int c = 0; !which && c < n_copies; c++) tl_sparse_pack(type, w + c * bytes, rows, cols, packed + c * sparse_bytes);
        sparse_job j = {k, type, rows, cols, bytes, n_copies, 0, w, list, val, &x, y, sum};
        double dense = fastest(run_dense, &j, calls);
        for (size_t f = 0; f < sizeof KEPT / sizeof KEPT[0]; f++) {
            j.n = 0;
            for (int64_t i = 0; i < (which ? rows : cols); i++)
                if (rand() < KEPT[f] * RAND_MAX) list[j.n] = (int32_t)i, val[j.n++] = (int8_t)((rand() % 255 - 127) | 1); /* nonzero */
            sparse_job s = j;
            if (!which) s.w = packed, s.bytes = sparse_bytes;
            double t = fastest(which ? run_rows : run_sparse, &s, calls);
            printf("%-9s %-10s %-9s %4.0f%% %-10s %10.1f %10.1f %8.2f\n", name, k->isa, which ? "6912x2560" : "2560x6912",
                   100 * KEPT[f], which ? "rows" : "inputs", 1e6 * dense, 1e6 * t, t / dense);
            fflush(stdout);
        }
        free(w), free(packed);
    }
    free(xq), free(val), free(list), free(sum), free(y);
}

/* A bf16 matrix of normal values (sd 0.02, as an output matrix's) in its lookup layout: returns its bytes, or 0. */
static int64_t bf16_lut_matrix(int64_t rows, int64_t cols, uint8_t **out) {
    uint16_t *bf16 = malloc(sizeof(uint16_t) * (size_t)(rows * cols));
    if (!bf16) return 0;
    uint64_t state = 88172645463325252ull;
    for (int64_t i = 0; i < rows * cols; i++) { /* Box-Muller over xorshift64 */
        double u[2];
        for (int h = 0; h < 2; h++) {
            state ^= state << 13, state ^= state >> 7, state ^= state << 17;
            u[h] = ((state >> 11) + 0.5) / 9007199254740992.0;
        }
        union { float f; uint32_t u; } v = {(float)(0.02 * sqrt(-2 * log(u[0])) * cos(6.283185307179586 * u[1]))};
        bf16[i] = (uint16_t)(v.u >> 16);
    }
    uint8_t *tables = malloc((size_t)rows * 16);
    int64_t rows_bytes = tl_bf16_lut_rows_bytes(rows, cols), bytes = 0;
    if (tables) bytes = rows_bytes + tl_bf16_lut_tables((const uint8_t *)bf16, cols, 0, rows, tables) * TL_BF16_LUT_EXCEPTION_BYTES;
    if ((*out = tables ? malloc((size_t)bytes) : NULL))
        tl_bf16_lut_pack((const uint8_t *)bf16, cols, 0, rows, tables, *out, *out + rows_bytes, rows_bytes);
    free(bf16), free(tables);
    return *out ? bytes : 0;
}

int main(int argc, char **argv) {
    const char *isas[] = {"ref", "avx2", "avxvnni", "avx512", "avx512vbmi", "amx", "neon", "dotprod", "i8mm"}; /* those this CPU has */
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
#if defined(__x86_64__)
    if (tl_kernels_named("avx512")) printf("compute peak, 1 thread: %.0f GMAC/s int8 (vpdpbusd), %.0f GFMA/s f32\n", peak(int8_dot_run, 64), peak(fma_run, 16));
    if (tl_kernels_named("avxvnni"))
        printf("compute peak on ymm, 1 thread: %.0f GMAC/s int8 (AVX-VNNI vpdpbusd), %.0f (AVX2 vpmaddubsw + vpaddw)\n",
               peak(vnni_ymm_run, 32), peak(maddubs_run, 32));
#endif
    const char *only = argc > 2 ? argv[2] : NULL; /* one type's shapes only */
    printf("%-9s %-12s %-10s %12s %12s %12s %12s %12s %14s %14s %12s\n", "type", "shape", "isa", "cache GB/s",
           "2 tok cache", "4 tok cache", "mem 1t GB/s", "mem 2t GB/s", "pp 1t GMAC/s", "pp128 2t tok/s", "8 tok / 1");
    for (size_t si = 0; si < sizeof SHAPES / sizeof SHAPES[0]; si++) {
        const shape *s = &SHAPES[si];
        if (only && strncmp(only, s->name, strlen(only)) != 0) continue;
        int64_t row_bytes = s->type == TL_BF16 ? s->cols * 2 : tl_row_bytes(s->type, s->cols);
        uint8_t *lut = NULL;
        int64_t matrix_bytes = s->type == TL_BF16_LUT ? bf16_lut_matrix(s->rows, s->cols, &lut) : s->rows * row_bytes;
        int64_t cached_rows = CACHE_BYTES / row_bytes / 16 * 16;
        int n_copies = (int)((STREAM_BYTES + matrix_bytes - 1) / matrix_bytes);
        uint8_t *copies = tl_alloc_huge((size_t)(matrix_bytes * n_copies + TL_LUT_READ_PAST));
        for (int64_t i = 0; i < matrix_bytes * n_copies; i++) copies[i] = lut ? lut[i % matrix_bytes] : (uint8_t)rand();
        free(lut);
        if (s->type == TL_BF16) /* magnitudes 2^-31 .. 2^1: finite, and no products below f32's normals (assists) */
            for (int64_t i = 1; i < matrix_bytes * n_copies; i += 2) copies[i] = (uint8_t)(copies[i] & 0x8f) | 0x30;
        if (s->type == TL_Q8_0 || s->type == TL_Q6_K || s->type == TL_Q4_K) /* finite fp16 block scales */
            for (int64_t i = 0; i < matrix_bytes * n_copies; i++) copies[i] &= 0x3b;
        for (int ii = 0; ii < (int)(sizeof isas / sizeof isas[0]); ii++) {
            const tl_kernels *k = tl_kernels_named(isas[ii]);
            if (!k || !(float_fn(k, s->type) || ternary_fn(k, s->type)) || same_as_lower(isas, ii, s->type)) continue;
            double t = ii ? min_time : min_time / 10, gbs[2], cache[3], gmacs = 0, pp = 0, batch = 0;
            tl_pool *pools[2] = {tl_pool_new(1), tl_pool_new(2)};
            job j = {k, s, copies, xq, xf, scale, sum, 1, cached_rows, y};
            for (int b = 0; b < 3; b++) { /* 1, 2 and 4 tokens (batched decode) */
                j.n = 1 << b;
                cache[b] = cached_rows * row_bytes / time_calls(pools[0], &j, copies, matrix_bytes, 1, t) / 1e9;
            }
            j.n = 1;
            j.rows = s->rows;
            for (int nt = 1; nt <= 2; nt++)
                gbs[nt - 1] = matrix_bytes / time_calls(pools[nt - 1], &j, copies, matrix_bytes, n_copies, t) / 1e9;
            if (ii) { /* prefill: 128 tokens through a few cached rows (1 thread), through the matrix (2 threads) */
                j.n = GEMM_TOKENS;
                j.rows = 64;
                gmacs = 64.0 * s->cols * GEMM_TOKENS / time_calls(pools[0], &j, copies, matrix_bytes, 1, t) / 1e9;
                j.rows = s->rows;
                pp = GEMM_TOKENS / time_calls(pools[1], &j, copies, matrix_bytes, 1, t);
                j.n = BATCH_TOKENS;
                batch = time_calls(pools[1], &j, copies, matrix_bytes, n_copies, t) / (matrix_bytes / gbs[1] / 1e9);
            }
            tl_pool_free(pools[0]);
            tl_pool_free(pools[1]);
            char dims[32];
            snprintf(dims, sizeof dims, "%lldx%lld", (long long)s->rows, (long long)s->cols);
            printf("%-9s %-12s %-10s %12.1f %12.1f %12.1f %12.1f %12.1f %14.0f %14.0f %12.2f\n", s->name, dims, k->isa,
                   cache[0], cache[1], cache[2], gbs[0], gbs[1], gmacs, pp, batch);
            fflush(stdout);
        }
        free(copies);
    }
    printf("\nrelu² sparse decode, 1 thread, from memory: dense GEMV vs down_proj over kept inputs / up_proj on kept rows\n");
    printf("%-9s %-10s %-9s %5s %-10s %10s %10s %8s\n", "type", "isa", "shape", "kept", "of", "dense us", "sparse us", "ratio");
    for (int ti = 0; ti < 6; ti++) {
        static const char *const NAMES[] = {"i2_s", "i2_s_r4", "tq2_0", "tq1_0", "tq1_0_lut", "tq1_0_lut_r4"};
        static const int32_t TYPES[] = {TL_I2_S, TL_I2_S_R4, TL_TQ2_0, TL_TQ1_0, TL_TQ1_0_LUT, TL_TQ1_0_LUT_R4};
        if (only && strncmp(only, NAMES[ti], strlen(only)) != 0) continue;
        for (int ii = 1; ii < (int)(sizeof isas / sizeof isas[0]); ii++)
            if (tl_kernels_named(isas[ii]) && ternary_fn(tl_kernels_named(isas[ii]), TYPES[ti]) && !same_as_lower(isas, ii, TYPES[ti]))
                bench_sparse(tl_kernels_named(isas[ii]), TYPES[ti], NAMES[ti], (int)(200 * min_time) + 20);
    }
    return 0;
}
