/* model.c - the forward pass of BitNetForCausalLM (transformers' modeling_bitnet.py), a batch at a time.
 *
 * Every linear layer is a lossless BitLinear: each token's input row is quantized to int8 exactly as torch
 * does (s = 127 / max|x|, round half to even), dotted with the ternary weights in integers, and scaled back
 * once per output: y = isum / s * weight_scale. The model is read-only after tl_model_new; each sequence owns
 * its KV cache, and each caller's context (tl_ctx) its scratch.
 *
 * A file may name an activation mode (tl_config.act_*, kv_*: BitNet a4.8, Q-Sparse): each linear input is then
 * masked to its top-K |x| and quantized to INT8 absmax or INT4 absmean, and the KV cache holds 3/4-bit rows.
 * A single token's masked input runs a sparse GEMV that reads only its kept inputs' weight columns.
 *
 * relu² models (BitNet b1.58 2B-4T) decode sparsely and exactly: relu(gate)² is 0 wherever gate <= 0, and most of
 * the down_proj input quantizes to int8 zeros, which the integer dot skips exactly. So a single decoded token runs
 * gate first, up only on the rows where relu(gate) > 0, and down_proj as the same sparse GEMV over its nonzero
 * codes (tl_config.no_sparse turns it off). A decode step of several sequences runs up only on the rows where
 * some token's relu(gate) > 0, and down_proj dense. */
#define _DEFAULT_SOURCE /* madvise, clock_gettime */
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#endif
#include "kernels/kernels.h"
#include "threads.h"
#include "tritlm.h"

enum { ATT_TASK_ROWS = 64 }; /* attention: query rows (tokens x heads) a task takes through the kernel together */
/* Matmul chunks start on 16-row boundaries (SIMD row tiles), 2 a thread: a preempted thread delays only its chunk, and
 * each chunk claimed costs a cache line passed between cores (4 a thread decoded 5% slower where those are far apart:
 * docs/format.md, "i2_s in memory"). */
enum { ROW_ALIGN = 16, PARTS_PER_THREAD = 2 };
enum { SPARSE_BATCH = 16 }; /* relu² sparse decode: decode steps of up to this many sequences */

/* An attention task: KV head kv_head's query heads [h0, h0 + nh) for tokens [t0, t0 + nt) of one run (forward_batch). */
struct att_task { int32_t t0, nt, kv_head, h0, nh; };

struct tl_model { /* read-only after tl_model_new */
    tl_config cfg;
    tl_tensor token_embd, output_norm, output; /* output: token_embd when tied */
    tl_layer *layers;
    const tl_kernels *kern;
    tl_pool *pool;        /* shared by all contexts: their passes take turns step by step */
    float *rope_inv_freq; /* [head_dim / 2] */
    const uint8_t **sparse; /* [n_layer][7]: by-input-channel copies (kernels/sparse_ref.c) of linears with sparse inputs */
    void *sparse_arena;     /* the memory they all sit in */
    uint8_t sparse_input[4]; /* per linear input TL_IN_*: 1 if its linears have sparse copies */
    int64_t sparse_rows;     /* the most rows of a linear with a sparse copy, rounded up to TL_SPARSE_TILE */
    uint8_t *skip_up;        /* [n_layer]: 1 if one token's up_proj runs only the rows where relu(gate) > 0 */
    uint8_t **repacked;      /* [n_layer][7]: linears repacked at load (repack_linears), read instead */
    void *repacked_arena;    /* the new memory those not repacked in place sit in */
    void *output_lut;        /* new memory holding a bf16 output matrix (and a tied embedding) repacked into its lookup
                                layout (kernels/bf16_lut_ref.c), unless it was repacked in place */
    int64_t output_lut_bytes; /* the bytes of that layout */
};

struct tl_ctx {
    const tl_model *m;
    float *att_scratch; /* [pool size][ATT_TASK_ROWS]: the attention kernel's queries and running softmax per thread */
    /* per-token scratch for up to n_cap tokens, grown only when a bigger batch arrives */
    int32_t n_cap;
    float *x, *xn, *xf, *q, *k, *v, *att, *tmp, *gate, *up; /* activations */
    int8_t *xq;                                             /* quantized activations */
    float *xscale;                                          /* their per-token scales */
    int32_t *xsum, *pos, *out_token;                        /* sum of xq; each token's position; tokens wanting logits */
    float *rope_cs; /* [n_cap][head_dim]: each token's RoPE cosines, then sines (its position's, for every layer) */
    struct att_task *att_tasks; /* [n_cap * n_head]: this pass's attention tasks */
    int32_t n_att_tasks;
    int32_t logits_cap;                                     /* rows of logits_tmp */
    float *logits_tmp; /* [logits_cap][n_vocab]: logits of scattered rows, before they go to their rows */
    uint32_t *topk_work; /* [pool size][widest]: top-K selection scratch */
    float *kv_rows;      /* [pool size][2][TL_ATT_BLOCK][head_dim]: a block of dequantized keys and values */
    int32_t *kept_idx;   /* one token's kept inputs (indices, int8 codes, count): the sparse GEMV's operand */
    int8_t *kept_val;
    int32_t n_kept;
    int32_t *sparse_sums; /* [3][chunks][sparse_rows]: the sparse GEMV's int32 row sums per job and chunk */
    int64_t sparse_counts[4]; /* relu² sparse decode so far: down_proj inputs, nonzero ones, up rows, computed ones */
    int32_t *up_rows;         /* one token's up_proj rows to compute (relu(gate) > 0), each chunk's from its first row */
    int32_t *up_kept;         /* [chunks]: how many each chunk computed */
    int64_t phase_ns[TL_N_PHASES]; /* time spent so far in each step of the pass (TL_PHASE_*) */
    int64_t lap_ns;                /* when the step under way began */
};

struct tl_seq {
    const tl_model *m;
    int32_t n_ctx, len;         /* len: tokens held, at positions 0..len-1 */
    _Atomic(tl_ctx *) user;     /* the context whose tl_forward is using the sequence now, or NULL */
    /* KV head by KV head, so attention streams one head's rows as one run of memory: */
    float *k, *v;               /* [n_layer][n_head_kv][n_ctx][head_dim], or with kv_bits 16 the same as IEEE half: */
    uint16_t *kh, *vh;          /* or with kv_bits 3 or 4: */
    uint8_t *kq, *vq;           /* [n_layer][n_head_kv][n_ctx] rows of tl_kv_row_bytes(kv_bits, head_dim) (position 0 unused) */
    uint8_t *k0, *v0;           /* [n_layer][n_head_kv] position 0's rows at kv_bits_first */
};

/* The linear input each weight of a layer reads (tl_config.act_bits / act_topk index), in tl_layer order. */
enum { N_LINEARS = 7 };
static const int LINEAR_INPUT[N_LINEARS] = {TL_IN_QKV, TL_IN_QKV, TL_IN_QKV, TL_IN_O, TL_IN_GATE_UP, TL_IN_GATE_UP, TL_IN_DOWN};
static const tl_tensor *linear_of(const tl_layer *l, int i) {
    const tl_tensor *w[N_LINEARS] = {&l->attn_q, &l->attn_k, &l->attn_v, &l->attn_output, &l->ffn_gate, &l->ffn_up, &l->ffn_down};
    return w[i];
}

/* Values of a dim-long input kept by its top-K fraction: round(ratio * dim), at least 1; all when 0 or >= 1. */
static int64_t topk_keep(float ratio, int64_t dim) {
    if (!(ratio > 0) || ratio >= 1) return dim;
    int64_t k = (int64_t)((double)ratio * (double)dim + 0.5);
    return k < 1 ? 1 : k > dim ? dim : k;
}

/* Hot loops written to vectorize as they are get a clone per x86 ISA, picked at load time; they sum in a fixed
 * order, so every clone gives the same floats. */
#if defined(__x86_64__) && defined(__linux__)
#define X86_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define X86_CLONES
#endif

static void fail(char *err, size_t err_len, const char *fmt, ...) {
    if (!err || !err_len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* ---- building a model: check every tensor against the config ----
 * The engine's rules for its tensors live here only: the types each use may have, the shapes the config gives,
 * and the zero padding of a linear weight's rows. The runtime hands tensors over as the file has them and
 * reports the message. */

enum { NORM, LINEAR, EMBED }; /* what a tensor is used as decides which types it may have */
static const char *const USE_NAMES[] = {"a norm", "a linear weight", "an embedding"};

static int type_allowed(int use, int32_t type) {
    switch (use) {
    case NORM: return type == TL_F32;
    case LINEAR: return type == TL_TQ1_0 || type == TL_TQ2_0 || type == TL_I2_S || type == TL_F16 || type == TL_F32;
    default: return type < TL_TYPE_ID_END && tl_float_kernel(tl_kernels_best(), type) != NULL; /* F32, F16, BF16, Q8_0, Q4_K, Q6_K */
    }
}

/* The names of the types a use allows, comma-separated, in id order. */
static void allowed_names(int use, char *out, size_t len) {
    size_t at = 0;
    out[0] = 0;
    for (int32_t type = 0; type < TL_TYPE_ID_END; type++)
        if (tl_type_name(type) && type_allowed(use, type) && at < len)
            at += (size_t)snprintf(out + at, len - at, "%s%s", at ? ", " : "", tl_type_name(type));
}

/* The row length a linear weight's rows may be zero-padded to (docs/format.md; tritlm/formats.py's padded_cols
 * writes them): whole blocks and a multiple of TL_ROW_ALIGN. */
static int64_t padded_cols(int32_t type, int64_t cols) {
    int64_t block = tl_block_values(type), align = block > TL_ROW_ALIGN ? block : TL_ROW_ALIGN; /* lcm: powers of two */
    return (cols + align - 1) / align * align;
}

static tl_ternary_fn *ternary_kernel(const tl_kernels *k, int32_t type) {
    return type == TL_TQ2_0 ? k->tq2_0 : type == TL_TQ1_0 ? k->tq1_0 : type == TL_I2_S ? k->i2_s
         : type == TL_TQ1_0_LUT ? k->tq1_0_lut : type == TL_I2_S_R4 ? k->i2_s_r4 : type == TL_TQ1_0_LUT_R4 ? k->tq1_0_lut_r4 : NULL;
}

static tl_ternary_rows_fn *ternary_rows_kernel(const tl_kernels *k, int32_t type) {
    return type == TL_TQ2_0 ? k->tq2_0_rows : type == TL_TQ1_0 ? k->tq1_0_rows : type == TL_I2_S ? k->i2_s_rows
         : type == TL_TQ1_0_LUT ? k->tq1_0_lut_rows : type == TL_I2_S_R4 ? k->i2_s_r4_rows
         : type == TL_TQ1_0_LUT_R4 ? k->tq1_0_lut_r4_rows : NULL;
}

/* Whether n floats are all finite, testing the exponent bits (vectorizes). */
X86_CLONES static int all_finite(const float *x, int64_t n) {
    uint32_t inf_or_nan = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, x + i, 4);
        inf_or_nan |= (bits & 0x7f800000u) == 0x7f800000u;
    }
    return !inf_or_nan;
}

