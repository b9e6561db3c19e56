/* blocks.h - the block of every weight type the engine reads, as ggml-common.h lays them out (i2_s: bitnet.cpp's),
 * and its values and bytes per block. The Python twin is tritlm/formats.py (tests/test_formats.py checks they agree);
 * docs/format.md describes the layouts. A new type is one struct, one _Static_assert and one enum row here. */
#ifndef TL_BLOCKS_H
#define TL_BLOCKS_H
#include <stdint.h>

typedef uint16_t tl_half; /* fp16 bits */

enum { TL_QK8_0 = 32, TL_QK_K = 256, TL_QK_I2_S = 128 }; /* values per block */

typedef struct {
    tl_half d;            /* scale */
    int8_t qs[TL_QK8_0];  /* values = d * qs */
} tl_block_q8_0;
_Static_assert(sizeof(tl_block_q8_0) == sizeof(tl_half) + TL_QK8_0, "wrong q8_0 block size/padding");

typedef struct {
    tl_half d, dmin;          /* super-block scale of the sub-block scales and of the mins */
    uint8_t scales[12];       /* eight 6-bit scales and mins */
    uint8_t qs[TL_QK_K / 2];  /* 4-bit values */
} tl_block_q4_k;
_Static_assert(sizeof(tl_block_q4_k) == 2 * sizeof(tl_half) + 12 + TL_QK_K / 2, "wrong q4_k block size/padding");

typedef struct {
    uint8_t ql[TL_QK_K / 2];      /* low 4 bits */
    uint8_t qh[TL_QK_K / 4];      /* high 2 bits */
    int8_t scales[TL_QK_K / 16];  /* 8-bit sub-block scales */
    tl_half d;
} tl_block_q6_k;
_Static_assert(sizeof(tl_block_q6_k) == sizeof(tl_half) + TL_QK_K / 16 + 3 * TL_QK_K / 4, "wrong q6_k block size/padding");

typedef struct {
    uint8_t qs[(TL_QK_K - 4 * TL_QK_K / 64) / 5]; /* 5 base-3 digits a byte */
    uint8_t qh[TL_QK_K / 64];                     /* 4 base-3 digits a byte */
    tl_half d;
} tl_block_tq1_0;
_Static_assert(sizeof(tl_block_tq1_0) == sizeof(tl_half) + TL_QK_K / 64 + (TL_QK_K - 4 * TL_QK_K / 64) / 5,
               "wrong tq1_0 block size/padding");

typedef struct {
    uint8_t qs[TL_QK_K / 4]; /* 2 bits a value */
    tl_half d;
} tl_block_tq2_0;
_Static_assert(sizeof(tl_block_tq2_0) == sizeof(tl_half) + TL_QK_K / 4, "wrong tq2_0 block size/padding");

/* i2_s has no per-block scale: one f32 starts the trailer after a tensor's last block. */
typedef struct {
    uint8_t qs[TL_QK_I2_S / 4]; /* 2 bits a value */
} tl_block_i2_s;
_Static_assert(sizeof(tl_block_i2_s) == TL_QK_I2_S / 4, "wrong i2_s block size/padding");

/* Values and bytes per block, by type (the float types are one value a block). */
enum {
    TL_Q8_0_VALUES = TL_QK8_0, TL_Q8_0_BYTES = sizeof(tl_block_q8_0),
    TL_Q4_K_VALUES = TL_QK_K, TL_Q4_K_BYTES = sizeof(tl_block_q4_k),
    TL_Q6_K_VALUES = TL_QK_K, TL_Q6_K_BYTES = sizeof(tl_block_q6_k),
    TL_TQ1_0_VALUES = TL_QK_K, TL_TQ1_0_BYTES = sizeof(tl_block_tq1_0),
    TL_TQ2_0_VALUES = TL_QK_K, TL_TQ2_0_BYTES = sizeof(tl_block_tq2_0),
    TL_I2_S_VALUES = TL_QK_I2_S, TL_I2_S_BYTES = sizeof(tl_block_i2_s),
    TL_I2_S_TRAILER = 32, /* bytes after an i2_s tensor's blocks; the first 4 hold its f32 scale */
};

/* The float kernels sum 16 lanes: every weight row the engine multiplies holds a multiple of this many values. */
enum { TL_ROW_ALIGN = 16 };

/* The longest row a BitLinear multiplies: its int32 sums of row length x 128 x 1 cannot overflow. */
enum { TL_MAX_ROW = 1 << 22 };

#endif
