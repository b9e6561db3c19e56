/* Attention over an f16 KV cache's block on AVX-512: attention_tile.h reading the half rows through vcvtph2ps (exact),
 * so it equals the f32 kernel on the same values bit for bit with half the bytes read; and the rows' conversions. */
#include <math.h>
#include <string.h>
#include "kernels.h"
#if defined(__x86_64__)
#include "avx512.h"
#define ATT_ROWS 4
#define ATT_KEYS 4
#define ATT_VROWS 4
#define ATT_VCHUNKS 4
#define KV_T uint16_t
static inline __m512 load_kv(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
static inline __m512 load_kv_n(const uint16_t *p, int n) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16((__mmask16)((1u << n) - 1), p));
}
#define ATTENTION_KERNEL tl_attention_f16_avx512
#include "attention_tile.h"

void tl_kv_f32_to_f16_avx512(const float *x, int64_t n, uint16_t *out) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(out + i), _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    tl_kv_f32_to_f16_ref(x + i, n - i, out + i);
}

void tl_kv_f16_to_f32_avx512(const uint16_t *in, int64_t n, float *x) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, load_kv(in + i));
    tl_kv_f16_to_f32_ref(in + i, n - i, x + i);
}
#endif
