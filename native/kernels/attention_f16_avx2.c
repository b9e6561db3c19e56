/* Attention over an f16 KV cache's block on AVX2: attention_tile.h reading the half rows through F16C's vcvtph2ps
 * (exact), so it equals the f32 kernel on the same values bit for bit with half the bytes read; and the rows' conversions. */
#include <math.h>
#include <string.h>
#include "kernels.h"
#if defined(__x86_64__)
#include "avx2.h"
#define ATT_ROWS 2
#define ATT_KEYS 2
#define ATT_VROWS 2
#define ATT_VCHUNKS 2
#define KV_T uint16_t
static inline acc16 load_kv(const uint16_t *p) {
    return (acc16){_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 8)))};
}
static inline acc16 load_kv_n(const uint16_t *p, int n) { /* a head_dim's last, partial 16 (zeros after) */
    uint16_t h[16] = {0};
    memcpy(h, p, (size_t)n * sizeof *p);
    return load_kv(h);
}
#define ATTENTION_KERNEL tl_attention_f16_avx2
#include "attention_tile.h"

void tl_kv_f32_to_f16_avx2(const float *x, int64_t n, uint16_t *out) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    tl_kv_f32_to_f16_ref(x + i, n - i, out + i);
}

void tl_kv_f16_to_f32_avx2(const uint16_t *in, int64_t n, float *x) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(in + i))));
    tl_kv_f16_to_f32_ref(in + i, n - i, x + i);
}
#endif