/* A float weight's rows checked for NaN/Inf, split over the pool; each chunk stops at its first bad row, and
 * first_bad keeps the lowest (t->rows: none). */
typedef struct { const tl_tensor *t; float *row_bufs; int32_t parts; _Atomic int64_t first_bad; } finite_task;

static void finite_chunk(void *arg, int32_t chunk, int32_t thread) {
    finite_task *task = arg;
    const tl_tensor *t = task->t;
    float *row = task->row_bufs + (size_t)thread * (size_t)t->cols;
    int64_t r0, r1;
    tl_split(t->rows, 1, chunk, task->parts, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        tl_row_to_f32(t->type, t->data, t->cols, r, row);
        if (all_finite(row, t->cols)) continue;
        int64_t seen = atomic_load(&task->first_bad);
        while (r < seen && !atomic_compare_exchange_weak(&task->first_bad, &seen, r)) {}
        return;
    }
}

/* Every value of a float weight must be finite: a NaN or Inf would reach the int8 quantization of every token
 * (and then the logits). Returns the first row holding one, -1 if none, -2 if out of memory. */
static int64_t first_nonfinite_row(tl_pool *pool, const tl_tensor *t) {
    int32_t parts = t->rows < 4 * tl_pool_size(pool) ? 1 : 4 * tl_pool_size(pool); /* a vector: no dispatch */
    finite_task task = {t, malloc(sizeof(float) * (size_t)t->cols * (size_t)tl_pool_size(pool)), parts, t->rows};
    if (!task.row_bufs) return -2;
    tl_pool_run(pool, finite_chunk, &task, parts);
    free(task.row_bufs);
    return task.first_bad < t->rows ? task.first_bad : -1;
}

/* A shape as ggml writes it, row length first: [cols] for a vector, [cols, rows] for a matrix. */
static const char *dims(char *out, size_t len, int64_t rows, int64_t cols) {
    if (rows == 1) snprintf(out, len, "[%lld]", (long long)cols);
    else snprintf(out, len, "[%lld, %lld]", (long long)cols, (long long)rows);
    return out;
}

static int check_tensor(char *err, size_t err_len, tl_pool *pool, const char *name, int layer, const tl_tensor *t,
                        int use, int64_t rows, int64_t cols) {
    char full[64], got[48], want[48], allowed[128], type_id[16];
    if (layer >= 0) snprintf(full, sizeof full, "blk.%d.%s.weight", layer, name);
    else snprintf(full, sizeof full, "%s.weight", name);
    if (!t->data) return fail(err, err_len, "missing tensor %s", full), 0;
    if (!type_allowed(use, t->type)) {
        const char *type = tl_type_name(t->type);
        if (!type) snprintf(type_id, sizeof type_id, "id %d", t->type), type = type_id;
        allowed_names(use, allowed, sizeof allowed);
        return fail(err, err_len, "tensor %s has type %s, not one the engine runs as %s (%s)", full, type, USE_NAMES[use],
                    allowed), 0;
    }
    if (t->rows != rows || (t->cols != cols && !(use == LINEAR && t->cols == padded_cols(t->type, cols))))
        return fail(err, err_len, "tensor %s has shape %s, expected %s", full, dims(got, sizeof got, t->rows, t->cols),
                    dims(want, sizeof want, rows, cols)), 0;
    if (!tl_row_bytes(t->type, t->cols))
        return fail(err, err_len, "tensor %s: row length %lld is not a whole number of %s blocks", full,
                    (long long)t->cols, tl_type_name(t->type)), 0;
    if (use != NORM && t->cols % TL_ROW_ALIGN) /* norms: any length */
        return fail(err, err_len, "tensor %s: row length %lld is not a multiple of %d (pad its rows with zeros)", full,
                    (long long)t->cols, TL_ROW_ALIGN), 0;
    if (!isfinite(t->scale)) return fail(err, err_len, "%s: weight scale is not finite", full), 0;
    int64_t bad = ternary_kernel(tl_kernels_best(), t->type) ? -1 : first_nonfinite_row(pool, t);
    if (bad == -2) return fail(err, err_len, "out of memory"), 0;
    if (bad >= 0) return fail(err, err_len, "%s: row %lld holds a NaN or Inf", full, (long long)bad), 0;
    return 1;
}

static int check_config(const tl_config *c, char *err, size_t err_len) {
    if (c->n_layer <= 0 || c->n_embd <= 0 || c->n_ff <= 0 || c->n_head <= 0 || c->n_head_kv <= 0 ||
        c->head_dim <= 0 || c->n_vocab <= 0)
        return fail(err, err_len, "config: every size must be positive"), 0;
    if (c->n_head % c->n_head_kv) return fail(err, err_len, "config: n_head %d is not a multiple of n_head_kv %d", c->n_head, c->n_head_kv), 0;
    if (c->head_dim % 2) return fail(err, err_len, "config: head_dim %d is odd (RoPE rotates halves)", c->head_dim), 0;
    if (c->act != TL_ACT_SILU && c->act != TL_ACT_RELU2) return fail(err, err_len, "config: unknown activation %d", c->act), 0;
    if (!(c->rope_theta > 0) || !(c->rms_eps >= 0)) return fail(err, err_len, "config: bad rope_theta or rms_eps"), 0;
    // a BitLinear sums row length x 128 x 1 in an int32
    if (c->n_embd > TL_MAX_ROW || c->n_ff > TL_MAX_ROW || (int64_t)c->n_head * c->head_dim > TL_MAX_ROW)
        return fail(err, err_len, "config: a row length above %d is not supported", TL_MAX_ROW), 0;
    for (int i = 0; i < 4; i++) {
        if (c->act_bits[i] != 0 && c->act_bits[i] != 8 && c->act_bits[i] != 4)
            return fail(err, err_len, "config: activation bits %d (supported: 8, 4)", c->act_bits[i]), 0;
        if (!(c->act_topk[i] >= 0 && c->act_topk[i] <= 1))
            return fail(err, err_len, "config: top-K fraction %g not in [0, 1]", (double)c->act_topk[i]), 0;
        int64_t dim = i == TL_IN_O ? (int64_t)c->n_head * c->head_dim : i == TL_IN_DOWN ? c->n_ff : c->n_embd;
        if (c->act_bits[i] == 4 && dim % 16)
            return fail(err, err_len, "config: INT4 inputs need a multiple of 16 values, not %lld", (long long)dim), 0;
    }
    if ((c->kv_bits == 16 || c->kv_bits_first == 16) ? c->kv_bits != c->kv_bits_first
        : (c->kv_bits || c->kv_bits_first) &&
              (c->kv_bits < 3 || c->kv_bits > 4 || c->kv_bits_first < 3 || c->kv_bits_first > 4 || c->head_dim % 8))
        return fail(err, err_len, "config: KV cache bits %d / first %d (supported: 3, 4, head_dim a multiple of 8; 16 both)",
                    c->kv_bits, c->kv_bits_first), 0;
    return 1;
}

static int check_weights(tl_pool *pool, const tl_config *c, const tl_tensor *token_embd, const tl_tensor *output_norm,
                         const tl_tensor *output, const tl_layer *layers, char *err, size_t err_len) {
    int64_t e = c->n_embd, f = c->n_ff, qd = (int64_t)c->n_head * c->head_dim, kvd = (int64_t)c->n_head_kv * c->head_dim;
    if (!check_tensor(err, err_len, pool, "token_embd", -1, token_embd, EMBED, c->n_vocab, e)) return 0;
    if (!check_tensor(err, err_len, pool, "output_norm", -1, output_norm, NORM, 1, e)) return 0;
    if (output && output->data && !check_tensor(err, err_len, pool, "output", -1, output, EMBED, c->n_vocab, e)) return 0;
    for (int i = 0; i < c->n_layer; i++) {
        const tl_layer *l = &layers[i];
        if (!check_tensor(err, err_len, pool, "attn_norm", i, &l->attn_norm, NORM, 1, e) ||
            !check_tensor(err, err_len, pool, "attn_q", i, &l->attn_q, LINEAR, qd, e) ||
            !check_tensor(err, err_len, pool, "attn_k", i, &l->attn_k, LINEAR, kvd, e) ||
            !check_tensor(err, err_len, pool, "attn_v", i, &l->attn_v, LINEAR, kvd, e) ||
            !check_tensor(err, err_len, pool, "attn_output", i, &l->attn_output, LINEAR, e, qd) ||
            !check_tensor(err, err_len, pool, "ffn_norm", i, &l->ffn_norm, NORM, 1, e) ||
            !check_tensor(err, err_len, pool, "ffn_gate", i, &l->ffn_gate, LINEAR, f, e) ||
            !check_tensor(err, err_len, pool, "ffn_up", i, &l->ffn_up, LINEAR, f, e) ||
            !check_tensor(err, err_len, pool, "ffn_down", i, &l->ffn_down, LINEAR, e, f))
            return 0;
        // weights sharing one quantized input must agree on its (padded) length
        if (l->attn_k.cols != l->attn_q.cols || l->attn_v.cols != l->attn_q.cols || l->ffn_up.cols != l->ffn_gate.cols)
            return fail(err, err_len, "blk.%d: q/k/v or gate/up weights have different (padded) row lengths", i), 0;
        if (c->sub_norms && (!check_tensor(err, err_len, pool, "attn_sub_norm", i, &l->attn_sub_norm, NORM, 1, qd) ||
                             !check_tensor(err, err_len, pool, "ffn_sub_norm", i, &l->ffn_sub_norm, NORM, 1, f)))
            return 0;
    }
    return 1;
}

/* By-input-channel copies (kernels/sparse_ref.c) of the ternary linears whose input is mostly zeros (a top-K
 * fraction; a relu² model's down_proj), so one token reads only its nonzero inputs' weight columns. Laid out one
 * after another in one allocation, then packed one weight per chunk over the pool. Returns 0 if out of memory. */
static void pack_chunk(void *arg, int32_t chunk, int32_t thread) {
    (void)thread;
    tl_model *m = arg;
    int l = chunk / N_LINEARS, i = chunk % N_LINEARS;
    const tl_tensor *w = linear_of(&m->layers[l], i);
    if (m->sparse[chunk]) tl_sparse_pack(w->type, w->data, w->rows, w->cols, (uint8_t *)m->sparse[chunk]);
}

