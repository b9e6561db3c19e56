/* probe.h - entry points for tests and benchmarks only (not part of the engine's API in tritlm.h). */
#ifndef TL_PROBE_H
#define TL_PROBE_H
#include <stddef.h>
#include <stdint.h>

/* One kernel of a named ISA over a whole weight matrix. Ternary types (TL_TQ1_0, TL_TQ2_0, TL_I2_S; and 0x10000 +
 * TL_I2_S, i2_s in row groups: w is then i2_s rows, packed as the engine packs them where its kernels read that layout,
 * then run by the ISA's kernel for it, "ref": its reference, -1 where the ISA has none) take int8 activations x [n][cols] with per-token scales x_scale [n]: y[t][r] = (float)(sum_k W[r][k] x[t][k]) / x_scale[t]
 * * w_scale, in two calls cut at rows / 2 (inside a group: a grouped kernel's rows outside whole groups run too). Float types (TL_F32, TL_F16, TL_BF16, TL_Q8_0, TL_Q4_K, TL_Q6_K) take f32 activations:
 * y[t][r] = sum_k W[r][k] x[t][k], in two calls over rows split as the engine splits them (tl_split, 16-row
 * boundaries). Returns 0, or -1 if the ISA is unknown or not supported by this CPU, or the type/shape has no kernel. */
int32_t tl_matmul_ternary(const char *isa, int32_t type, const void *w, int64_t rows, int64_t cols,
                          const int8_t *x, const float *x_scale, int32_t n, float w_scale, float *y);
/* The row-list entry of a ternary kernel over n_tokens tokens: y[t][list[i]] (rows apart) for i < n as
 * tl_matmul_ternary gives it; other entries of y untouched. Returns 0, or -1 as tl_matmul_ternary. */
int32_t tl_matmul_ternary_rows(const char *isa, int32_t type, const void *w, int64_t rows, int64_t cols, const int32_t *list,
                               int64_t n, const int8_t *x, const float *x_scale, int32_t n_tokens, float w_scale, float *y);
/* tq1_0 weights as the engine runs them where its kernels read them repacked (native/kernels/tq1_0_lut_ref.c): the
 * ISA's repack, in rows (group 1) or row groups (group 4: TL_TQ1_0_LUT_R4, rows a multiple of 4), then its kernel for
 * that layout ("ref": the layout's scalar packer and reference). list NULL: all rows for n tokens, as tl_matmul_ternary,
 * in two calls cut at rows / 2; else the row-list entry on list[0..n_list) for the n tokens, as tl_matmul_ternary_rows.
 * Returns 0, or -1 if the ISA has no such kernel, or the shape is not whole tq1_0 blocks (and groups). */
int32_t tl_matmul_tq1_0_lut(const char *isa, int32_t group, const void *w, int64_t rows, int64_t cols, const int8_t *x,
                            const float *x_scale, int32_t n, float w_scale, const int32_t *list, int64_t n_list, float *y);
/* That repack of a tq1_0 matrix into packed (rows x its row bytes) by the ISA's packer ("ref": the scalar one), and
 * (group 1, values not NULL) the layout's scalar decode of it back to values [rows][cols]. Returns 0, or -1 as above. */
int32_t tl_tq1_0_lut_repack(const char *isa, int32_t group, const void *w, int64_t rows, int64_t cols, uint8_t *packed,
                            int8_t *values);
/* The engine's load-time repack of tq2_0 as i2_s (native/kernels/i2_s_ref.c): `blocks` tq2_0 blocks (256 values each)
 * to blocks * 64 bytes of i2_s rows without the trailer; out may be tq2_0 itself (in place). */
void tl_i2_s_from_tq2_0(const uint8_t *tq2_0, int64_t blocks, uint8_t *out);
/* The engine's load-time repack of i2_s, tq2_0 or tq1_0 (type) rows as i2_s (native/kernels/i2_s_ref.c), in rows
 * (group 1) or row groups (group 4: rows a multiple of 4); out rows x cols / 4 bytes, and may be w itself for i2_s and
 * tq2_0. Returns 0, or -1 for another type, group or shape. */
