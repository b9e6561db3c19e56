/* probe.c - entry points for tests and benchmarks (probe.h): run one kernel on a whole matrix, measure
 * bandwidth, stress the thread pool. */
#define _DEFAULT_SOURCE /* clock_gettime */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "kernels/kernels.h"
#include "probe.h"
#include "threads.h"
#include "tritlm.h"

/* w as the kernels of type read it: i2_s rows packed into row groups for TL_I2_S_R4 (into *packed, to free), else w. */
static const void *as_read(int32_t type, const void *w, int64_t rows, int64_t cols, uint8_t **packed) {
    *packed = NULL;
    if (type != TL_I2_S_R4) return w;
    if (!(*packed = malloc((size_t)(rows * tl_row_bytes(TL_I2_S, cols))))) return NULL;
    if (tl_i2_s_pack(TL_I2_S, TL_GROUP_ROWS, w, rows, cols, *packed) == 0) return *packed;
    free(*packed), *packed = NULL;
    return NULL;
}

int32_t tl_matmul_ternary(const char *isa, int32_t type, const void *w, int64_t rows, int64_t cols,
                          const int8_t *x, const float *x_scale, int32_t n, float w_scale, float *y) {
    const tl_kernels *k = tl_kernels_named(isa);
    int ref = k && strcmp(k->isa, "ref") == 0;
    tl_ternary_fn *fn = !k ? NULL : type == TL_TQ2_0 ? k->tq2_0 : type == TL_TQ1_0 ? k->tq1_0 : type == TL_I2_S ? k->i2_s
                      : type == TL_I2_S_R4 ? (ref ? tl_i2_s_r4_ref : k->i2_s_r4) : NULL;
    int32_t *sum = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    uint8_t *packed = NULL;
    const void *read = fn && sum && n > 0 && tl_row_bytes(type, cols) ? as_read(type, w, rows, cols, &packed) : NULL;
    if (!read) { free(sum); return -1; }
    for (int32_t t = 0; t < n; t++) {
        sum[t] = 0;
        for (int64_t i = 0; i < cols; i++) sum[t] += x[t * cols + i];
    }
    tl_qact qa = {x, x_scale, sum, n};
    fn(read, cols, 0, rows / 2, &qa, w_scale, y, rows), fn(read, cols, rows / 2, rows, &qa, w_scale, y, rows); /* probe.h */
    free(sum), free(packed);
    return 0;
}

int32_t tl_matmul_ternary_rows(const char *isa, int32_t type, const void *w, int64_t rows, int64_t cols, const int32_t *list,
                               int64_t n, const int8_t *x, const float *x_scale, int32_t n_tokens, float w_scale, float *y) {
    const tl_kernels *k = tl_kernels_named(isa);
    int ref = k && strcmp(k->isa, "ref") == 0;
    tl_ternary_rows_fn *fn = !k ? NULL : type == TL_TQ2_0 ? k->tq2_0_rows : type == TL_TQ1_0 ? k->tq1_0_rows
                           : type == TL_I2_S ? k->i2_s_rows : type == TL_I2_S_R4 ? (ref ? tl_i2_s_r4_ref_rows : k->i2_s_r4_rows)
                           : NULL;
    uint8_t *packed = NULL;
    const void *read = fn && n > 0 && n_tokens > 0 && tl_row_bytes(type, cols) ? as_read(type, w, rows, cols, &packed) : NULL;
    int32_t *sum = read ? calloc((size_t)n_tokens, sizeof(int32_t)) : NULL;
    if (!sum) { free(packed); return -1; }
    for (int32_t t = 0; t < n_tokens; t++)
        for (int64_t i = 0; i < cols; i++) sum[t] += x[t * cols + i];
    tl_qact qa = {x, x_scale, sum, n_tokens};
    fn(read, cols, list, n, &qa, w_scale, y, rows);
    free(sum), free(packed);
    return 0;
}

