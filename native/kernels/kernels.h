/* kernels.h - the matmul kernels' one signature per operand kind, and the table chosen per ISA.
 *
 * A kernel computes rows [r0, r1) of y = W x for n tokens at once: each weight block is decoded once and
 * dotted with every token (GEMV when n = 1, blocked GEMM otherwise). Each format has a plain C reference
 * (<type>_ref.c) and SIMD versions (<type>_<isa>.c) that must give bit-identical results: the ternary formats and
 * bf16 (the tied output matrix of BitNet 2B-4T) on every ISA, q8_0, q4_k and q6_k (the output matrix types) on
 * AVX2/AVX-512 too, every float type on ARM64's NEON levels, and the a4.8 / Q-Sparse INT4 quantizer and sparse
 * GEMV on AVX2 and AVX-512; the rest run their reference (the dispatch table in dispatch.c says which). */
#ifndef TL_KERNELS_H
#define TL_KERNELS_H
#include <stdint.h>
#include <string.h>
#include "blocks.h"
#include "tritlm.h"

/* n tokens' activations quantized to int8 as BitNet does (per token: scale = 127 / absmax). */
typedef struct {
    const int8_t *q;      /* [n][cols] */
    const float *scale;   /* [n] the quantization scale s: x ~ q / s */
    const int32_t *sum;   /* [n] sum of q: SIMD kernels dot the unsigned codes w + 1, then subtract it */
    int32_t n;
} tl_qact;

/* Ternary W [rows][cols] in its packed format: y[t*ldy + r] = (float)(sum_k W[r][k] q[t][k]) / s[t] * w_scale. */
typedef void tl_ternary_fn(const uint8_t *w, int64_t cols, int64_t r0, int64_t r1, const tl_qact *x,
                           float w_scale, float *y, int64_t ldy);

/* Float-typed W [rows][cols] against f32 activations x [n][cols]: y[t*ldy + r] = sum_k W[r][k] x[t][k].
 * Every ISA sums in the same order so results match bit for bit: lane l of 16 accumulates k = l mod 16
 * with fused multiply-adds, then lanes are added pairwise (l + 8, l + 4, l + 2, l + 1). cols % 16 == 0. */
/* Listed rows of a ternary W: y[t*ldy + rows[i]] for i < n and t < x->n, each as tl_ternary_fn gives it. */
typedef void tl_ternary_rows_fn(const uint8_t *w, int64_t cols, const int32_t *rows, int64_t n, const tl_qact *x,
                                float w_scale, float *y, int64_t ldy);

typedef void tl_float_fn(const void *w, int64_t cols, int64_t r0, int64_t r1, const float *x, int32_t n,
                         float *y, int64_t ldy);

typedef int32_t tl_int4_fn(const float *x, int64_t dim, int8_t *q, float *scale);
typedef void tl_sparse_fn(const uint8_t *w, int64_t rows, const int32_t *idx, const int8_t *val, int32_t k, int32_t *sum);

/* The attention kernel's operands (see "attention over a KV cache" below). */
/* One row's running softmax: max [rows]; denom [rows][16]; acc [rows][hd16]; w [rows][TL_ATT_BLOCK] (scratch). */
typedef struct { float *max, *denom, *acc, *w; } tl_att_state;
/* Folds one block of len keys / values (rows `stride` floats apart, hd values each) into the state of rows query
 * rows q [rows][hd16] (hd16: hd rounded up to 16, zero padded); row r sees the block's first seen[r] keys. */
typedef void tl_attention_fn(const float *q, int32_t rows, int32_t hd, const float *k, const float *v, int64_t stride,
                             int32_t len, const int32_t *seen, float scale, tl_att_state *st);

/* n f32 values to an f16 KV cache's IEEE half, rounding to nearest even; and back, exactly. */
typedef void tl_kv_to_f16_fn(const float *x, int64_t n, uint16_t *out);
typedef void tl_kv_f16_fn(const uint16_t *in, int64_t n, float *x);
/* tl_attention_fn over an f16 cache's rows, converting as it loads (the same floats, so the same results). */
typedef void tl_attention_f16_fn(const float *q, int32_t rows, int32_t hd, const uint16_t *k, const uint16_t *v, int64_t stride,
                                 int32_t len, const int32_t *seen, float scale, tl_att_state *st);