/* Whether linear i of a layer, w, gets a sparse copy. */
static int wants_sparse_copy(const tl_model *m, const tl_tensor *w, int i) {
    const tl_config *c = &m->cfg;
    float ratio = c->act_topk[LINEAR_INPUT[i]];
    int relu2_down = c->act == TL_ACT_RELU2 && !c->no_sparse && LINEAR_INPUT[i] == TL_IN_DOWN;
    return (relu2_down || (ratio > 0 && ratio < 1)) && ternary_kernel(m->kern, w->type);
}

static int make_sparse_copies(tl_model *m) {
    const tl_config *c = &m->cfg;
    m->sparse = calloc((size_t)c->n_layer * N_LINEARS, sizeof *m->sparse);
    if (!m->sparse) return 0;
    size_t bytes = 0;
    for (int j = 0; j < c->n_layer * N_LINEARS; j++) {
        const tl_tensor *w = linear_of(&m->layers[j / N_LINEARS], j % N_LINEARS);
        if (wants_sparse_copy(m, w, j % N_LINEARS)) bytes += (size_t)tl_sparse_bytes(w->rows, w->cols); /* 64-byte multiples */
    }
    if (bytes && !(m->sparse_arena = tl_alloc_huge(bytes))) return 0;
    uint8_t *at = m->sparse_arena;
    for (int j = 0; j < c->n_layer * N_LINEARS; j++) {
        const tl_tensor *w = linear_of(&m->layers[j / N_LINEARS], j % N_LINEARS);
        if (!wants_sparse_copy(m, w, j % N_LINEARS)) continue;
        m->sparse[j] = at;
        at += tl_sparse_bytes(w->rows, w->cols);
        m->sparse_input[LINEAR_INPUT[j % N_LINEARS]] = 1;
        int64_t rows = (w->rows + TL_SPARSE_TILE - 1) / TL_SPARSE_TILE * TL_SPARSE_TILE;
        m->sparse_rows = rows > m->sparse_rows ? rows : m->sparse_rows;
    }
    tl_pool_run(m->pool, pack_chunk, m, c->n_layer * N_LINEARS);
    // relu²: up_proj rows whose relu(gate) is 0 are skipped (ternary gate and up read whole, not through sparse copies)
    if (!(m->skip_up = calloc((size_t)c->n_layer, 1))) return 0;
    for (int l = 0; l < c->n_layer; l++)
        m->skip_up[l] = c->act == TL_ACT_RELU2 && !c->no_sparse && !m->sparse[l * N_LINEARS + 4] &&
                        !m->sparse[l * N_LINEARS + 5] && ternary_kernel(m->kern, m->layers[l].ffn_gate.type) &&
                        ternary_kernel(m->kern, m->layers[l].ffn_up.type);
    return 1;
}

/* Ternary linears repacked at load, after the sparse copies were built from the file's blocks:
 * - tq1_0 into its lookup layout (kernels/tq1_0_lut_ref.c) where the kernels read it (AVX-512 VBMI: decoded at tq2_0's
 *   speed, docs/format.md), in row groups as i2_s below (TL_TQ1_0_LUT_R4);
 * - tq2_0 as i2_s (kernels/i2_s_ref.c: the same 2-bit codes, fields reversed in each byte, the blocks' d dropped), exact
 *   since the kernels take the tensor's one scale apart: i2_s reads 64 bytes per 256 values in whole cache lines, not
 *   66, with the same instructions per value on every ISA (one ternary_tile.h template: a load, a shift and a mask per
 *   vector; the reference decodes both value by value), so no ISA reads it slower (measured on AVX-512:
 *   docs/benchmarks.md);
 * - tq1_0 as i2_s, exactly, where its own kernel decodes compute-bound (tl_kernels.tq1_0_as_i2_s: AVX2, at 38% of the
 *   read rate against i2_s's 74%), so its 1.2x the bytes are read faster (docs/format.md);
 * - i2_s, and tq2_0 and tq1_0 as i2_s, into row groups (TL_I2_S_R4: each 4 rows' blocks interleaved) where the kernels
 *   read them (x86): a 4-row tile then reads one ascending stream, which the hardware prefetcher follows
 *   (docs/format.md); not a relu² up_proj that one token reads by row lists (skip_up).
 * Unless cfg.keep_file_layout: --mmap reads the file's shared pages, as tq2_0 or i2_s rows (and tq1_0 in lookup rows,
 * or as it is). A repacked linear's tensor then points at the new form, typed TL_TQ1_0_LUT(_R4), TL_I2_S or TL_I2_S_R4.
 * tq2_0 and i2_s are rewritten in place with cfg.weights_writable (tq2_0's 1/33 of freed tail stays: dropping it would split the 2 MiB
 * pages it shares with the next tensor); otherwise, and for tq1_0, the copies sit one after another on huge pages, as
 * the runtime's copy of the file did, and with cfg.weights_mapped the file's pages of a linear are dropped once copied.
 * One weight per chunk over the pool; a chunk whose pack runs out of memory keeps the file's form. */
static void release_pages(const void *data, int64_t bytes) {
#if defined(MADV_DONTNEED)
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = ((uintptr_t)data + page - 1) / page * page;
    uintptr_t b = ((uintptr_t)data + (uintptr_t)bytes) / page * page; /* whole pages of the tensor only */
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
#else
    (void)data, (void)bytes;
#endif
}

/* The type linear i of the model (layer i / N_LINEARS) is repacked into, or -1 if it is read as the file has it. */
static int32_t repacked_type(const tl_model *m, int32_t i) {
    const tl_tensor *w = linear_of(&m->layers[i / N_LINEARS], i % N_LINEARS);
    // an up_proj that a decoded token reads by row lists (skip_up) keeps rows: a listed row's blocks would share their
    // cache lines with rows of its group that are mostly not listed
    int row_lists = w == &m->layers[i / N_LINEARS].ffn_up && m->skip_up[i / N_LINEARS];
    int grouped = w->rows % TL_GROUP_ROWS == 0 && !row_lists && !m->cfg.keep_file_layout;
    if (w->type == TL_TQ1_0 && m->kern->tq1_0_lut) return grouped && m->kern->tq1_0_lut_r4 ? TL_TQ1_0_LUT_R4 : TL_TQ1_0_LUT;
    int as_i2_s = w->type == TL_TQ2_0 || w->type == TL_I2_S || (w->type == TL_TQ1_0 && m->kern->tq1_0_as_i2_s);
    if (!as_i2_s || m->cfg.keep_file_layout) return -1;
    if (grouped && m->kern->i2_s_r4) return TL_I2_S_R4;
    return w->type != TL_I2_S ? TL_I2_S : -1;
}

/* Whether w's repack into type is written over w (its copy of the file, writable): only where it is no larger. */
static int repacks_in_place(const tl_model *m, const tl_tensor *w, int32_t type) {
    return type != TL_TQ1_0_LUT && type != TL_TQ1_0_LUT_R4 && w->type != TL_TQ1_0 && m->cfg.weights_writable;
}

static void repack_chunk(void *arg, int32_t chunk, int32_t thread) {
    (void)thread;
    tl_model *m = arg;
    tl_tensor *w = (tl_tensor *)linear_of(&m->layers[chunk / N_LINEARS], chunk % N_LINEARS); /* the model's own array */
    uint8_t *out = m->repacked[chunk];
    if (!out) return;
    int32_t type = repacked_type(m, chunk);
    int32_t group = type == TL_I2_S_R4 ? TL_GROUP_ROWS : 1; /* i2_s rows or groups */
    if ((type == TL_I2_S || type == TL_I2_S_R4 ? tl_i2_s_pack(w->type, group, w->data, w->rows, w->cols, out)
         : type == TL_TQ1_0_LUT_R4          ? tl_tq1_0_lut_r4_pack(m->kern->tq1_0_lut_pack, w->data, w->rows, w->cols, out)
                                            : m->kern->tq1_0_lut_pack(w->data, w->cols, 0, w->rows, out)) != 0) {
        m->repacked[chunk] = NULL;
        return;
    }
    if (m->cfg.weights_mapped && out != w->data) release_pages(w->data, w->rows * tl_row_bytes(w->type, w->cols));
    w->data = out, w->type = type;
}

static int repack_linears(tl_model *m) {
    int32_t n = m->cfg.n_layer * N_LINEARS, any = 0;
    if (!(m->repacked = calloc((size_t)n, sizeof *m->repacked))) return 0;
    size_t bytes = 0;
    for (int32_t i = 0; i < n; i++) {
        const tl_tensor *w = linear_of(&m->layers[i / N_LINEARS], i % N_LINEARS);
        int32_t type = repacked_type(m, i);
        if (type >= 0 && !repacks_in_place(m, w, type)) bytes += (size_t)(w->rows * tl_row_bytes(type, w->cols));
    }
    if (bytes && !(m->repacked_arena = tl_alloc_huge(bytes + TL_LUT_READ_PAST))) return 0; /* tq1_0's readable past its end */
    uint8_t *at = m->repacked_arena;
    for (int32_t i = 0; i < n; i++) {
        const tl_tensor *w = linear_of(&m->layers[i / N_LINEARS], i % N_LINEARS);
        int32_t type = repacked_type(m, i);
        if (type < 0) continue;
        any = 1;
        if (repacks_in_place(m, w, type)) m->repacked[i] = (uint8_t *)w->data;
        else m->repacked[i] = at, at += w->rows * tl_row_bytes(type, w->cols);
    }
    if (any) tl_pool_run(m->pool, repack_chunk, m, n);
    return 1;
}

/* A bf16 output matrix repacked into its lookup layout (kernels/bf16_lut_ref.c: 12 bits a value, exact) where the
 * kernels read it (AVX-512 VBMI), unless cfg.keep_file_layout: the output (and a tied embedding, whose rows are then decoded
 * from it) then points at the packed form, typed TL_BF16_LUT. With cfg.weights_writable it is written over the bf16
 * itself (its rows, 0.76 of the bytes, start where the matrix did; the rest is dropped), else into new memory on huge
 * pages, dropping the bf16 pages as it goes with cfg.weights_mapped: memory never holds both forms. Rows go in chunks
 * over the pool: a first pass chooses each row's table and counts each chunk's exceptions (their lists follow the
 * rows), then waves of chunks pack into a buffer that is copied to its place once the wave's bf16 rows are read (in
 * place, a wave's packed rows cover only bf16 rows read before: row r's end, r row_bytes, is below its bf16 end,
 * 2 r cols). A matrix with more than one exception in LUT_MAX_EXCEPTIONS values stays bf16 (its lists would outgrow
 * the 4 bits saved). */
enum { LUT_CHUNK_ROWS = 256, LUT_WAVE_CHUNKS_PER_THREAD = 2, LUT_MAX_EXCEPTIONS = 64 }; /* chunks: whole groups of rows */
typedef struct {
    tl_model *m;
    int64_t *at;         /* [chunks + 1]: each chunk's first exception, then their total */
    uint8_t *tables;     /* [rows][16]: each row's table, chosen in the first pass */
    int32_t wave;        /* the first chunk of the wave being packed */
    uint8_t *rows, *exceptions; /* the wave's packed rows; every exception */
} lut_task;