/* The ISA's tq1_0 lookup-layout packer ("ref": the scalar one), or NULL. */
static tl_tq1_0_lut_pack_fn *lut_packer(const tl_kernels *k) {
    return k && strcmp(k->isa, "ref") == 0 ? tl_tq1_0_lut_pack : k ? k->tq1_0_lut_pack : NULL;
}

/* rows x cols of tq1_0 into the lookup layout at packed, in rows (group 1) or row groups (group 4). */
static int32_t lut_repack(tl_tq1_0_lut_pack_fn *pack, int32_t group, const void *w, int64_t rows, int64_t cols, uint8_t *packed) {
    return group == 1 ? pack(w, cols, 0, rows, packed) : group == TL_GROUP_ROWS ? tl_tq1_0_lut_r4_pack(pack, w, rows, cols, packed) : -1;
}

int32_t tl_matmul_tq1_0_lut(const char *isa, int32_t group, const void *w, int64_t rows, int64_t cols, const int8_t *x,
                            const float *x_scale, int32_t n, float w_scale, const int32_t *list, int64_t n_list, float *y) {
    const tl_kernels *k = tl_kernels_named(isa);
    int ref = k && strcmp(k->isa, "ref") == 0, grouped = group != 1;
    tl_ternary_fn *fn = ref ? (grouped ? tl_tq1_0_lut_r4_ref : tl_tq1_0_lut_ref) : !k ? NULL : grouped ? k->tq1_0_lut_r4 : k->tq1_0_lut;
    tl_ternary_rows_fn *rows_fn = ref ? (grouped ? tl_tq1_0_lut_r4_ref_rows : tl_tq1_0_lut_ref_rows)
                                : !k ? NULL : grouped ? k->tq1_0_lut_r4_rows : k->tq1_0_lut_rows;
    if (!fn || n <= 0 || !tl_row_bytes(TL_TQ1_0, cols)) return -1;
    uint8_t *packed = malloc((size_t)(rows * tl_tq1_0_lut_row_bytes(cols) + TL_LUT_READ_PAST));
    int32_t *sum = calloc((size_t)n, sizeof(int32_t)), rc = -1;
    if (packed && sum && lut_repack(lut_packer(k), group, w, rows, cols, packed) == 0) {
        for (int32_t t = 0; t < n; t++)
            for (int64_t i = 0; i < cols; i++) sum[t] += x[t * cols + i];
        tl_qact qa = {x, x_scale, sum, n};
        if (list) rows_fn(packed, cols, list, n_list, &qa, w_scale, y, rows);
        else /* two calls, as tl_matmul_ternary's */
            fn(packed, cols, 0, rows / 2, &qa, w_scale, y, rows), fn(packed, cols, rows / 2, rows, &qa, w_scale, y, rows);
        rc = 0;
    }
    free(packed), free(sum);
    return rc;
}

int32_t tl_tq1_0_lut_repack(const char *isa, int32_t group, const void *w, int64_t rows, int64_t cols, uint8_t *packed,
                            int8_t *values) {
    tl_tq1_0_lut_pack_fn *pack = lut_packer(tl_kernels_named(isa));
    if (!pack || rows <= 0 || !tl_row_bytes(TL_TQ1_0, cols) || lut_repack(pack, group, w, rows, cols, packed) != 0) return -1;
    for (int64_t r = 0; values && group == 1 && r < rows; r++)
        tl_tq1_0_lut_decode_row(packed + r * tl_tq1_0_lut_row_bytes(cols), cols, values + r * cols);
    return 0;
}

/* A bf16 matrix in its lookup layout, packed two groups of rows at a time with the exceptions placed as the engine
 * places them (each chunk's after the previous chunk's); NULL if cols is not a multiple of 64 or out of memory. */
