/* Attention over a block of keys on AVX-512: attention_tile.h with 16 lanes in one zmm (32 registers: 4 x 4 tiles). */
#include <math.h>
#include "kernels.h"
#if defined(__x86_64__)
#include "avx512.h"
#define ATT_ROWS 4
#define ATT_KEYS 4
#define ATT_VROWS 4
#define ATT_VCHUNKS 4
#define ATTENTION_KERNEL tl_attention_avx512
#include "attention_tile.h"
#endif
