/* tritlm.h - the one C API of the tritlm engine. Every function Python calls is declared here (or, for tests and
 * benchmarks, in probe.h); _ffi_build.py hands both headers to cffi as they are. A model is read-only after
 * tl_model_new and shared; a sequence (KV cache + length) is a separate value, so many sequences can be decoded in
 * one pass over the weights; a context holds one caller's scratch, so callers on different threads each use their
 * own. */
#ifndef TRITLM_H
#define TRITLM_H
#include <stddef.h>
#include <stdint.h>

/* Tensor types use ggml's ids so a GGUF type field maps straight through. */
enum { TL_F32 = 0, TL_F16 = 1, TL_Q8_0 = 8, TL_Q4_K = 12, TL_Q6_K = 14, TL_BF16 = 30, TL_TQ1_0 = 34, TL_TQ2_0 = 35, TL_I2_S = 36 };

/* Feed-forward activation of the gated MLP. */
enum { TL_ACT_SILU = 0, TL_ACT_RELU2 = 1 };

typedef struct {
    const void *data; /* first byte of the tensor (in the mmap'd file, or a copy of it); NULL = absent */
    int32_t type;     /* TL_* */
    int64_t rows;     /* ggml ne[1] (1 for vectors) */
    int64_t cols;     /* ggml ne[0]: the row length */
    float scale;      /* ternary types: the tensor's weight scale (multiplies); ignored otherwise */
} tl_tensor;

typedef struct {
    int32_t n_layer, n_embd, n_ff, n_head, n_head_kv, head_dim, n_vocab;
    float rms_eps, rope_theta;
    int32_t act;       /* TL_ACT_* */
    int32_t sub_norms; /* 1: attn_sub_norm before o_proj and ffn_sub_norm before down_proj */
    int32_t rope_interleaved; /* 1: RoPE rotates adjacent pairs (llama.cpp's `llama`, q/k rows permuted); 0: halves */
    /* Activation mode (BitNet a4.8, Q-Sparse; all zero: b1.58). Per linear input TL_IN_*: act_bits 8 (INT8 absmax,
     * 0 means 8) or 4 (INT4 absmean); act_topk the fraction of |x| kept per token (0 or 1: dense). kv_bits 3 or 4:
     * KV cache rows quantized (kv_bits_first for position 0); 16 (both): IEEE half rows (half f32's bytes;
     * rounded to 11 significant bits, so not exact); 0: f32. */
    int32_t act_bits[4];
    float act_topk[4];
    int32_t kv_bits, kv_bits_first;
    /* 1: decode a relu² model's MLP densely. By default a single decoded token computes up_proj only where
     * relu(gate) > 0 and reads only the down_proj weight columns of its nonzero int8 inputs (exact: the same
     * logits); this is for comparison. */
    int32_t no_sparse;
    /* 1: the engine may drop the pages of the tensors (madvise MADV_DONTNEED): a read-only file mapping (touched again,
     * they are read back from the file), or a copy the caller keeps for the engine alone. It drops those of a tensor
     * it has copied into a layout of its own (a repacked linear or output matrix not rewritten in place), so memory
     * does not hold both. 0 for tensors the caller still reads (dropping would zero ordinary memory). */
    int32_t weights_mapped;
    /* 1: the tensors are a private copy the caller keeps for the engine alone (Model's copy of the file), which the
     * engine may also rewrite: it repacks a bf16 output matrix and tq2_0 and i2_s linears in place there instead of into
     * new memory. */
    int32_t weights_writable;
    /* 1: read a bf16 output matrix and tq2_0 and i2_s linears as the file has them. By default they are repacked at load,
     * exactly, into layouts the kernels read faster: bf16 into 12 bits a value where they read that (AVX-512 VBMI,
     * kernels/bf16_lut_ref.c), tq2_0 as i2_s (its 2-bit codes without the blocks' d, kernels/i2_s_ref.c), i2_s in groups
     * of 4 rows where they read that (x86, kernels.h's TL_I2_S_R4), a private copy in place of the file's pages (see
     * weights_writable); this keeps the file's (shared) pages, for --mmap and comparison. (tq1_0 is repacked regardless where its lookup layout runs: decoded at tq2_0's speed, not tq1_0's,
     * it is worth the copy.) */
    int32_t keep_file_layout;
} tl_config;

/* The linear inputs of a layer, in tl_config.act_bits / act_topk order. */
enum { TL_IN_QKV = 0, TL_IN_O = 1, TL_IN_GATE_UP = 2, TL_IN_DOWN = 3 };

typedef struct {
    tl_tensor attn_norm, attn_q, attn_k, attn_v, attn_sub_norm, attn_output;
    tl_tensor ffn_norm, ffn_gate, ffn_up, ffn_sub_norm, ffn_down;
} tl_layer;