static uint8_t *bf16_lut_packed(const void *w, int64_t rows, int64_t cols, int64_t *bytes) {
    enum { CHUNK_ROWS = 2 * TL_BF16_LUT_GROUP };
    int64_t row_bytes = tl_bf16_lut_row_bytes(cols), rows_bytes = tl_bf16_lut_rows_bytes(rows, cols);
    if (!row_bytes || rows <= 0) return NULL;
    uint8_t *tables = malloc((size_t)rows * 16), *packed = NULL;
    if (tables) {
        *bytes = rows_bytes + tl_bf16_lut_tables(w, cols, 0, rows, tables) * TL_BF16_LUT_EXCEPTION_BYTES;
        packed = malloc((size_t)*bytes);
    }
    for (int64_t r0 = 0, at = rows_bytes; packed && r0 < rows; r0 += CHUNK_ROWS) {
        int64_t r1 = r0 + CHUNK_ROWS < rows ? r0 + CHUNK_ROWS : rows;
        at += tl_bf16_lut_pack(w, cols, r0, r1, tables + r0 * 16, packed + r0 * row_bytes, packed + at, at) * TL_BF16_LUT_EXCEPTION_BYTES;
    }
    free(tables);
    return packed;
}

int64_t tl_bf16_lut_repack(const void *w, int64_t rows, int64_t cols, uint8_t *packed, int64_t packed_bytes, float *values) {
    int64_t bytes = 0;
    uint8_t *own = bf16_lut_packed(w, rows, cols, &bytes);
    if (!own) return -1;
    if (packed && bytes <= packed_bytes) memcpy(packed, own, (size_t)bytes);
    for (int64_t r = 0; values && r < rows; r++) tl_row_to_f32(TL_BF16_LUT, own, cols, r, values + r * cols);
    free(own);
    return bytes;
}

int32_t tl_matmul_float(const char *isa, int32_t type, const void *w, int64_t rows, int64_t cols,
                        const float *x, int32_t n, float *y) {
    const tl_kernels *k = tl_kernels_named(isa);
    if (!k || n <= 0 || cols % 16 || !tl_row_bytes(type, cols)) return -1;
    tl_float_fn *fn = type == TL_BF16_LUT && strcmp(k->isa, "ref") == 0 ? tl_bf16_lut_ref : tl_float_kernel(k, type);
    int64_t bytes;
    uint8_t *packed = fn && type == TL_BF16_LUT ? bf16_lut_packed(w, rows, cols, &bytes) : NULL; /* w is bf16 */
    if (!fn || (type == TL_BF16_LUT && !packed)) return -1;
    for (int32_t part = 0; part < 2; part++) { /* two calls, cut as the engine cuts rows over threads */
        int64_t r0, r1;
        tl_split(rows, TL_ROW_ALIGN, part, 2, &r0, &r1);
        if (r0 < r1) fn(packed ? packed : w, cols, r0, r1, x, n, y, rows);
    }
    free(packed);
    return 0;
}

typedef struct { const uint64_t *buf; size_t words; uint64_t sink[64]; } read_task;

enum { READ_CHUNKS = 64 };

/* Reads one chunk of the buffer a 64-byte line at a time into four xors (kept, so the loads are not skipped), as
 * the weight kernels read: the widest loads the CPU has (a clone per x86 ISA) and few instructions per line. One
 * 16-byte xor chain (SSE2, what the compiler made of a word at a time) kept fewer lines in flight: ~30 GB/s a core
 * where the kernels read 43-45 (AMD Zen 5, 2 MiB pages). */