/* Rows [r0, r1) of a tq1_0 matrix (cols a multiple of 256) into tq1_0's lookup layout at out (row r at r * its row
 * bytes: tl_tq1_0_lut_row_bytes). Returns 0, or -1 if out of memory. */
typedef int32_t tl_tq1_0_lut_pack_fn(const uint8_t *tq1_0, int64_t cols, int64_t r0, int64_t r1, uint8_t *out);

typedef struct {
    const char *isa;
    tl_ternary_fn *tq1_0, *tq2_0, *i2_s;
    tl_ternary_rows_fn *tq1_0_rows, *tq2_0_rows, *i2_s_rows;
    tl_float_fn *f32, *f16, *bf16, *q8_0, *q4_k, *q6_k;
    tl_int4_fn *int4;
    tl_sparse_fn *sparse;
    tl_attention_fn *attention;
    /* tq1_0 repacked at load into the lookup layout (tq1_0_lut_ref.c), where the ISA decodes it faster than tq1_0's own
     * blocks (AVX-512 VBMI); NULL elsewhere: the engine then reads tq1_0 as the file has it. */
    tl_ternary_fn *tq1_0_lut;
    tl_ternary_rows_fn *tq1_0_lut_rows;
    tl_tq1_0_lut_pack_fn *tq1_0_lut_pack;
    /* a bf16 matrix repacked at load into its lookup layout (bf16_lut_ref.c), where the ISA reads it faster than bf16's
     * 2 bytes a value (AVX-512 VBMI); NULL elsewhere: the engine then reads bf16 as the file has it. */
    tl_float_fn *bf16_lut;
    /* i2_s (and tq2_0, as i2_s) repacked at load into its row groups (TL_I2_S_R4) where the ISA's hardware prefetcher
     * follows one stream faster than a tile's 4 rows (x86); NULL elsewhere: the engine then reads i2_s rows. */
    tl_ternary_fn *i2_s_r4;
    tl_ternary_rows_fn *i2_s_r4_rows;
    /* the tq1_0 lookup layout in row groups (TL_TQ1_0_LUT_R4), likewise; NULL where the ISA reads no lookup layout */
    tl_ternary_fn *tq1_0_lut_r4;
    tl_ternary_rows_fn *tq1_0_lut_r4_rows;
    /* 1: tq1_0 is repacked at load as i2_s (1.2x its bytes), which the ISA reads faster than its tq1_0 kernel decodes
     * (AVX2: that kernel is compute-bound, at 38% of the read rate where i2_s reads 74%) */
    int tq1_0_as_i2_s;
    /* an f16 KV cache: rows stored; read back to f32 (attention then reads those), or NULL / attention reading them
     * itself */
    tl_kv_to_f16_fn *kv_f32_to_f16;
    tl_kv_f16_fn *kv_f16_to_f32;
    tl_attention_f16_fn *attention_f16;
} tl_kernels;

/* Weight rows are fetched PREFETCH_TILES row tiles ahead, into L2 only: short rows read as 4 interleaved streams
 * defeat the hardware prefetcher, and prefetches into L1 hold its few miss buffers (a core then reads ~40% less). */
enum { PREFETCH_TILES = 4 };
/* float_tile.h's tiles: at most FTILE rows x FTILE_T tokens */
enum { FTILE = 4, FTILE_T = 8 };
#define prefetch_l2(p) __builtin_prefetch((p), 0, 1)

/* The fastest table this CPU supports, or a lower one forced by TRITLM_ISA (x86-64: ref|avx2|avxvnni|avx512|avx512vbmi|amx; ARM64:
 * ref|neon|dotprod|i8mm). */
const tl_kernels *tl_kernels_best(void);
/* The name of the i-th table (fastest first), or NULL past the last. */
const char *tl_kernels_name(int32_t i);
/* The table of a named ISA, or NULL if unknown or unsupported by this CPU. */
const tl_kernels *tl_kernels_named(const char *isa);