int32_t tl_i2_s_pack(int32_t type, int32_t group, const uint8_t *w, int64_t rows, int64_t cols, uint8_t *out);
/* A bf16 matrix (cols a multiple of 64) in its lookup layout (native/kernels/bf16_lut_ref.c), packed as the engine
 * packs it (a few groups of rows at a time): returns its bytes (-1: cols not a multiple of 64, or out of memory), copies them
 * to packed if packed_bytes is enough (packed may be NULL), and writes the layout's scalar decode as f32 to values
 * [rows][cols] unless NULL. */
int64_t tl_bf16_lut_repack(const void *w, int64_t rows, int64_t cols, uint8_t *packed, int64_t packed_bytes, float *values);
/* (tl_matmul_float with type 0x10000 + TL_BF16, the layout's engine-internal id: w is a bf16 matrix, run as the engine
 * runs it where its kernels read it repacked: that repack, then the ISA's kernel for the layout, "ref": its reference;
 * -1 where the ISA has none.) */
int32_t tl_matmul_float(const char *isa, int32_t type, const void *w, int64_t rows, int64_t cols,
                        const float *x, int32_t n, float *y);

/* Measured memory read bandwidth in GB/s: n_threads threads (<= 0: physical cores) stream a buffer of
 * `bytes` (make it larger than the caches); best of several passes. Returns 0 if out of memory. */
double tl_read_bandwidth(size_t bytes, int32_t n_threads);

/* The thread pool's contract, stressed: n_tasks tasks of alternately 2 and max_chunks chunks (tiny, so late
 * wake-ups overlap the next task) on a pool of n_threads. Returns the number of violations: a chunk run other
 * than exactly once, an index outside its task, or a chunk still running after its tl_pool_run returned (0 =
 * sound); -1 if out of memory. */
int64_t tl_pool_check(int32_t n_threads, int32_t n_tasks, int32_t max_chunks);

/* The a4.8 / Q-Sparse kernels under a named ISA (native/kernels/kernels.h says what each computes). Return 0
 * (tl_topk_mask: the values kept), or -1 if the ISA is unknown or unsupported, or the shape has no kernel.
 * tl_matmul_sparse packs W (a ternary type) into the sparse layout and multiplies the nonzero inputs of x. */
int32_t tl_quantize_int4(const char *isa, const float *x, int64_t dim, int8_t *q, float *scale, int32_t *sum);
int64_t tl_topk_mask(float *x, int64_t dim, int64_t k);
int32_t tl_matmul_sparse(const char *isa, int32_t type, const void *w, int64_t rows, int64_t cols, const int8_t *x,
                         float x_scale, float w_scale, float *y);
int32_t tl_kv_roundtrip(const float *x, int64_t dim, int32_t bits, uint8_t *packed, float *out);

/* Causal attention through a named ISA's kernel (kernels.h: tl_attention_fn), block by block as the engine runs it:
 * query rows q [rows][hd] over keys and values k, v [n_keys][hd], row r seeing keys 0..pos[r] (< n_keys), scaled by
 * 1/sqrt(hd); out [rows][hd]. Returns 0, or -1 if the ISA is unknown or unsupported, or an argument is out of range. */
int32_t tl_attention_rows(const char *isa, const float *q, int32_t rows, const int32_t *pos, const float *k,
                          const float *v, int32_t n_keys, int32_t hd, float *out);

/* The f16 KV cache's conversions under a named ISA (kv_ref.c, attention_f16_<isa>.c): n floats to IEEE half, rounding
 * to nearest even; and back. 0, or -1 if the ISA is unknown or unsupported. */
int32_t tl_kv_f32_to_f16(const char *isa, const float *x, int64_t n, uint16_t *out);
int32_t tl_kv_f16_to_f32(const char *isa, const uint16_t *in, int64_t n, float *x);

#endif
