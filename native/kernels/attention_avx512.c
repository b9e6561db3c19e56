/* Attention over a block of keys on AVX-512: attention_tile.h with 16 lanes in one zmm (32 registers: 4 x 4 tiles); and
 * an f16 cache's rows to f32 for it. */
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
/* f16 KV cache rows to f32, 16 a step (F16C's vcvtph2ps: exact) */
void tl_kv_f16_to_f32_avx512(const uint16_t *in, int64_t n, float *x) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(in + i))));
    for (; i < n; i++) x[i] = tl_f16_to_f32(in[i]);
}
#endif