static void lut_count_chunk(void *arg, int32_t chunk, int32_t thread) {
    (void)thread;
    lut_task *task = arg;
    const tl_tensor *w = &task->m->output;
    int64_t r0 = (int64_t)chunk * LUT_CHUNK_ROWS, r1 = r0 + LUT_CHUNK_ROWS < w->rows ? r0 + LUT_CHUNK_ROWS : w->rows;
    task->at[chunk + 1] = tl_bf16_lut_tables(w->data, w->cols, r0, r1, task->tables + r0 * 16);
}

static void lut_pack_chunk(void *arg, int32_t i, int32_t thread) {
    (void)thread;
    lut_task *task = arg;
    const tl_tensor *w = &task->m->output;
    int32_t chunk = task->wave + i;
    int64_t row_bytes = tl_bf16_lut_row_bytes(w->cols), r0 = (int64_t)chunk * LUT_CHUNK_ROWS;
    int64_t r1 = r0 + LUT_CHUNK_ROWS < w->rows ? r0 + LUT_CHUNK_ROWS : w->rows;
    if (r0 >= r1) return;
    tl_bf16_lut_pack(w->data, w->cols, r0, r1, task->tables + r0 * 16, task->rows + (int64_t)i * LUT_CHUNK_ROWS * row_bytes,
                     task->exceptions + task->at[chunk] * TL_BF16_LUT_EXCEPTION_BYTES,
                     tl_bf16_lut_rows_bytes(w->rows, w->cols) + task->at[chunk] * TL_BF16_LUT_EXCEPTION_BYTES);
}

static int repack_output(tl_model *m) {
    tl_tensor *w = &m->output;
    int64_t row_bytes = tl_bf16_lut_row_bytes(w->cols), bf16_bytes = w->rows * 2 * w->cols;
    if (!m->kern->bf16_lut || m->cfg.keep_file_layout || w->type != TL_BF16 || !row_bytes) return 1;
    int32_t chunks = (int32_t)((w->rows + LUT_CHUNK_ROWS - 1) / LUT_CHUNK_ROWS);
    int32_t wave_chunks = LUT_WAVE_CHUNKS_PER_THREAD * tl_pool_size(m->pool);
    lut_task task = {m, calloc((size_t)chunks + 1, sizeof(int64_t)), malloc((size_t)w->rows * 16), 0, NULL, NULL};
    if (!task.at || !task.tables) return free(task.at), free(task.tables), 0;
    tl_pool_run(m->pool, lut_count_chunk, &task, chunks);
    for (int32_t c = 0; c < chunks; c++) task.at[c + 1] += task.at[c];
    int64_t rows_bytes = tl_bf16_lut_rows_bytes(w->rows, w->cols), exceptions = task.at[chunks] * TL_BF16_LUT_EXCEPTION_BYTES;
    int64_t bytes = rows_bytes + exceptions;
    if (task.at[chunks] * LUT_MAX_EXCEPTIONS > w->rows * w->cols) return free(task.at), free(task.tables), 1;
    int in_place = m->cfg.weights_writable && bytes <= bf16_bytes;
    uint8_t *out = in_place ? (uint8_t *)w->data : tl_alloc_huge((size_t)bytes);
    task.rows = malloc((size_t)(wave_chunks * LUT_CHUNK_ROWS * row_bytes));
    task.exceptions = malloc((size_t)exceptions + 1);
    if (!out || !task.rows || !task.exceptions) {
        if (!in_place) free(out);
        return free(task.at), free(task.tables), free(task.rows), free(task.exceptions), 0;
    }
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), read = (uintptr_t)w->data; /* bf16 read (and dropped) up to */
    for (task.wave = 0; task.wave < chunks; task.wave += wave_chunks) {
        tl_pool_run(m->pool, lut_pack_chunk, &task, wave_chunks);
        int64_t r0 = (int64_t)task.wave * LUT_CHUNK_ROWS, r1 = r0 + wave_chunks * LUT_CHUNK_ROWS;
        r1 = r1 < w->rows ? r1 : w->rows;
        memcpy(out + r0 * row_bytes, task.rows, (size_t)tl_bf16_lut_rows_bytes(r1 - r0, w->cols));
        uintptr_t end = (uintptr_t)w->data + (uintptr_t)(r1 * 2 * w->cols); /* from the page the last wave kept on */
        if (!in_place && m->cfg.weights_mapped) release_pages((const void *)read, (int64_t)(end - read));
        read = end / page * page > read ? end / page * page : read;
    }
    memcpy(out + rows_bytes, task.exceptions, (size_t)exceptions);
    if (in_place && m->cfg.weights_mapped) release_pages(out + bytes, bf16_bytes - bytes);
    free(task.at), free(task.tables), free(task.rows), free(task.exceptions);
    if (!in_place) m->output_lut = out;
    m->output_lut_bytes = bytes;
    if (m->token_embd.data == w->data) m->token_embd.data = out, m->token_embd.type = TL_BF16_LUT; /* tied */
    w->data = out, w->type = TL_BF16_LUT;
    return 1;
}

tl_model *tl_model_new(const tl_config *cfg, const tl_tensor *token_embd, const tl_tensor *output_norm,
                       const tl_tensor *output, const tl_layer *layers, int32_t n_threads, char *err, size_t err_len) {
    if (!cfg || !token_embd || !output_norm || !layers) return fail(err, err_len, "tl_model_new: NULL argument"), NULL;
    if (!check_config(cfg, err, err_len)) return NULL;
    tl_model *m = calloc(1, sizeof *m);
    if (!m) return fail(err, err_len, "out of memory"), NULL;
    m->pool = tl_pool_new(n_threads);
    if (!m->pool) return tl_model_free(m), fail(err, err_len, "out of memory"), NULL;
    if (!check_weights(m->pool, cfg, token_embd, output_norm, output, layers, err, err_len)) return tl_model_free(m), NULL;
    m->cfg = *cfg;
    m->token_embd = *token_embd;
    m->output_norm = *output_norm;
    m->output = output && output->data ? *output : *token_embd;
    m->kern = tl_kernels_best();
    m->layers = malloc(sizeof *layers * (size_t)cfg->n_layer);
    m->rope_inv_freq = malloc(sizeof(float) * (size_t)(cfg->head_dim / 2));
    if (!m->layers || !m->rope_inv_freq) {
        tl_model_free(m);
        return fail(err, err_len, "out of memory"), NULL;
    }
    memcpy(m->layers, layers, sizeof *layers * (size_t)cfg->n_layer);
    if (!make_sparse_copies(m)) {
        tl_model_free(m);
        return fail(err, err_len, "out of memory for the sparse weight copies"), NULL;
    }
    if (!repack_linears(m)) {
        tl_model_free(m);
        return fail(err, err_len, "out of memory for the repacked ternary weights"), NULL;
    }
    if (!repack_output(m)) {
        tl_model_free(m);
        return fail(err, err_len, "out of memory for the repacked bf16 output matrix"), NULL;
    }
    // RoPE frequencies as transformers computes them in float32: 1 / theta^(2i / head_dim)
    for (int i = 0; i < cfg->head_dim / 2; i++)
        m->rope_inv_freq[i] = 1.0f / powf(cfg->rope_theta, (float)(2 * i) / (float)cfg->head_dim);
    return m;
}

void tl_model_free(tl_model *m) {
    if (!m) return;
    tl_pool_free(m->pool);
    free(m->sparse_arena);
    free(m->sparse);
    free(m->repacked);
    free(m->repacked_arena);
    free(m->output_lut);
    free(m->skip_up);
    free(m->layers);
    free(m->rope_inv_freq);
    free(m);
}

int64_t tl_model_output_bytes(const tl_model *m) {
    return m->output.type == TL_BF16_LUT ? m->output_lut_bytes : m->output.rows * tl_row_bytes(m->output.type, m->output.cols);
}

int64_t tl_model_linear_bytes(const tl_model *m, int32_t layer, int32_t linear) {
    if (layer < 0 || layer >= m->cfg.n_layer || linear < 0 || linear >= N_LINEARS) return -1;
    const tl_tensor *w = linear_of(&m->layers[layer], linear);
    return w->rows * tl_row_bytes(w->type, w->cols);
}

const char *tl_isa(void) { return tl_kernels_best()->isa; }
const char *tl_isa_name(int32_t i) { return tl_kernels_name(i); }

/* ---- contexts: one caller's scratch ---- */

/* Floats of one thread's attention scratch: queries, maxima, denominators, sums and weights of ATT_TASK_ROWS rows. */
static size_t att_scratch_floats(const tl_config *c) {
    return (size_t)ATT_TASK_ROWS * (2 * (size_t)tl_att_hd16(c->head_dim) + 1 + 16 + TL_ATT_BLOCK + 1);
}


static void free_scratch(tl_ctx *ctx) {
    void **bufs[] = {(void **)&ctx->x, (void **)&ctx->xn, (void **)&ctx->xf, (void **)&ctx->q, (void **)&ctx->k,
                     (void **)&ctx->v, (void **)&ctx->att, (void **)&ctx->tmp, (void **)&ctx->gate, (void **)&ctx->up,
                     (void **)&ctx->xq, (void **)&ctx->xscale, (void **)&ctx->xsum, (void **)&ctx->pos,
                     (void **)&ctx->out_token, (void **)&ctx->att_tasks, (void **)&ctx->rope_cs};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        free(*bufs[i]);
        *bufs[i] = NULL;
    }
    ctx->n_cap = 0;
}

/* Sizes the per-token scratch for n tokens (once per new largest batch, never per token). */
static int grow_scratch(tl_ctx *ctx, int32_t n) {
    if (n <= ctx->n_cap) return 1;
    const tl_config *c = &ctx->m->cfg;
    size_t e = c->n_embd, f = c->n_ff, qd = (size_t)c->n_head * c->head_dim, kvd = (size_t)c->n_head_kv * c->head_dim;
    size_t widest = e > f ? e : f, t = (size_t)n;
    widest = (widest > qd ? widest : qd) + 255; /* room for a ternary weight's zero-padded row */
    free_scratch(ctx);
    ctx->x = malloc(t * e * 4), ctx->xn = malloc(t * widest * 4), ctx->xf = malloc(t * widest * 4);
    ctx->q = malloc(t * qd * 4), ctx->k = malloc(t * kvd * 4), ctx->v = malloc(t * kvd * 4), ctx->att = malloc(t * qd * 4);
    ctx->tmp = malloc(t * e * 4), ctx->gate = malloc(t * f * 4), ctx->up = malloc(t * f * 4);
    ctx->xq = malloc(t * widest), ctx->xscale = malloc(t * 4), ctx->xsum = malloc(t * 4);
    ctx->pos = malloc(t * 4), ctx->out_token = malloc(t * 4), ctx->rope_cs = malloc(t * (size_t)c->head_dim * 4);
    ctx->att_tasks = malloc(t * (size_t)c->n_head * sizeof *ctx->att_tasks);
    if (!ctx->att_tasks || !ctx->x || !ctx->xn || !ctx->xf || !ctx->q || !ctx->k || !ctx->v || !ctx->att || !ctx->tmp || !ctx->gate ||
        !ctx->up || !ctx->xq || !ctx->xscale || !ctx->xsum || !ctx->pos || !ctx->out_token || !ctx->rope_cs) {
        free_scratch(ctx);
        return 0;
    }
    ctx->n_cap = n;
    return 1;
}