typedef uint64_t read_line __attribute__((vector_size(64)));
#if defined(__x86_64__) && defined(__linux__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static void read_chunk(void *arg, int32_t chunk, int32_t thread) {
    read_task *task = arg;
    int64_t b, e; /* in lines of 8 words; chunks start on 8-line boundaries */
    tl_split((int64_t)task->words / 8, 8, chunk, READ_CHUNKS, &b, &e);
    const read_line *lines = (const read_line *)task->buf;
    read_line acc[4] = {{0}};
    for (int64_t i = b; i < e; i += 4)
        for (int j = 0; j < 4; j++) acc[j] ^= lines[i + j];
    read_line all = acc[0] ^ acc[1] ^ acc[2] ^ acc[3];
    for (int j = 0; j < 8; j++) task->sink[thread % 64] ^= all[j];
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double tl_read_bandwidth(size_t bytes, int32_t n_threads) {
    size_t words = bytes / 4096 * 4096 / 8; /* whole 4 KiB: whole units of 8 lines per chunk */
    uint64_t *buf = tl_alloc_huge(words * 8); /* on 2 MiB pages, as the weights */
    tl_pool *pool = tl_pool_new(n_threads);
    if (!buf || !pool || !words) { free(buf); tl_pool_free(pool); return 0; }
    memset(buf, 1, words * 8); /* touch every page so the pass measures reads, not page faults */
    read_task task = {buf, words, {0}};
    double best = 1e30;
    for (int pass = 0; pass < 5; pass++) {
        double t0 = now();
        tl_pool_run(pool, read_chunk, &task, READ_CHUNKS);
        double dt = now() - t0;
        best = dt < best ? dt : best;
    }
    tl_pool_free(pool);
    free(buf);
    return words * 8 / best / 1e9;
}

/* One task of tl_pool_check: its chunks' run counts, and whether its tl_pool_run has returned. */
typedef struct { atomic_int *runs; int32_t n_chunks, max_chunks; atomic_int returned; atomic_llong *violations; } check_task;

static void check_chunk(void *arg, int32_t chunk, int32_t thread) {
    (void)thread;
    check_task *task = arg;
    if (chunk < 0 || chunk >= task->n_chunks || atomic_load(&task->returned))
        atomic_fetch_add(task->violations, 1);
    if (chunk >= 0 && chunk < task->max_chunks) atomic_fetch_add(&task->runs[chunk], 1);
}

int64_t tl_pool_check(int32_t n_threads, int32_t n_tasks, int32_t max_chunks) {
    atomic_int *runs = calloc((size_t)n_tasks * (size_t)max_chunks, sizeof *runs);
    check_task *tasks = calloc((size_t)n_tasks, sizeof *tasks);
    tl_pool *pool = tl_pool_new(n_threads);
    if (!runs || !tasks || !pool || max_chunks < 2) { free(runs); free(tasks); tl_pool_free(pool); return -1; }
    atomic_llong violations = 0;
    for (int32_t i = 0; i < n_tasks; i++) {
        check_task *t = &tasks[i];
        t->runs = runs + (size_t)i * max_chunks;
        t->n_chunks = i % 2 ? max_chunks : 2;
        t->max_chunks = max_chunks;
        t->violations = &violations;
        tl_pool_run(pool, check_chunk, t, t->n_chunks);
        atomic_store(&t->returned, 1);
        for (int32_t c = 0; c < t->n_chunks; c++) violations += atomic_load(&t->runs[c]) != 1;
    }
    tl_pool_free(pool); /* joins the workers: every chunk that will ever run has run */
    for (int32_t i = 0; i < n_tasks; i++)
        for (int32_t c = 0; c < max_chunks; c++)
            violations += atomic_load(&tasks[i].runs[c]) != (c < tasks[i].n_chunks);
    free(runs);
    free(tasks);
    return violations;
}
int32_t tl_quantize_int4(const char *isa, const float *x, int64_t dim, int8_t *q, float *scale, int32_t *sum) {
    const tl_kernels *k = tl_kernels_named(isa);
    if (!k || dim <= 0 || dim % 16) return -1;
    *sum = k->int4(x, dim, q, scale);
    return 0;
}

int64_t tl_topk_mask(float *x, int64_t dim, int64_t k) {
    uint32_t *work = malloc(sizeof(uint32_t) * (size_t)(dim > 0 ? dim : 1));
    if (!work || dim <= 0 || k <= 0) { free(work); return -1; }
    int64_t kept = tl_topk_ref(x, dim, k, work);
    free(work);
    return kept;
}

