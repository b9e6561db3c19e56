"""cffi build script (out-of-line API mode): compiles native/*.c and native/kernels/*.c into runtime._native.

The C declarations below mirror native/tritlm.h (the engine) and native/probe.h (test and benchmark entry
points); every function Python calls is listed in both."""
import glob
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

CDEF = """
enum { TL_F32 = 0, TL_F16 = 1, TL_Q8_0 = 8, TL_Q4_K = 12, TL_Q6_K = 14, TL_BF16 = 30, TL_TQ1_0 = 34, TL_TQ2_0 = 35, TL_I2_S = 36 };
enum { TL_ACT_SILU = 0, TL_ACT_RELU2 = 1 };
typedef struct {
    const void *data; int32_t type; int64_t rows; int64_t cols; float scale;
} tl_tensor;
typedef struct {
    int32_t n_layer, n_embd, n_ff, n_head, n_head_kv, head_dim, n_vocab;
    float rms_eps, rope_theta;
    int32_t act; int32_t sub_norms; int32_t rope_interleaved;
} tl_config;
typedef struct {
    tl_tensor attn_norm, attn_q, attn_k, attn_v, attn_sub_norm, attn_output;
    tl_tensor ffn_norm, ffn_gate, ffn_up, ffn_sub_norm, ffn_down;
} tl_layer;
typedef struct tl_model tl_model;
typedef struct tl_ctx tl_ctx;
typedef struct tl_seq tl_seq;

tl_model *tl_model_new(const tl_config *cfg, const tl_tensor *token_embd, const tl_tensor *output_norm,
                       const tl_tensor *output, const tl_layer *layers, int32_t n_threads, char *err, size_t err_len);
void tl_model_free(tl_model *m);
tl_ctx *tl_ctx_new(const tl_model *m);
void tl_ctx_free(tl_ctx *ctx);
tl_seq *tl_seq_new(const tl_model *m, int32_t n_ctx);
void tl_seq_free(tl_seq *s);
int32_t tl_seq_len(const tl_seq *s);
int32_t tl_seq_truncate(tl_seq *s, int32_t len);
int32_t tl_forward(tl_ctx *ctx, tl_seq *const *seqs, const int32_t *tokens, int32_t n,
                   const int32_t *logit_rows, float *logits, char *err, size_t err_len);
const char *tl_isa(void);

/* probe.h */
int32_t tl_matmul_ternary(const char *isa, int32_t type, const void *w, int64_t rows, int64_t cols,
                          const int8_t *x, const float *x_scale, int32_t n, float w_scale, float *y);
int32_t tl_matmul_float(const char *isa, int32_t type, const void *w, int64_t rows, int64_t cols,
                        const float *x, int32_t n, float *y);
double tl_read_bandwidth(size_t bytes, int32_t n_threads);
int64_t tl_pool_check(int32_t n_threads, int32_t n_tasks, int32_t max_chunks);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "runtime._native",
    '#include "tritlm.h"\n#include "probe.h"',
    sources=sorted(glob.glob(os.path.join("native", "*.c")) + glob.glob(os.path.join("native", "kernels", "*.c"))),
    include_dirs=["native"],
    # Portable baseline; SIMD kernels enable their ISA per function and are chosen at run time.
    extra_compile_args=["-O3", "-std=c11", "-pthread", "-ffp-contract=off", "-Wall", "-Wextra"],
    extra_link_args=["-pthread", "-lm"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