/* Sizes logits_tmp for n rows (only scattered logit rows go through it). */
static int grow_logits_tmp(tl_ctx *ctx, int32_t n) {
    if (n <= ctx->logits_cap) return 1;
    free(ctx->logits_tmp);
    ctx->logits_tmp = malloc((size_t)n * (size_t)ctx->m->cfg.n_vocab * sizeof(float));
    ctx->logits_cap = ctx->logits_tmp ? n : 0;
    return ctx->logits_tmp != NULL;
}

tl_ctx *tl_ctx_new(const tl_model *m) {
    if (!m) return NULL;
    tl_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return NULL;
    ctx->m = m;
    ctx->att_scratch = malloc(att_scratch_floats(&m->cfg) * sizeof(float) * (size_t)tl_pool_size(m->pool));
    const tl_config *c = &m->cfg;
    size_t threads = (size_t)tl_pool_size(m->pool), widest = (size_t)(c->n_ff > c->n_embd ? c->n_ff : c->n_embd);
    widest = (widest > (size_t)c->n_head * c->head_dim ? widest : (size_t)c->n_head * c->head_dim) + 255;
    ctx->topk_work = malloc(sizeof(uint32_t) * widest * threads);
    ctx->kv_rows = malloc(sizeof(float) * 2 * TL_ATT_BLOCK * (size_t)c->head_dim * threads);
    ctx->kept_idx = malloc(sizeof(int32_t) * widest), ctx->kept_val = malloc(widest), ctx->up_rows = malloc(sizeof(int32_t) * widest);
    ctx->up_kept = malloc(sizeof(int32_t) * (size_t)(PARTS_PER_THREAD * tl_pool_size(m->pool)));
    ctx->sparse_sums = malloc(sizeof(int32_t) * 3 * (size_t)(PARTS_PER_THREAD * tl_pool_size(m->pool)) * (size_t)m->sparse_rows + 1);
    if (!ctx->att_scratch || !ctx->topk_work || !ctx->kv_rows || !ctx->kept_idx || !ctx->kept_val || !ctx->up_rows || !ctx->up_kept || !ctx->sparse_sums ||
        !grow_scratch(ctx, 1)) {
        tl_ctx_free(ctx);
        return NULL;
    }
    return ctx;
}

void tl_ctx_sparse_counts(const tl_ctx *ctx, int64_t counts[4]) { memcpy(counts, ctx->sparse_counts, sizeof ctx->sparse_counts); }

void tl_ctx_phase_ns(const tl_ctx *ctx, int64_t ns[TL_N_PHASES]) { memcpy(ns, ctx->phase_ns, sizeof ctx->phase_ns); }

void tl_ctx_free(tl_ctx *ctx) {
    if (!ctx) return;
    free_scratch(ctx);
    free(ctx->logits_tmp);
    free(ctx->att_scratch);
    free(ctx->topk_work), free(ctx->kv_rows), free(ctx->kept_idx), free(ctx->kept_val), free(ctx->up_rows), free(ctx->up_kept), free(ctx->sparse_sums);
    free(ctx);
}

/* ---- sequences ---- */

tl_seq *tl_seq_new(const tl_model *m, int32_t n_ctx) {
    if (!m || n_ctx <= 0) return NULL;
    const tl_config *c = &m->cfg;
    size_t per_position = (size_t)c->n_layer * (size_t)c->n_head_kv * (size_t)c->head_dim;
    if ((size_t)n_ctx > SIZE_MAX / sizeof(float) / per_position) return NULL;
    tl_seq *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    size_t cache = per_position * (size_t)n_ctx;
    s->m = m;
    s->n_ctx = n_ctx;
    if (c->kv_bits == 16) {
        s->kh = malloc(cache * sizeof(uint16_t));
        s->vh = malloc(cache * sizeof(uint16_t));
        if (!s->kh || !s->vh) { tl_seq_free(s); return NULL; }
        return s;
    }
    if (c->kv_bits) { /* one quantized row per position and KV head; position 0's apart, at its own bits */
        size_t rows = (size_t)c->n_layer * (size_t)n_ctx * (size_t)c->n_head_kv, firsts = (size_t)c->n_layer * (size_t)c->n_head_kv;
        s->kq = malloc(rows * (size_t)tl_kv_row_bytes(c->kv_bits, c->head_dim));
        s->vq = malloc(rows * (size_t)tl_kv_row_bytes(c->kv_bits, c->head_dim));
        s->k0 = malloc(firsts * (size_t)tl_kv_row_bytes(c->kv_bits_first, c->head_dim));
        s->v0 = malloc(firsts * (size_t)tl_kv_row_bytes(c->kv_bits_first, c->head_dim));
        if (!s->kq || !s->vq || !s->k0 || !s->v0) { tl_seq_free(s); return NULL; }
        return s;
    }
    s->k = malloc(cache * sizeof(float));
    s->v = malloc(cache * sizeof(float));
    if (!s->k || !s->v) { tl_seq_free(s); return NULL; }
    return s;
}

void tl_seq_free(tl_seq *s) {
    if (!s) return;
    free(s->k);
    free(s->v);
    free(s->kh), free(s->vh), free(s->kq), free(s->vq), free(s->k0), free(s->v0);
    free(s);
}

int32_t tl_seq_len(const tl_seq *s) { return s->len; }

int32_t tl_seq_truncate(tl_seq *s, int32_t len) {
    if (len < 0 || len > s->len) return -1;
    s->len = len; /* the cache rows past len are overwritten as tokens arrive again */
    return 0;
}

/* ---- the steps of the forward pass ---- */

/* RMSNorm of n rows of dim values, as BitNetRMSNorm: w * (x * rsqrt(mean(x^2) + eps)). */
enum { NORM_LANES = 8 }; /* tokens whose sums of squares run interleaved */

/* ss[j] = the sum of rows[j][i]^2 over i in order, j < L: each row's sum as a loop over it alone gives, the L rows'
 * dependency chains interleaved so they overlap (a lone sum waits on its add's latency at every step). */
static inline __attribute__((always_inline)) void sums_of_squares(const float *const rows[NORM_LANES], int64_t dim, int L,
                                                                  float ss[NORM_LANES]) {
    float acc[NORM_LANES] = {0};
    for (int64_t i = 0; i < dim; i++)
        for (int j = 0; j < L; j++) acc[j] += rows[j][i] * rows[j][i];
    for (int j = 0; j < L; j++) ss[j] = acc[j];
}

static void rmsnorm(float *out, const float *in, const tl_tensor *weight, int32_t n, int64_t dim, float eps) {
    const float *w = weight->data;
    for (int32_t t0 = 0; t0 < n; t0 += NORM_LANES) {
        // up to NORM_LANES tokens' sums together (spare lanes repeat the last token), then each token's row
        int32_t m = n - t0 < NORM_LANES ? n - t0 : NORM_LANES;
        const float *rows[NORM_LANES];
        float ss[NORM_LANES];
        for (int j = 0; j < NORM_LANES; j++) rows[j] = in + (t0 + (j < m ? j : m - 1)) * dim;
        if (m == 1) sums_of_squares(rows, dim, 1, ss);
        else if (m == 2) sums_of_squares(rows, dim, 2, ss);
        else if (m <= 4) sums_of_squares(rows, dim, 4, ss);
        else sums_of_squares(rows, dim, NORM_LANES, ss);
        for (int32_t j = 0; j < m; j++) {
            const float *x = rows[j];
            float r = 1.0f / sqrtf(ss[j] / (float)dim + eps);
            for (int64_t i = 0; i < dim; i++) out[(t0 + j) * dim + i] = w[i] * (x[i] * r);
        }
    }
}

typedef float f32x16 __attribute__((vector_size(64)));
typedef int32_t i32x16 __attribute__((vector_size(64)));
typedef int8_t i8x16 __attribute__((vector_size(16)));

/* Lanes of a where mask (a comparison's lanes: all ones or zero), else of b (i32x16 bits). */
#define SELECT16(mask, a, b) (((mask) & (a)) | (~(mask) & (b)))

/* BitNet's per-token activation quantization: s = 127 / max(absmax, 1e-5), q = clamp(round(x * s)).
 * Rows are written width >= dim apart, zero after dim, to match a weight's zero-padded rows. Both loops are
 * written to vectorize: |x| is maximized as integer bits (same order as the floats), and x * s, clamped first,
 * is rounded half to even (as torch.round) by adding and subtracting 1.5 * 2^23. An activation mode first keeps
 * the `keep` largest |x| of each row (zeroing the rest in place), and with bits = 4 quantizes INT4 absmean. */
X86_CLONES static void quantize(tl_ctx *ctx, float *in, int64_t t0, int64_t t1, int64_t dim, int64_t width, int32_t bits,
                                int64_t keep, uint32_t *work) {
    for (int64_t t = t0; t < t1; t++) {
        float *x = in + t * dim;
        if (keep < dim) tl_topk_ref(x, dim, keep, work);
        if (bits == 4) {
            ctx->xsum[t] = ctx->m->kern->int4(x, dim, ctx->xq + t * width, &ctx->xscale[t]);
            for (int64_t i = 0; i < dim; i++) ctx->xf[t * width + i] = (float)ctx->xq[t * width + i];
            for (int64_t i = dim; i < width; i++) ctx->xq[t * width + i] = 0, ctx->xf[t * width + i] = 0;
            continue;
        }
        uint32_t top = 0;
        for (int64_t i = 0; i < dim; i++) {
            uint32_t bits;
            memcpy(&bits, x + i, 4);
            bits &= 0x7fffffffu;
            top = bits > top ? bits : top;
        }
        float absmax;
        memcpy(&absmax, &top, 4);
        float s = 127.0f / fmaxf(absmax, 1e-5f);
        int8_t *xq = ctx->xq + t * width;
        float *xf = ctx->xf + t * width;
        // 16 values at a time in vector types: the clamps are lane selects (as scalar code they stay branches, which
        // the compiler will not vectorize); the integer sum is exact in any order
        const f32x16 hi = (f32x16){0} + 127.0f, lo = (f32x16){0} - 128.0f;
        i32x16 sums = {0};
        int64_t i = 0;
        for (; i + 16 <= dim; i += 16) {
            f32x16 v;
            memcpy(&v, x + i, sizeof v);
            v *= s;
            v = (f32x16)SELECT16(v < hi, (i32x16)v, (i32x16)hi); /* a NaN lane compares false: 127, as below */
            v = (f32x16)SELECT16(v > lo, (i32x16)v, (i32x16)lo);
            i32x16 q = __builtin_convertvector((v + 12582912.0f) - 12582912.0f, i32x16);
            i8x16 q8 = __builtin_convertvector(q, i8x16);
            f32x16 qf = __builtin_convertvector(q, f32x16);
            memcpy(xq + i, &q8, sizeof q8);
            memcpy(xf + i, &qf, sizeof qf);
            sums += q;
        }
        int32_t sum = 0;
        for (int j = 0; j < 16; j++) sum += sums[j];
        for (; i < dim; i++) {
            float v = x[i] * s;
            v = v < 127 ? v : 127; /* written so a NaN (an overflowed activation) clamps to 127, never reaches the cast */
            v = v > -128 ? v : -128;
            int32_t q = (int32_t)((v + 12582912.0f) - 12582912.0f);
            xq[i] = (int8_t)q;
            xf[i] = (float)q;
            sum += q;
        }
        for (int64_t i = dim; i < width; i++) xq[i] = 0, xf[i] = 0;
        ctx->xscale[t] = s;
        ctx->xsum[t] = sum;
    }
}

