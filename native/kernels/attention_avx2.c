/* Attention over a block of keys on AVX2: attention_tile.h with 16 lanes in two ymm (16 registers: 2 x 2 tiles); and an
 * f16 cache's rows to f32 for it. */
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
/* f16 KV cache rows to f32, 8 a step (F16C's vcvtph2ps: exact) */
void tl_kv_f16_to_f32_avx2(const uint16_t *in, int64_t n, float *x) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(in + i))));
    for (; i < n; i++) x[i] = tl_f16_to_f32(in[i]);
}
#endif