/* The table's kernel for a float-typed weight (F32, F16, BF16, Q8_0, Q4_K, Q6_K; TL_BF16_LUT where it reads that), or NULL. */
tl_float_fn *tl_float_kernel(const tl_kernels *k, int32_t type);

/* A type id's name as tritlm/formats.py spells it, or NULL if the engine does not read the type; ids of the types
 * it reads are below TL_TYPE_ID_END. */
enum { TL_TYPE_ID_END = TL_I2_S + 1 };
const char *tl_type_name(int32_t type);
/* Values per block of a type (1 for a float type; 0: a type the engine does not read). */
int64_t tl_block_values(int32_t type);
/* Bytes of one row of cols values in a weight type (0: unsupported type or cols not a whole number of blocks). */
int64_t tl_row_bytes(int32_t type, int64_t cols);
/* Row `row` of a float-typed matrix (F32, F16, BF16, Q8_0, Q4_K, Q6_K, TL_BF16_LUT) converted to f32. */
void tl_row_to_f32(int32_t type, const void *w, int64_t cols, int64_t row, float *out);

/* Scalar helpers shared by the references. */
float tl_f16_to_f32(uint16_t h);
static inline float tl_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v = {(uint32_t)h << 16};
    return v.f;
}
static inline uint16_t load_u16(const uint8_t *p) { uint16_t h; __builtin_memcpy(&h, p, 2); return h; }
/* The canonical 16-lane pairwise sum (see tl_float_fn). */
static inline float tl_sum16(float *acc) {
    for (int half = 8; half > 0; half /= 2)
        for (int l = 0; l < half; l++) acc[l] = acc[l] + acc[l + half];
    return acc[0];
}

/* The reference ternary kernel, given how one block of a format decodes to values in {-1, 0, 1}; rows one after another
 * (group 1) or in row groups (TL_GROUP_ROWS: TL_I2_S_R4). */
typedef void tl_decode_block_fn(const uint8_t *block, int8_t *values);
void tl_ternary_ref(tl_decode_block_fn *decode, int64_t block_values, int64_t block_bytes, int64_t group, const uint8_t *w,
                    int64_t cols, int64_t r0, int64_t r1, const tl_qact *x, float w_scale, float *y, int64_t ldy);

/* ggml's k-quants (Q4_K, Q6_K): TL_QK_K-value blocks, dequantized exactly as ggml and gguf-py do, then dotted in
 * the canonical float order (so a k-quant dot equals the F32 dot of its dequantized row bit for bit). */
typedef void tl_dequant_block_fn(const uint8_t *block, float *values);
tl_dequant_block_fn tl_q4_k_dequant, tl_q6_k_dequant;
/* Q4_K sub-block j (0..7, 32 values): d * scale and dmin * min, rounded as the reference dequantizes with them. */
void tl_q4_k_sub_block(const uint8_t *block, int j, float *dl, float *ml);
/* Its 6-bit scale and min from the block's 12 packed bytes s: j < 4 in the low 6 bits of bytes j and j + 4; j >= 4
 * split into a low nibble in byte j + 4 and the top 2 bits of bytes j - 4 (scale) and j (min). Inline for SIMD. */