/* A BitLinear's input: RMSNorm (when a weight is given; in place if out == in) then quantization of n token
 * rows, the tokens split over the pool (each row is its own work, so results do not depend on the split). */
typedef struct {
    tl_ctx *ctx;
    float *out;
    const float *in;
    const tl_tensor *norm;
    int32_t n, parts, bits, align; /* align: chunks start on multiples of this many tokens */
    int64_t dim, width, keep;
} prep_task;

enum { PREP_PARTS_PER_THREAD = 2 };

static void prep_chunk(void *arg, int32_t chunk, int32_t thread) {
    prep_task *p = arg;
    int64_t t0, t1;
    tl_split(p->n, p->align, chunk, p->parts, &t0, &t1);
    if (t0 >= t1) return;
    if (p->norm) rmsnorm(p->out + t0 * p->dim, p->in + t0 * p->dim, p->norm, (int32_t)(t1 - t0), p->dim, p->ctx->m->cfg.rms_eps);
    quantize(p->ctx, p->norm ? p->out : (float *)p->in, t0, t1, p->dim, p->width, p->bits, p->keep,
             p->ctx->topk_work + (size_t)thread * (size_t)p->width);
}

/* The nonzero codes of q[0..dim): their indices and values, in order; returns how many. Branch-free, since zeros
 * and nonzeros alternate unpredictably. */
static int32_t list_nonzeros(const int8_t *q, int64_t dim, int32_t *idx, int8_t *val) {
    int32_t n = 0;
    for (int64_t i = 0; i < dim; i++) {
        idx[n] = (int32_t)i, val[n] = q[i];
        n += q[i] != 0;
    }
    return n;
}

/* input: which linear input (TL_IN_*) this is, for the mode's bits and top-K. A single token whose input feeds
 * sparse copies also lists its nonzero codes, the sparse GEMV's operand. */
static void norm_quantize(tl_ctx *ctx, float *out, const float *in, const tl_tensor *norm, int32_t n, int64_t dim,
                          int64_t width, int input) {
    const tl_config *c = &ctx->m->cfg;
    int32_t parts = PREP_PARTS_PER_THREAD * tl_pool_size(ctx->m->pool);
    prep_task p = {ctx, out, in, norm, n, n < parts ? 1 : parts, c->act_bits[input] == 4 ? 4 : 8, 1, dim, width,
                   topk_keep(c->act_topk[input], dim)}; /* one token: no dispatch */
    if (p.keep == dim) { /* no top-K: chunks of whole groups of lanes (one token: no dispatch); 5 to 8 tokens in
                            two groups of 4, so both threads work (one group of 8 took 2.8 ms of an 8-stream step) */
        p.align = n > NORM_LANES ? NORM_LANES : NORM_LANES / 2;
        int32_t groups = (n + p.align - 1) / p.align;
        p.parts = groups < parts ? groups : parts;
    }
    tl_pool_run(ctx->m->pool, prep_chunk, &p, p.parts);
    ctx->n_kept = 0;
    if (n == 1 && ctx->m->sparse_input[input]) ctx->n_kept = list_nonzeros(ctx->xq, dim, ctx->kept_idx, ctx->kept_val);
    if (n == 1 && ctx->m->sparse_input[input] && input == TL_IN_DOWN && c->act == TL_ACT_RELU2)
        ctx->sparse_counts[0] += dim, ctx->sparse_counts[1] += ctx->n_kept;
}

/* Up to three matmuls over the same input, run together so one pool dispatch covers q/k/v or gate/up.
 * Each matrix's output rows (never tokens) are cut into PARTS_PER_THREAD chunks per thread, claimed by
 * whichever thread is free; a row's result does not depend on its chunk, so not on the thread count.
 * quantized: a BitLinear (input in ctx->xq); otherwise a float input in x. */
typedef struct { const tl_tensor *w; float *y; const uint8_t *sparse; /* by-input-channel copy: used for one token */ } matmul_job;
typedef struct {
    tl_ctx *ctx;
    int32_t n, n_jobs, quantized;
    const float *x; /* float input [n][cols] when not quantized */
    matmul_job jobs[3];
} matmul_task;


static void matmul_chunk(void *arg, int32_t chunk, int32_t thread) {
    (void)thread;
    matmul_task *task = arg;
    const tl_ctx *ctx = task->ctx;
    const tl_model *m = ctx->m;
    tl_qact qa = {ctx->xq, ctx->xscale, ctx->xsum, task->n};
    int32_t parts = PARTS_PER_THREAD * tl_pool_size(m->pool);
    const tl_tensor *w = task->jobs[chunk / parts].w;
    float *y = task->jobs[chunk / parts].y;
    const uint8_t *sparse = task->n == 1 ? task->jobs[chunk / parts].sparse : NULL;
    int64_t r0, r1;
    if (sparse) { /* one token, sparse input: the chunk's share of the kept inputs, all rows, into its own sums */
        int32_t *sum = ctx->sparse_sums + (size_t)chunk * (size_t)m->sparse_rows;
        memset(sum, 0, sizeof(int32_t) * (size_t)m->sparse_rows);
        tl_split(ctx->n_kept, 1, chunk % parts, parts, &r0, &r1);
        m->kern->sparse(sparse, w->rows, ctx->kept_idx + r0, ctx->kept_val + r0, (int32_t)(r1 - r0), sum);
        return;
    }
    tl_split(w->rows, ROW_ALIGN, chunk % parts, parts, &r0, &r1);
    if (r0 >= r1) return;
    tl_ternary_fn *tern = ternary_kernel(m->kern, w->type);
    if (tern) { tern(w->data, w->cols, r0, r1, &qa, w->scale, y, w->rows); return; }
    if (!task->quantized) { tl_float_kernel(m->kern, w->type)(w->data, w->cols, r0, r1, task->x, task->n, y, w->rows); return; }
    // float weights in a BitLinear: the same int8 activations (as floats), a float dot, then / s
    tl_float_kernel(m->kern, w->type)(w->data, w->cols, r0, r1, ctx->xf, task->n, y, w->rows);
    for (int32_t t = 0; t < task->n; t++)
        for (int64_t r = r0; r < r1; r++) y[t * w->rows + r] /= ctx->xscale[t];
}

static void run_matmuls(tl_ctx *ctx, matmul_task *task) {
    const tl_model *m = ctx->m;
    int32_t parts = PARTS_PER_THREAD * tl_pool_size(m->pool);
    tl_pool_run(m->pool, matmul_chunk, task, task->n_jobs * parts);
    // a sparse job's chunks summed disjoint inputs: add their integer sums (in any order: exact), scale as the dense kernels
    for (int32_t j = 0; task->n == 1 && j < task->n_jobs; j++) {
        const tl_tensor *w = task->jobs[j].w;
        int32_t *sums = ctx->sparse_sums + (size_t)j * (size_t)parts * (size_t)m->sparse_rows;
        if (!task->jobs[j].sparse) continue;
        for (int32_t c = 1; c < parts; c++)
            for (int64_t r = 0; r < w->rows; r++) sums[r] += sums[(size_t)c * (size_t)m->sparse_rows + r];
        for (int64_t r = 0; r < w->rows; r++) task->jobs[j].y[r] = (float)sums[r] / ctx->xscale[0] * w->scale;
    }
}

/* BitLinear over the quantized input of n tokens: y[j] = W x for linears first .. first + count - 1 of layer l
 * (tl_layer order: q, k, v, o, gate, up, down). */
static void bitlinear(tl_ctx *ctx, int32_t n, int l, int first, int count, float *const *y) {
    const tl_model *m = ctx->m;
    matmul_task task = {ctx, n, count, 1, NULL, {{0}}};
    for (int j = 0; j < count; j++)
        task.jobs[j] = (matmul_job){linear_of(&m->layers[l], first + j), y[j], m->sparse[l * N_LINEARS + first + j]};
    run_matmuls(ctx, &task);
}

/* A relu² batch's gate and up projections in one pass over the pool, each chunk over its own rows: gate first, then
 * up on only those of its rows where some token's relu(gate) > 0 (listed in ctx->up_rows from the chunk's first row).
 * The other rows' act(gate) * up is 0 for every token whatever up is, so they are left 0. A chunk whose list keeps
 * more than UP_LIST_MAX of its rows (several tokens: their union) runs up densely instead, which is then faster. */
typedef struct { tl_ctx *ctx; const tl_layer *L; int32_t n, parts; } gate_up_task;

static const float UP_LIST_MAX = 0.75f;

static void gate_up_chunk(void *arg, int32_t chunk, int32_t thread) {
    (void)thread;
    gate_up_task *task = arg;
    tl_ctx *ctx = task->ctx;
    const tl_kernels *k = ctx->m->kern;
    const tl_tensor *gate = &task->L->ffn_gate, *up = &task->L->ffn_up;
    int64_t f = gate->rows, r0, r1;
    tl_qact qa = {ctx->xq, ctx->xscale, ctx->xsum, task->n};
    tl_split(f, ROW_ALIGN, chunk, task->parts, &r0, &r1);
    int32_t kept = 0, *rows = ctx->up_rows + r0;
    if (r0 < r1) {
        ternary_kernel(k, gate->type)(gate->data, gate->cols, r0, r1, &qa, gate->scale, ctx->gate, f);
        for (int64_t r = r0; r < r1; r++) { /* branch-free: positive and not alternate unpredictably */
            int any = 0;
            for (int32_t t = 0; t < task->n; t++) any |= ctx->gate[t * f + r] > 0, ctx->up[t * f + r] = 0;
            rows[kept] = (int32_t)r;
            kept += any;
        }
        if (kept > UP_LIST_MAX * (float)(r1 - r0)) {
            ternary_kernel(k, up->type)(up->data, up->cols, r0, r1, &qa, up->scale, ctx->up, f);
            kept = (int32_t)(r1 - r0);
        } else ternary_rows_kernel(k, up->type)(up->data, up->cols, rows, kept, &qa, up->scale, ctx->up, f);
    }
    ctx->up_kept[chunk] = kept; /* rows computed */
}