typedef struct tl_model tl_model;
typedef struct tl_ctx tl_ctx;
typedef struct tl_seq tl_seq;

/* Builds a model over the given tensors (not copied: they must outlive the model). Checks every
 * tensor's type and shape against cfg (a linear weight's rows may be zero-padded as docs/format.md says: its
 * cols is then the padded length); on failure returns NULL with a one-line message in err naming the tensor. */
tl_model *tl_model_new(const tl_config *cfg, const tl_tensor *token_embd, const tl_tensor *output_norm,
                       const tl_tensor *output /* data NULL: tied to token_embd */, const tl_layer *layers,
                       int32_t n_threads, char *err, size_t err_len);
void tl_model_free(tl_model *m);
/* Bytes of the output matrix as the engine reads them (its repacked form where tl_config.keep_file_layout says it is). */
int64_t tl_model_output_bytes(const tl_model *m);
/* Bytes of a layer's linear weight as the engine reads it, whole (its repacked form where it was repacked at load);
 * linear in tl_layer order: 0..6 = attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down. -1 if out of range. */
int64_t tl_model_linear_bytes(const tl_model *m, int32_t layer, int32_t linear);

/* A context: the scratch of one caller's forward passes, grown to its largest batch. One per thread calling
 * tl_forward at the same time; contexts share the model's thread pool (concurrent passes take turns per step).
 * NULL if out of memory. */
tl_ctx *tl_ctx_new(const tl_model *m);
void tl_ctx_free(tl_ctx *ctx);
/* What a relu² model's sparse decode saw in this context's calls so far: [0] down_proj inputs of single decoded
 * tokens (n_ff per token and layer), [1] how many of them were nonzero int8 codes (the columns read), [2] up_proj
 * rows of decoded tokens (single, or a decode step of up to 16 sequences), [3] how many were computed (the others'
 * relu(gate) was 0 for every token of the step). */
void tl_ctx_sparse_counts(const tl_ctx *ctx, int64_t counts[4]);

/* Where this context's tl_forward calls spent their time so far, in nanoseconds per step of the pass (wall clock of the
 * calling thread, which waits for the pool's), TL_PHASE_* order. */
enum {
    TL_PHASE_EMBED,       /* embedding rows, RoPE angles, planning */
    TL_PHASE_NORM,        /* RMSNorms and activation quantization before each linear */
    TL_PHASE_QKV,         /* q/k/v projections */
    TL_PHASE_ROPE_KV,     /* RoPE, KV cache stores */
    TL_PHASE_ATTENTION,   /* attention over the caches */
    TL_PHASE_O,           /* o_proj */
    TL_PHASE_GATE_UP,     /* gate and up projections */
    TL_PHASE_DOWN,        /* down_proj */
    TL_PHASE_ELEMENTWISE, /* residual adds, act(gate) * up */
    TL_PHASE_OUTPUT,      /* final RMSNorm and the output matrix */
    TL_N_PHASES
};
void tl_ctx_phase_ns(const tl_ctx *ctx, int64_t ns[TL_N_PHASES]);

/* A sequence: its own KV cache of n_ctx positions and its length (the tokens it holds; the next one goes to
 * position len). NULL if out of memory. */
tl_seq *tl_seq_new(const tl_model *m, int32_t n_ctx);
void tl_seq_free(tl_seq *s);
int32_t tl_seq_len(const tl_seq *s);
/* Keeps the first len tokens (0: empty), so a prompt sharing a prefix with them continues from there. Returns 0,
 * or -1 if len is negative or more than the sequence holds. Not while a tl_forward uses the sequence. */
int32_t tl_seq_truncate(tl_seq *s, int32_t len);

/* Runs n tokens through the model in one pass over the weights. Token i is appended to seqs[i] at that
 * sequence's next position (tokens of one sequence in order; prefill = one sequence n times, batched
 * decoding = n different sequences). If logit_rows is NULL, logits of token i go to row i of logits
 * [n, n_vocab]; otherwise to row logit_rows[i], or nowhere when it is -1. Returns 0, or -1 with a message
 * in err (context full, bad token id, a sequence in use by another call at the same time) and no sequence
 * changed. */
int32_t tl_forward(tl_ctx *ctx, tl_seq *const *seqs, const int32_t *tokens, int32_t n,
                   const int32_t *logit_rows, float *logits, char *err, size_t err_len);

/* The kernel ISA the engine runs on: x86-64 "amx", "avx512vbmi", "avx512", "avxvnni", "avx2"; ARM64 "i8mm", "dotprod",
 * "neon"; or "ref" (TRITLM_ISA names a lower one to force it). */
const char *tl_isa(void);
/* The name of this build's i-th kernel set (fastest first), whether this CPU runs it or not; NULL past the last.
 * TRITLM_ISA must be one of them. */
const char *tl_isa_name(int32_t i);

#endif