static inline void tl_q4_k_scale_min(const uint8_t *s, int j, int *scale, int *min) {
    if (j < 4) {
        *scale = s[j] & 63;
        *min = s[j + 4] & 63;
    } else {
        *scale = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
        *min = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}
void tl_kquant_ref(tl_dequant_block_fn *dequant, int64_t block_bytes, const void *w, int64_t cols, int64_t r0,
                   int64_t r1, const float *x, int32_t n, float *y, int64_t ldy);

/* Each ternary format's block decoder (its reference's), for repacking weights at load. */
tl_decode_block_fn tl_tq1_0_decode, tl_tq2_0_decode, tl_i2_s_decode;
/* blocks tq2_0 blocks (256 values each) as i2_s, exactly: the engine's load-time repack (i2_s_ref.c); out may be tq2_0. */
void tl_i2_s_from_tq2_0(const uint8_t *tq2_0, int64_t blocks, uint8_t *out);

/* Row groups: the blocks of each TL_GROUP_ROWS consecutive rows interleaved, row r's block b at
 * r / 4 * 4 * row_bytes + (4b + r % 4) * block_bytes, then the group's rows' tails (a row's bytes after its whole
 * blocks: tq1_0_lut's) one after another, row r's at r / 4 * 4 * row_bytes + 4 * blocks * block_bytes + r % 4 * its
 * length. ternary_tile.h's 4-row tile then reads one ascending stream instead of 4 a row apart (the hardware
 * prefetcher then keeps up: docs/format.md). The same bytes as the rows otherwise; rows a multiple of 4. */
enum { TL_GROUP_ROWS = 4 };
static inline int64_t tl_group_block_at(int64_t row_bytes, int64_t block_bytes, int64_t r, int64_t b) {
    return r / TL_GROUP_ROWS * TL_GROUP_ROWS * row_bytes + (b * TL_GROUP_ROWS + r % TL_GROUP_ROWS) * block_bytes;
}
/* One group's rows, one after another at rows (row_bytes each, blocks whole blocks of block_bytes then a tail), into
 * the group's layout at out (ternary_ref.c). */
void tl_group_rows(const uint8_t *rows, int64_t row_bytes, int64_t block_bytes, int64_t blocks, uint8_t *out);

/* i2_s in row groups (i2_s_ref.c), typed with the engine-internal id TL_I2_S_R4 (never a file's). */
enum { TL_I2_S_R4 = 0x10000 + TL_I2_S };
/* rows x cols of i2_s, tq2_0 or tq1_0 (type) as i2_s, exactly, in rows (group 1) or row groups (group 4: TL_I2_S_R4)
 * at out (tq2_0 as tl_i2_s_from_tq2_0); out may be w for i2_s and tq2_0, whose i2_s is no longer: each group is read
 * whole before it is written at or below where it was read. Returns 0, or -1 for another type or group, a shape that
 * is not whole blocks and groups, or out of memory. */
int32_t tl_i2_s_pack(int32_t type, int32_t group, const uint8_t *w, int64_t rows, int64_t cols, uint8_t *out);

/* tq1_0's lookup layout (tq1_0_lut_ref.c): a row is cols / 192 spans of 40 bytes (64 five-bit codes of 3 values each),
 * then cols % 192 values at 2 bits. Its tensors carry the engine-internal type id TL_TQ1_0_LUT (never a file's). A
 * buffer of it is readable TL_LUT_READ_PAST bytes past its last row: the SIMD kernel loads each span's 40 bytes as 64. */
enum { TL_TQ1_0_LUT = 0x10000 + TL_TQ1_0, TL_LUT_SPAN_VALUES = 192, TL_LUT_SPAN_BYTES = 40, TL_LUT_READ_PAST = 64 - TL_LUT_SPAN_BYTES };
static inline int64_t tl_tq1_0_lut_row_bytes(int64_t cols) {
    return cols / TL_LUT_SPAN_VALUES * TL_LUT_SPAN_BYTES + cols % TL_LUT_SPAN_VALUES / 4;
}
tl_tq1_0_lut_pack_fn tl_tq1_0_lut_pack, tl_tq1_0_lut_vbmi_pack;
/* The layout in row groups (TL_TQ1_0_LUT_R4: the 40-byte spans are its blocks), where the ISA reads it so (AVX-512
 * VBMI). rows x cols of tq1_0 into it at out, 4 rows at a time through pack (into rows, then grouped). Returns 0, or -1
 * if rows is not a multiple of 4 or out of memory. */
enum { TL_TQ1_0_LUT_R4 = 0x20000 + TL_TQ1_0 };
int32_t tl_tq1_0_lut_r4_pack(tl_tq1_0_lut_pack_fn *pack, const uint8_t *tq1_0, int64_t rows, int64_t cols, uint8_t *out);
/* A row of tq1_0 as codes (value + 1), 64 at a time (tq1_0_avx512.c), for the VBMI repack. */
void tl_tq1_0_avx512_codes(const uint8_t *row, int64_t cols, int8_t *codes);
/* One row of the layout back to values in {-1, 0, 1}. */
void tl_tq1_0_lut_decode_row(const uint8_t *row, int64_t cols, int8_t *values);

/* bf16's lookup layout (bf16_lut_ref.c): each value's high byte (sign and top 7 exponent bits) as a 4-bit code into
 * its row's table of 16 high bytes, its low byte as it is: 12 bits a value, lossless (values whose high byte is not in
 * the table are listed as exceptions). Rows of cols % 64 == 0 values; its tensors carry the engine-internal type id
 * TL_BF16_LUT (never a file's). A row is a 64-byte header and cols / 64 blocks of 96 bytes, its rows interleaved in
 * groups of TL_BF16_LUT_GROUP so float_tile.h's 4-row tile reads one ascending stream: a group is its rows' headers,
 * then each row's block 0, then each row's block 1, ...; the last group is filled up with zero rows. The exception
 * lists follow the last group, TL_BF16_LUT_EXCEPTION_BYTES each. */
enum { TL_BF16_LUT = 0x10000 + TL_BF16, TL_BF16_LUT_HEADER = 64, TL_BF16_LUT_BLOCK_VALUES = 64, TL_BF16_LUT_BLOCK_BYTES = 96,
       TL_BF16_LUT_EXCEPTION_BYTES = 8, TL_BF16_LUT_GROUP = 4 };
static inline int64_t tl_bf16_lut_row_bytes(int64_t cols) {
    return cols > 0 && cols % TL_BF16_LUT_BLOCK_VALUES == 0 ? TL_BF16_LUT_HEADER + cols / TL_BF16_LUT_BLOCK_VALUES * TL_BF16_LUT_BLOCK_BYTES : 0;
}
/* The bytes of a matrix's rows, whole groups (its exception lists follow). */
static inline int64_t tl_bf16_lut_rows_bytes(int64_t rows, int64_t cols) {
    return (rows + TL_BF16_LUT_GROUP - 1) / TL_BF16_LUT_GROUP * TL_BF16_LUT_GROUP * tl_bf16_lut_row_bytes(cols);
}
/* Where row r's header, and its block b, start in the layout, for rows of row_bytes. */
static inline int64_t tl_bf16_lut_header_at(int64_t row_bytes, int64_t r) {
    return r / TL_BF16_LUT_GROUP * TL_BF16_LUT_GROUP * row_bytes + r % TL_BF16_LUT_GROUP * TL_BF16_LUT_HEADER;
}
static inline int64_t tl_bf16_lut_block_at(int64_t row_bytes, int64_t r, int64_t b) {
    return r / TL_BF16_LUT_GROUP * TL_BF16_LUT_GROUP * row_bytes + TL_BF16_LUT_GROUP * TL_BF16_LUT_HEADER +
           (b * TL_BF16_LUT_GROUP + r % TL_BF16_LUT_GROUP) * TL_BF16_LUT_BLOCK_BYTES;
}
/* A packed row's exception list, from its header: the list's first entry, and its length in *n. */
static inline const uint8_t *tl_bf16_lut_exceptions(const uint8_t *header, int32_t *n) {
    int64_t offset;
    memcpy(&offset, header + 16, 8);
    memcpy(n, header + 24, 4);
    return header + offset;
}
/* Each of rows [r0, r1) of a bf16 matrix's table (16 bytes, row r's at tables + 16 (r - r0)); returns how many of
 * their values the layout lists as exceptions. */
int64_t tl_bf16_lut_tables(const uint8_t *bf16, int64_t cols, int64_t r0, int64_t r1, uint8_t *tables);
/* Rows [r0, r1) of a bf16 matrix into the layout with those tables: r0 a multiple of TL_BF16_LUT_GROUP, r1 too unless
 * it ends the matrix; their groups to rows_out (tl_bf16_lut_rows_bytes(r1 - r0, cols)), their exceptions in order to
 * exceptions_out, whose first entry the layout holds exceptions_at bytes after its row 0 (where the rows before r0 list
 * theirs before them). Returns how many exceptions it wrote. */
int64_t tl_bf16_lut_pack(const uint8_t *bf16, int64_t cols, int64_t r0, int64_t r1, const uint8_t *tables, uint8_t *rows_out,
                      uint8_t *exceptions_out, int64_t exceptions_at);
/* Row `row` of the layout back to its bf16 values as f32 (the embedding lookup of a tied output matrix). */
void tl_bf16_lut_row_to_f32(const uint8_t *w, int64_t cols, int64_t row, float *out);

/* ---- a4.8 / Q-Sparse activations and KV cache (int4_*.c, topk_ref.c, sparse_*.c, kv_ref.c) ---- */
/* tl_int4_fn: INT4 absmean quantization of one row (dim % 16 == 0): codes in [-8, 7] as int8, *scale = s
 * (x ~ q / s); returns sum q. */
tl_int4_fn tl_int4_ref, tl_int4_avx2, tl_int4_avx512;
/* Zeroes all but the k largest |x| of a row in place (ties: lower index kept); work: dim words. Returns k (or dim). */
int64_t tl_topk_ref(float *x, int64_t dim, int64_t k, uint32_t *work);
/* By-input-channel layout of a ternary matrix for sparse inputs (sparse_ref.c): bytes it takes; built from a row format. */
enum { TL_SPARSE_TILE = 256 };
int64_t tl_sparse_bytes(int64_t rows, int64_t cols);
int32_t tl_sparse_pack(int32_t type, const void *w, int64_t rows, int64_t cols, uint8_t *out);
/* tl_sparse_fn: adds sum_i W[r][idx[i]] * val[i] over the k kept inputs (indices idx, int8 codes val) to sum[r] for
 * every r < rows rounded up to TL_SPARSE_TILE (the padding rows get 0). */
tl_sparse_fn tl_sparse_ref, tl_sparse_avx2, tl_sparse_avx512;
/* The x86 kernels take kept inputs four at a time: n of them (idx, val) as their columns' first lines (col) and their
 * codes four to a 32-bit word (x, lowest byte first), a short last four padded with its first column and code 0 (adds
 * nothing). Returns the number of fours; *x_sum: the codes' sum. */
static inline int32_t tl_sparse_fours(const uint8_t *w, int64_t column_bytes, const int32_t *idx, const int8_t *val,
                                      int32_t n, const uint8_t **col, uint32_t *x, int32_t *x_sum) {
    *x_sum = 0;
    for (int32_t i = 0; i < (n + 3) / 4 * 4; i++) {
        int8_t v = i < n ? val[i] : 0;
        col[i] = w + (int64_t)idx[i < n ? i : i / 4 * 4] * column_bytes;
        x[i / 4] = (i % 4 ? x[i / 4] : 0) | (uint32_t)(uint8_t)v << 8 * (i % 4);
        *x_sum += v;
    }
    return (n + 3) / 4;
}
/* The x86 kernels read kept inputs a block at a time, in a block line by line, in a line four inputs at a time. A
 * cursor runs some fours ahead of them in that order: each call prefetches the lines of the four it is at (into L2)
 * and moves it on by one. */
typedef struct { int32_t i0, f; int64_t t; } tl_sparse_ahead;
static inline void tl_sparse_prefetch(tl_sparse_ahead *a, const uint8_t *w, int64_t column_bytes, int64_t tiles,
                                      const int32_t *idx, int32_t k, int32_t block) {
    if (a->i0 >= k) return;
    int32_t n = k - a->i0 < block ? k - a->i0 : block;
    for (int32_t i = a->i0 + 4 * a->f; i < a->i0 + 4 * a->f + 4 && i < a->i0 + n; i++)
        prefetch_l2(w + (int64_t)idx[i] * column_bytes + a->t * 64);
    if (++a->f < (n + 3) / 4) return;
    a->f = 0;
    if (++a->t == tiles) a->t = 0, a->i0 += block;
}
/* A KV cache row of dim values (dim % 8 == 0) at 3 or 4 bits: its bytes, and quantize / dequantize one row. */
int64_t tl_kv_row_bytes(int32_t bits, int64_t dim);
void tl_kv_quantize_ref(const float *x, int64_t dim, int32_t bits, uint8_t *out);
void tl_kv_dequantize_ref(const uint8_t *in, int64_t dim, int32_t bits, float *x);
/* f16 KV cache rows (tl_config.kv_bits 16), through the kernel table's kv_f32_to_f16 and kv_f16_to_f32, or read by its
 * attention_f16 (attention_f16_<isa>.c: F16C on x86) */
tl_kv_to_f16_fn tl_kv_f32_to_f16_ref, tl_kv_f32_to_f16_avx2, tl_kv_f32_to_f16_avx512;
tl_kv_f16_fn tl_kv_f16_to_f32_ref, tl_kv_f16_to_f32_avx2, tl_kv_f16_to_f32_avx512;
tl_attention_f16_fn tl_attention_f16_avx2, tl_attention_f16_avx512;

/* ---- attention over a KV cache (attention_*.c) ----
 * Rows of queries (one sequence's, of one KV head) attend to its key/value rows a block of TL_ATT_BLOCK positions
 * at a time, the softmax kept online across blocks (flash attention's order, on CPU floats). Every ISA computes
 * each row in one canonical order, so a row's result depends neither on the rows beside it (its batch) nor on
 * the ISA: score s_j = (q . k_j in tl_float_fn's 16-lane order) * scale; per block, m = max(m, max_j s_j), and if
 * m grew the running sums are multiplied by tl_att_exp(m_old - m); weights w_j = tl_att_exp(s_j - m), added to
 * denominator lane j % 16 and, for each d in order of j, acc[d] = fma(w_j, v_j[d], acc[d]); at the end
 * out = acc / (pairwise sum of the 16 denominator lanes). Blocks start at multiples of TL_ATT_BLOCK positions. */
enum { TL_ATT_BLOCK = 128 };
/* tl_att_state and tl_attention_fn: above tl_kernels. */
tl_attention_fn tl_attention_ref, tl_attention_avx2, tl_attention_avx512;
static inline int32_t tl_att_hd16(int32_t hd) { return (hd + 15) / 16 * 16; }
void tl_attention_begin(int32_t rows, int32_t hd, tl_att_state *st);
/* out row r (out + r * out_stride, hd values) = acc / denom. */
void tl_attention_end(const tl_att_state *st, int32_t rows, int32_t hd, float *out, int64_t out_stride);
/* exp(x) for x <= 0 (a softmax weight), 0 below TL_ATT_EXP_MIN (< 2^-125: nothing beside the row's largest weight,
 * 1): x = n ln2 + r, Cephes' degree-6 polynomial of r, times 2^n. Written once, op for op as the SIMD lanes do it. */
#define TL_ATT_EXP_MIN (-87.0f)
static inline float tl_att_exp(float x) {
    if (!(x >= TL_ATT_EXP_MIN)) return 0;
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest: 1.5 * 2^23 */
    float r = __builtin_fmaf(n, -0.693359375f, x);
    r = __builtin_fmaf(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = __builtin_fmaf(p, r, 1.3981999507e-3f);
    p = __builtin_fmaf(p, r, 8.3334519073e-3f);
    p = __builtin_fmaf(p, r, 4.1665795894e-2f);
    p = __builtin_fmaf(p, r, 1.6666665459e-1f);
    p = __builtin_fmaf(p, r, 5.0000001201e-1f);
    float y = __builtin_fmaf(p, r * r, r) + 1.0f;
    union { uint32_t u; float f; } scale = {(uint32_t)((int32_t)n + 127) << 23};
    return y * scale.f;
}

/* Per-format, per-ISA kernels (defined in kernels/<type>_<isa>.c). */
tl_ternary_fn tl_tq2_0_ref, tl_tq2_0_avx2, tl_tq2_0_avxvnni, tl_tq2_0_avx512;
tl_ternary_fn tl_tq1_0_ref, tl_tq1_0_avx2, tl_tq1_0_avx512;
tl_ternary_fn tl_tq1_0_lut_ref, tl_tq1_0_lut_vbmi, tl_tq1_0_lut_r4_ref, tl_tq1_0_lut_r4_vbmi;
tl_ternary_rows_fn tl_tq1_0_lut_ref_rows, tl_tq1_0_lut_vbmi_rows, tl_tq1_0_lut_r4_ref_rows, tl_tq1_0_lut_r4_vbmi_rows;
tl_ternary_fn tl_i2_s_ref, tl_i2_s_avx2, tl_i2_s_avxvnni, tl_i2_s_avx512;
tl_ternary_fn tl_i2_s_r4_ref, tl_i2_s_r4_avx2, tl_i2_s_r4_avxvnni, tl_i2_s_r4_avx512;
/* AMX-INT8, x86-64 Linux only (the kernel grants a process the tile registers on request): i2_s_amx.c */
tl_ternary_fn tl_i2_s_amx, tl_i2_s_r4_amx;
tl_ternary_rows_fn tl_i2_s_r4_ref_rows, tl_i2_s_r4_avx2_rows, tl_i2_s_r4_avxvnni_rows, tl_i2_s_r4_avx512_rows;
tl_float_fn tl_f32_ref, tl_f16_ref, tl_bf16_ref, tl_q8_0_ref, tl_q4_k_ref, tl_q6_k_ref;
tl_float_fn tl_bf16_avx2, tl_bf16_avx512, tl_q8_0_avx2, tl_q8_0_avx512, tl_q4_k_avx2, tl_q4_k_avx512;
tl_float_fn tl_q6_k_avx2, tl_q6_k_avx512;
tl_float_fn tl_bf16_lut_ref, tl_bf16_lut_vbmi;
tl_ternary_rows_fn tl_tq2_0_ref_rows, tl_tq2_0_avx2_rows, tl_tq2_0_avxvnni_rows, tl_tq2_0_avx512_rows;
tl_ternary_rows_fn tl_tq1_0_ref_rows, tl_tq1_0_avx2_rows, tl_tq1_0_avx512_rows;
tl_ternary_rows_fn tl_i2_s_ref_rows, tl_i2_s_avx2_rows, tl_i2_s_avxvnni_rows, tl_i2_s_avx512_rows;
tl_ternary_fn tl_tq2_0_neon, tl_tq2_0_dotprod, tl_tq2_0_i8mm;
tl_ternary_fn tl_tq1_0_neon, tl_tq1_0_dotprod, tl_tq1_0_i8mm;
tl_ternary_fn tl_i2_s_neon, tl_i2_s_dotprod, tl_i2_s_i8mm;
tl_ternary_rows_fn tl_tq2_0_neon_rows, tl_tq2_0_dotprod_rows, tl_tq2_0_i8mm_rows;
tl_ternary_rows_fn tl_tq1_0_neon_rows, tl_tq1_0_dotprod_rows, tl_tq1_0_i8mm_rows;
tl_ternary_rows_fn tl_i2_s_neon_rows, tl_i2_s_dotprod_rows, tl_i2_s_i8mm_rows;
tl_float_fn tl_f32_neon, tl_f16_neon, tl_bf16_neon, tl_q8_0_neon, tl_q4_k_neon, tl_q6_k_neon;

/* ARM64 levels above baseline NEON that this compiler builds (kernels/neon.h). GCC compiles each file for its own
 * level; older clang's arm_neon.h (14, tried here) offers an extension's intrinsics only when the whole build
 * targets it, so clang builds a level only then: Apple's default arm64 target (M1) has dotprod, i8mm needs e.g.
 * -march=armv8.6-a+dotprod. */
#if defined(__aarch64__) && (!defined(__clang__) || defined(__ARM_FEATURE_DOTPROD))
#define TL_NEON_DOTPROD 1
#endif
#if defined(__aarch64__) && (!defined(__clang__) || (defined(__ARM_FEATURE_DOTPROD) && defined(__ARM_FEATURE_MATMUL_INT8)))
#define TL_NEON_I8MM 1
#endif

#endif
