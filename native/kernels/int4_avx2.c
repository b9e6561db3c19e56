/* INT4 absmean activations on AVX2: int4_ref.c's sums and rounding, 16 lanes as two ymm. */
#include <math.h>
#include "kernels.h"
#if defined(__x86_64__)
#include "avx2.h"

int32_t tl_int4_avx2(const float *x, int64_t dim, int8_t *q, float *scale) {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps(), sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < dim; i += 16) {
        lo = _mm256_add_ps(lo, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
        hi = _mm256_add_ps(hi, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i + 8)));
    }
    float acc[16];
    _mm256_storeu_ps(acc, lo);
    _mm256_storeu_ps(acc + 8, hi);
    float s = sqrtf(7.0f) / fmaxf(tl_sum16(acc) / (float)dim, 1e-5f);
    __m256 vs = _mm256_set1_ps(s), top = _mm256_set1_ps(7), bottom = _mm256_set1_ps(-8), magic = _mm256_set1_ps(12582912.0f);
    __m256i sum = _mm256_setzero_si256();
    for (int64_t i = 0; i < dim; i += 8) {
        __m256 v = _mm256_max_ps(_mm256_min_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), top), bottom);
        __m256i c = _mm256_cvttps_epi32(_mm256_sub_ps(_mm256_add_ps(v, magic), magic));
        sum = _mm256_add_epi32(sum, c);
        __m128i c16 = _mm_packs_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
        _mm_storel_epi64((__m128i *)(q + i), _mm_packs_epi16(c16, c16));
    }
    *scale = s;
    return vec_sum(sum);
}
#endif