/* gate, then up where relu(gate) > 0 for some token, for n tokens of layer l (a relu² model decoding sparsely). */
static void gate_then_up(tl_ctx *ctx, int l, int32_t n) {
    const tl_model *m = ctx->m;
    gate_up_task task = {ctx, &m->layers[l], n, PARTS_PER_THREAD * tl_pool_size(m->pool)};
    tl_pool_run(m->pool, gate_up_chunk, &task, task.parts);
    ctx->sparse_counts[2] += n * m->layers[l].ffn_up.rows;
    for (int32_t c = 0; c < task.parts; c++) ctx->sparse_counts[3] += n * ctx->up_kept[c];
}

/* A position's RoPE angles pos * inv_freq[i]: their cosines in cs[0 .. head_dim/2), sines after. */
static void rope_angles(const tl_model *m, int32_t pos, float *cs) {
    int32_t half = m->cfg.head_dim / 2;
    for (int32_t i = 0; i < half; i++) {
        float angle = (float)pos * m->rope_inv_freq[i];
        cs[i] = cosf(angle), cs[half + i] = sinf(angle);
    }
}

/* RoPE: pairs (i, i + head_dim/2) of each head (NEOX, transformers' rotate_half), or (2i, 2i + 1) when the
 * q/k rows were interleaved for llama.cpp's normal form, rotate by the angles in cs (rope_angles). */
static void rope(const tl_model *m, float *x, int32_t n_heads, const float *cs) {
    int32_t hd = m->cfg.head_dim, half = hd / 2, il = m->cfg.rope_interleaved;
    for (int32_t i = 0; i < half; i++) {
        float c = cs[i], s = cs[half + i];
        int32_t ia = il ? 2 * i : i, ib = il ? 2 * i + 1 : i + half;
        for (int32_t h = 0; h < n_heads; h++) {
            float *v = x + h * hd, a = v[ia], b = v[ib];
            v[ia] = a * c - b * s;
            v[ib] = b * c + a * s;
        }
    }
}

/* The index of the cache row of KV head h at position pos of layer l (struct tl_seq's order). */
static size_t kv_row(const tl_config *c, const tl_seq *s, int l, int32_t h, int32_t pos) {
    return ((size_t)l * c->n_head_kv + h) * s->n_ctx + pos;
}

/* The byte offset of a quantized cache row: position 0's among s->k0 / s->v0 ([n_layer][n_head_kv], at
 * kv_bits_first), the others' among s->kq / s->vq (kv_row's order, at kv_bits). */
static size_t kv_quantized_at(const tl_config *c, const tl_seq *s, int l, int32_t h, int32_t pos) {
    if (!pos) return ((size_t)l * c->n_head_kv + h) * (size_t)tl_kv_row_bytes(c->kv_bits_first, c->head_dim);
    return kv_row(c, s, l, h, pos) * (size_t)tl_kv_row_bytes(c->kv_bits, c->head_dim);
}

/* Appends a token's keys and values (after RoPE) at position pos of layer l: f32 rows, f16 rows, or with kv_bits 3/4
 * one quantized row per KV head (position 0 at kv_bits_first, kept apart so all other rows have one size). */
static void kv_store(const tl_model *m, tl_seq *s, int l, int32_t pos, const float *k, const float *v) {
    const tl_config *c = &m->cfg;
    int64_t hd = c->head_dim;
    int32_t bits = pos ? c->kv_bits : c->kv_bits_first;
    for (int32_t h = 0; h < c->n_head_kv; h++) {
        size_t row = kv_row(c, s, l, h, pos) * (size_t)hd;
        if (!c->kv_bits) {
            memcpy(s->k + row, k + h * hd, hd * sizeof(float));
            memcpy(s->v + row, v + h * hd, hd * sizeof(float));
            continue;
        }
        if (c->kv_bits == 16) {
            m->kern->kv_f32_to_f16(k + h * hd, hd, s->kh + row);
            m->kern->kv_f32_to_f16(v + h * hd, hd, s->vh + row);
            continue;
        }
        size_t at = kv_quantized_at(c, s, l, h, pos);
        tl_kv_quantize_ref(k + h * hd, hd, bits, (pos ? s->kq : s->k0) + at);
        tl_kv_quantize_ref(v + h * hd, hd, bits, (pos ? s->vq : s->v0) + at);
    }
}

/* Keys and values of positions p0 .. p0 + len - 1 of KV head h in layer l as float rows `stride` apart: the cache's
 * own rows (f32), or converted into buf ([2][TL_ATT_BLOCK][head_dim]) from a quantized cache or an f16 one (where the
 * kernel table has no attention_f16 to read it as it is). */
static void kv_block(const tl_model *m, const tl_seq *s, int l, int32_t h, int32_t p0, int32_t len, float *buf,
                     const float **k, const float **v, int64_t *stride) {
    const tl_config *c = &m->cfg;
    int64_t hd = c->head_dim;
    size_t row = kv_row(c, s, l, h, p0) * (size_t)hd;
    *k = buf, *v = buf + TL_ATT_BLOCK * hd, *stride = hd;
    if (!c->kv_bits) {
        *k = s->k + row, *v = s->v + row;
        return;
    }
    if (c->kv_bits == 16) { /* the block's rows are one run: the head's positions are consecutive */
        m->kern->kv_f16_to_f32(s->kh + row, len * hd, buf);
        m->kern->kv_f16_to_f32(s->vh + row, len * hd, buf + TL_ATT_BLOCK * hd);
        return;
    }
    for (int32_t j = 0; j < len; j++) {
        int32_t pos = p0 + j, bits = pos ? c->kv_bits : c->kv_bits_first;
        size_t at = kv_quantized_at(c, s, l, h, pos);
        tl_kv_dequantize_ref((pos ? s->kq : s->k0) + at, hd, bits, buf + j * hd);
        tl_kv_dequantize_ref((pos ? s->vq : s->v0) + at, hd, bits, buf + (TL_ATT_BLOCK + j) * hd);
    }
}

/* Causal grouped-query attention: token t's query head h attends to positions 0..pos[t] of KV head h / (n_head /
 * n_head_kv) in its sequence's cache, through the kernel table's blocked kernel (kernels.h: keys a block at a time,
 * softmax online). A task is a KV head's query heads [h0, h0 + nh) for the tokens [t0, t0 + nt) of one run (tokens
 * of one sequence at consecutive positions): its rows share every key and value row read. Each row's result is
 * computed in one canonical order, so it depends neither on the task's shape nor on the batch. */
typedef struct { tl_ctx *ctx; tl_seq *const *seqs; int32_t layer; } attention_task;

/* Splits the batch into attention tasks: each run of tokens in chunks of up to ATT_TASK_ROWS rows, per KV head,
 * its query heads in parts of nh; nh halves from the whole group only until every thread has a task, since each part
 * reads the KV head's rows again (one token at position 2,000 on the 2B-4T shape, 2 threads: 5 tasks decode 1.1x
 * faster than 10). */
static void plan_attention(tl_ctx *ctx, tl_seq *const *seqs, int32_t n) {
    const tl_config *c = &ctx->m->cfg;
    int32_t group = c->n_head / c->n_head_kv, nh = group, want = tl_pool_size(ctx->m->pool);
    for (;;) {
        int32_t per_task = ATT_TASK_ROWS / nh > 0 ? ATT_TASK_ROWS / nh : 1, count = 0;
        for (int32_t t = 0; t < n;) {
            int32_t run = 1;
            while (t + run < n && run < per_task && seqs[t + run] == seqs[t] && ctx->pos[t + run] == ctx->pos[t] + run) run++;
            for (int32_t kvh = 0; kvh < c->n_head_kv; kvh++)
                for (int32_t h0 = kvh * group; h0 < (kvh + 1) * group; h0 += nh)
                    ctx->att_tasks[count++] = (struct att_task){t, run, kvh, h0, (kvh + 1) * group - h0 < nh ? (kvh + 1) * group - h0 : nh};
            t += run;
        }
        ctx->n_att_tasks = count;
        if (count >= want || nh == 1) return;
        nh = (nh + 1) / 2;
    }
}

static void attention_chunk(void *arg, int32_t chunk, int32_t thread) {
    attention_task *at = arg;
    tl_ctx *ctx = at->ctx;
    const tl_config *c = &ctx->m->cfg;
    const struct att_task *task = &ctx->att_tasks[chunk];
    int32_t hd = c->head_dim, hd16 = tl_att_hd16(hd), rows = task->nt * task->nh;
    float scale = 1.0f / sqrtf((float)hd);
    // this thread's scratch: the task's queries (zero padded to hd16), running softmax, weights, what each row sees
    float *q = ctx->att_scratch + att_scratch_floats(c) * (size_t)thread;
    tl_att_state st = {q + ATT_TASK_ROWS * hd16, NULL, NULL, NULL};
    st.denom = st.max + ATT_TASK_ROWS, st.acc = st.denom + 16 * ATT_TASK_ROWS, st.w = st.acc + ATT_TASK_ROWS * hd16;
    int32_t *seen = (int32_t *)(st.w + ATT_TASK_ROWS * TL_ATT_BLOCK);
    float *kv_buf = ctx->kv_rows + (size_t)thread * 2 * TL_ATT_BLOCK * hd;
    for (int32_t i = 0; i < task->nt; i++)
        for (int32_t j = 0; j < task->nh; j++) {
            float *row = q + (int64_t)(i * task->nh + j) * hd16;
            memcpy(row, ctx->q + ((size_t)(task->t0 + i) * c->n_head + task->h0 + j) * hd, hd * sizeof(float));
            for (int32_t d = hd; d < hd16; d++) row[d] = 0;
        }
    // a block of key positions at a time, each row up to its own position
    const tl_seq *s = at->seqs[task->t0];
    const tl_kernels *kern = ctx->m->kern;
    int f16_direct = c->kv_bits == 16 && kern->attention_f16;
    int32_t last = ctx->pos[task->t0 + task->nt - 1];
    tl_attention_begin(rows, hd, &st);
    for (int32_t p0 = 0; p0 <= last; p0 += TL_ATT_BLOCK) {
        int32_t len = last + 1 - p0 < TL_ATT_BLOCK ? last + 1 - p0 : TL_ATT_BLOCK;
        for (int32_t r = 0; r < rows; r++) {
            int32_t sees = ctx->pos[task->t0 + r / task->nh] + 1 - p0;
            seen[r] = sees < 0 ? 0 : sees < len ? sees : len;
        }
        if (f16_direct) { /* an f16 cache the kernel reads as it is */
            size_t row = kv_row(c, s, at->layer, task->kv_head, p0) * (size_t)hd;
            kern->attention_f16(q, rows, hd, s->kh + row, s->vh + row, hd, len, seen, scale, &st);
            continue;
        }
        const float *k, *v;
        int64_t stride;
        kv_block(ctx->m, s, at->layer, task->kv_head, p0, len, kv_buf, &k, &v, &stride);
        kern->attention(q, rows, hd, k, v, stride, len, seen, scale, &st);
    }
    for (int32_t i = 0; i < task->nt; i++) {
        tl_att_state row = {st.max + i * task->nh, st.denom + 16 * i * task->nh, st.acc + (int64_t)i * task->nh * hd16, NULL};
        tl_attention_end(&row, task->nh, hd, ctx->att + ((size_t)(task->t0 + i) * c->n_head + task->h0) * hd, hd);
    }
}

