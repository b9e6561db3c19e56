/* INT4 absmean activations on AVX-512: int4_ref.c's sums and rounding, 16 lanes in one zmm. */
#include <math.h>
#include "kernels.h"
#if defined(__x86_64__)
#include "avx512.h"

int32_t tl_int4_avx512(const float *x, int64_t dim, int8_t *q, float *scale) {
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < dim; i += 16) acc = _mm512_add_ps(acc, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
    float lanes[16];
    _mm512_storeu_ps(lanes, acc);
    float s = sqrtf(7.0f) / fmaxf(tl_sum16(lanes) / (float)dim, 1e-5f);
    __m512 vs = _mm512_set1_ps(s), top = _mm512_set1_ps(7), bottom = _mm512_set1_ps(-8), magic = _mm512_set1_ps(12582912.0f);
    __m512i sum = _mm512_setzero_si512();
    for (int64_t i = 0; i < dim; i += 16) {
        __m512 v = _mm512_max_ps(_mm512_min_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), vs), top), bottom);
        __m512i c = _mm512_cvttps_epi32(_mm512_sub_ps(_mm512_add_ps(v, magic), magic));
        sum = _mm512_add_epi32(sum, c);
        _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtepi32_epi8(c));
    }
    *scale = s;
    return _mm512_reduce_add_epi32(sum);
}
#endif
