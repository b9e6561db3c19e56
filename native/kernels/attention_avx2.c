/* Attention over a block of keys on AVX2: attention_tile.h with 16 lanes in two ymm (16 registers: 2 x 2 tiles). */
#include <math.h>
#include "kernels.h"
#if defined(__x86_64__)
#include "avx2.h"
#define ATT_ROWS 2
#define ATT_KEYS 2
#define ATT_VROWS 2
#define ATT_VCHUNKS 2
#define ATTENTION_KERNEL tl_attention_avx2
#include "attention_tile.h"
#endif