/* gate = act(gate) * up, one loop per activation so relu^2's vectorizes. */
X86_CLONES static void gate_times_up(float *gate, const float *up, int64_t len, int32_t act) {
    if (act == TL_ACT_RELU2)
        for (int64_t i = 0; i < len; i++) gate[i] = (gate[i] > 0 ? gate[i] * gate[i] : 0) * up[i];
    else
        for (int64_t i = 0; i < len; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* ---- the forward pass ---- */

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Ends the step under way, counting its time to phase (TL_PHASE_*; ~20 ns a call through the vDSO). */
static void lap(tl_ctx *ctx, int phase) {
    int64_t t = now_ns();
    ctx->phase_ns[phase] += t - ctx->lap_ns;
    ctx->lap_ns = t;
}

/* n tokens through the model, token i appended to seqs[i] (see tl_forward); the sequences are this call's. */
static int32_t forward_batch(tl_ctx *ctx, tl_seq *const *seqs, const int32_t *tokens, int32_t n,
                             const int32_t *logit_rows, float *logits, char *err, size_t err_len) {
    const tl_model *m = ctx->m;
    const tl_config *c = &m->cfg;
    int64_t e = c->n_embd, f = c->n_ff, hd = c->head_dim, qd = (int64_t)c->n_head * hd, kvd = (int64_t)c->n_head_kv * hd;
    if (!grow_scratch(ctx, n)) return fail(err, err_len, "out of memory for a batch of %d tokens", n), -1;
    // check every token and give each its position, before any sequence changes; a batch of up to SPARSE_BATCH
    // tokens of distinct sequences is a decode step (relu²: sparse), one with a prompt's tokens runs dense
    int decode_step = n <= SPARSE_BATCH;
    for (int32_t i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->n_vocab)
            return fail(err, err_len, "token id %d out of range [0, %d)", tokens[i], c->n_vocab), -1;
        int32_t earlier = 0; /* tokens of this sequence before token i in the batch */
        for (int32_t j = 0; j < i; j++) earlier += seqs[j] == seqs[i];
        ctx->pos[i] = seqs[i]->len + earlier;
        decode_step &= !earlier;
        if (ctx->pos[i] >= seqs[i]->n_ctx) return fail(err, err_len, "context full: %d tokens", seqs[i]->n_ctx), -1;
    }
    // the tokens whose logits are wanted, in order; rows other than one run from the first go through logits_tmp
    int32_t n_out = 0, contiguous = 1;
    for (int32_t i = 0; i < n; i++) {
        int32_t row = logit_rows ? logit_rows[i] : i;
        if (row < 0) continue;
        if (n_out && row != (logit_rows ? logit_rows[ctx->out_token[0]] : ctx->out_token[0]) + n_out) contiguous = 0;
        ctx->out_token[n_out++] = i;
    }
    if (!contiguous && !grow_logits_tmp(ctx, n_out)) return fail(err, err_len, "out of memory for %d logit rows", n_out), -1;
    ctx->lap_ns = now_ns();
    plan_attention(ctx, seqs, n);
    // embedding lookup -> f32 residual stream
    for (int32_t i = 0; i < n; i++) tl_row_to_f32(m->token_embd.type, m->token_embd.data, e, tokens[i], ctx->x + i * e);
    for (int32_t i = 0; i < n; i++) rope_angles(m, ctx->pos[i], ctx->rope_cs + i * hd); /* the same in every layer */
    lap(ctx, TL_PHASE_EMBED);
    for (int32_t l = 0; l < c->n_layer; l++) {
        const tl_layer *L = &m->layers[l];
        // attention: RMSNorm, quantize, q/k/v projections
        norm_quantize(ctx, ctx->xn, ctx->x, &L->attn_norm, n, e, L->attn_q.cols, TL_IN_QKV);
        lap(ctx, TL_PHASE_NORM);
        bitlinear(ctx, n, l, 0, 3, (float *[]){ctx->q, ctx->k, ctx->v});
        lap(ctx, TL_PHASE_QKV);
        // RoPE on q and k at each token's position, then append k and v to the token's sequence cache
        for (int32_t i = 0; i < n; i++) {
            rope(m, ctx->q + i * qd, c->n_head, ctx->rope_cs + i * hd);
            rope(m, ctx->k + i * kvd, c->n_head_kv, ctx->rope_cs + i * hd);
            kv_store(m, seqs[i], l, ctx->pos[i], ctx->k + i * kvd, ctx->v + i * kvd);
        }
        lap(ctx, TL_PHASE_ROPE_KV);
        // causal grouped-query attention over each sequence's cache
        attention_task at = {ctx, seqs, l};
        tl_pool_run(m->pool, attention_chunk, &at, ctx->n_att_tasks);
        lap(ctx, TL_PHASE_ATTENTION);
        // attn_sub_norm, quantize, o_proj, residual
        norm_quantize(ctx, ctx->att, ctx->att, c->sub_norms ? &L->attn_sub_norm : NULL, n, qd, L->attn_output.cols, TL_IN_O);
        lap(ctx, TL_PHASE_NORM);
        bitlinear(ctx, n, l, 3, 1, (float *[]){ctx->tmp});
        lap(ctx, TL_PHASE_O);
        for (int64_t i = 0; i < n * e; i++) ctx->x[i] += ctx->tmp[i];
        lap(ctx, TL_PHASE_ELEMENTWISE);
        // MLP: RMSNorm, quantize, gate and up projections (one token of a relu² model: up only where gate > 0)
        norm_quantize(ctx, ctx->xn, ctx->x, &L->ffn_norm, n, e, L->ffn_gate.cols, TL_IN_GATE_UP);
        lap(ctx, TL_PHASE_NORM);
        if (decode_step && m->skip_up[l]) gate_then_up(ctx, l, n);
        else bitlinear(ctx, n, l, 4, 2, (float *[]){ctx->gate, ctx->up});
        lap(ctx, TL_PHASE_GATE_UP);
        // act(gate) * up, with act = relu^2 (BitNet b1.58 2B-4T) or silu
        gate_times_up(ctx->gate, ctx->up, n * f, c->act);
        lap(ctx, TL_PHASE_ELEMENTWISE);
        // ffn_sub_norm, quantize, down projection, residual
        norm_quantize(ctx, ctx->gate, ctx->gate, c->sub_norms ? &L->ffn_sub_norm : NULL, n, f, L->ffn_down.cols, TL_IN_DOWN);
        lap(ctx, TL_PHASE_NORM);
        bitlinear(ctx, n, l, 6, 1, (float *[]){ctx->tmp});
        lap(ctx, TL_PHASE_DOWN);
        for (int64_t i = 0; i < n * e; i++) ctx->x[i] += ctx->tmp[i];
        lap(ctx, TL_PHASE_ELEMENTWISE);
    }
    // final RMSNorm of the tokens wanting logits, then the output projection (f32 activations) -> logits
    if (n_out) {
        for (int32_t j = 0; j < n_out; j++) memcpy(ctx->tmp + j * e, ctx->x + (int64_t)ctx->out_token[j] * e, e * sizeof(float));
        rmsnorm(ctx->xn, ctx->tmp, &m->output_norm, n_out, e, c->rms_eps);
        int32_t first = logit_rows ? logit_rows[ctx->out_token[0]] : ctx->out_token[0];
        float *dst = contiguous ? logits + (int64_t)first * c->n_vocab : ctx->logits_tmp;
        matmul_task task = {ctx, n_out, 1, 0, ctx->xn, {{&m->output, dst, NULL}}};
        run_matmuls(ctx, &task);
        for (int32_t j = 0; !contiguous && j < n_out; j++)
            memcpy(logits + (int64_t)logit_rows[ctx->out_token[j]] * c->n_vocab, ctx->logits_tmp + (int64_t)j * c->n_vocab,
                   c->n_vocab * sizeof(float));
        lap(ctx, TL_PHASE_OUTPUT);
    }
    // the tokens are now in their sequences' caches
    for (int32_t i = 0; i < n; i++) seqs[i]->len++;
    return 0;
}

/* Gives back the sequences of seqs[0..n) that ctx's call holds. */
static void release_seqs(tl_ctx *ctx, tl_seq *const *seqs, int32_t n) {
    for (int32_t i = 0; i < n; i++)
        if (atomic_load(&seqs[i]->user) == ctx) atomic_store(&seqs[i]->user, NULL);
}

/* Takes the batch's sequences for ctx's call: a sequence is used by one call at a time (its cache and length
 * change). Fails, holding none, if another call holds one. */
static int claim_seqs(tl_ctx *ctx, tl_seq *const *seqs, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        tl_ctx *user = NULL;
        if (atomic_compare_exchange_strong(&seqs[i]->user, &user, ctx) || user == ctx) continue;
        release_seqs(ctx, seqs, i);
        return 0;
    }
    return 1;
}

int32_t tl_forward(tl_ctx *ctx, tl_seq *const *seqs, const int32_t *tokens, int32_t n, const int32_t *logit_rows,
                   float *logits, char *err, size_t err_len) {
    if (n <= 0) return 0;
    for (int32_t i = 0; i < n; i++)
        if (!seqs[i] || seqs[i]->m != ctx->m) return fail(err, err_len, "token %d: sequence missing or of another model", i), -1;
    if (!claim_seqs(ctx, seqs, n)) return fail(err, err_len, "a sequence is in use by another call"), -1;
    int32_t rc = forward_batch(ctx, seqs, tokens, n, logit_rows, logits, err, err_len);
    release_seqs(ctx, seqs, n);
    return rc;
}