int32_t tl_matmul_sparse(const char *isa, int32_t type, const void *w, int64_t rows, int64_t cols, const int8_t *x,
                         float x_scale, float w_scale, float *y) {
    const tl_kernels *k = tl_kernels_named(isa);
    if (!k || rows <= 0 || !tl_row_bytes(type, cols)) return -1;
    uint8_t *packed = malloc((size_t)tl_sparse_bytes(rows, cols));
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)cols);
    int8_t *val = malloc((size_t)cols);
    int32_t rc = -1, kept = 0;
    if (packed && idx && val && tl_sparse_pack(type, w, rows, cols, packed) == 0) {
        for (int64_t j = 0; j < cols; j++)
            if (x[j]) idx[kept] = (int32_t)j, val[kept++] = x[j];
        int32_t *sum = calloc((size_t)tl_sparse_bytes(rows, 1) / 64 * TL_SPARSE_TILE, sizeof(int32_t));
        if (sum) {
            k->sparse(packed, rows, idx, val, kept, sum);
            for (int64_t r = 0; r < rows; r++) y[r] = (float)sum[r] / x_scale * w_scale;
            rc = 0;
        }
        free(sum);
    }
    free(packed), free(idx), free(val);
    return rc;
}

int32_t tl_kv_roundtrip(const float *x, int64_t dim, int32_t bits, uint8_t *packed, float *out) {
    if ((bits != 3 && bits != 4) || dim <= 0 || dim % 8) return -1;
    tl_kv_quantize_ref(x, dim, bits, packed);
    tl_kv_dequantize_ref(packed, dim, bits, out);
    return 0;
}

int32_t tl_kv_f32_to_f16(const char *isa, const float *x, int64_t n, uint16_t *out) {
    const tl_kernels *kern = tl_kernels_named(isa);
    if (!kern) return -1;
    kern->kv_f32_to_f16(x, n, out);
    return 0;
}

int32_t tl_kv_f16_to_f32(const char *isa, const uint16_t *in, int64_t n, float *x) {
    const tl_kernels *kern = tl_kernels_named(isa);
    if (!kern) return -1;
    kern->kv_f16_to_f32(in, n, x);
    return 0;
}

int32_t tl_attention_rows(const char *isa, const float *q, int32_t rows, const int32_t *pos, const float *k,
                          const float *v, int32_t n_keys, int32_t hd, float *out) {
    const tl_kernels *kern = tl_kernels_named(isa);
    if (!kern || rows <= 0 || hd <= 0 || n_keys <= 0) return -1;
    for (int32_t r = 0; r < rows; r++)
        if (pos[r] < 0 || pos[r] >= n_keys) return -1;
    size_t hd16 = (size_t)tl_att_hd16(hd), n = (size_t)rows;
    float *qp = calloc(n * hd16, sizeof(float)), *max = malloc(n * sizeof(float)), *denom = malloc(16 * n * sizeof(float));
    float *acc = malloc(n * hd16 * sizeof(float)), *w = malloc(n * TL_ATT_BLOCK * sizeof(float));
    int32_t *seen = malloc(n * sizeof(int32_t)), rc = -1, last = 0;
    if (qp && max && denom && acc && w && seen) {
        for (int32_t r = 0; r < rows; r++) {
            memcpy(qp + r * hd16, q + (size_t)r * hd, (size_t)hd * sizeof(float));
            last = pos[r] > last ? pos[r] : last;
        }
        tl_att_state st = {max, denom, acc, w};
        tl_attention_begin(rows, hd, &st);
        for (int32_t p0 = 0; p0 <= last; p0 += TL_ATT_BLOCK) {
            int32_t len = last + 1 - p0 < TL_ATT_BLOCK ? last + 1 - p0 : TL_ATT_BLOCK;
            for (int32_t r = 0; r < rows; r++) seen[r] = pos[r] + 1 - p0 < 0 ? 0 : pos[r] + 1 - p0 < len ? pos[r] + 1 - p0 : len;
            kern->attention(qp, rows, hd, k + (size_t)p0 * hd, v + (size_t)p0 * hd, hd, len, seen, 1.0f / sqrtf((float)hd), &st);
        }
        tl_attention_end(&st, rows, hd, out, hd);
        rc = 0;
    }
    free(qp), free(max), free(denom), free(acc), free(w), free(seen);
    return rc;
}
