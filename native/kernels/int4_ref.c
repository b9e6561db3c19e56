/* INT4 absmean activations (BitNet a4.8's inputs of q/k/v and gate/up), one token's row of dim values
 * (dim % 16 == 0): s = sqrt(7) / max(mean|x|, 1e-5), q = clamp(round(x s), -8, 7), round half to even.
 * mean|x| sums lane i mod 16 in order, then the lanes pairwise (tl_sum16), so every ISA gets the same s.
 * The codes stay int8 values in [-8, 7]: the ternary kernels dot them exactly as int8 activations. */
#include <math.h>
#include "kernels.h"

int32_t tl_int4_ref(const float *x, int64_t dim, int8_t *q, float *scale) {
    float acc[16] = {0};
    for (int64_t i = 0; i < dim; i++) acc[i % 16] += fabsf(x[i]);
    float s = sqrtf(7.0f) / fmaxf(tl_sum16(acc) / (float)dim, 1e-5f);
    int32_t sum = 0;
    for (int64_t i = 0; i < dim; i++) {
        float v = x[i] * s;
        v = v > 7 ? 7 : v;
        v = v < -8 ? -8 : v;
        q[i] = (int8_t)((v + 12582912.0f) - 12582912.0f); /* + 1.5 * 2^23: rounds half to even */
        sum += q[i];
    }
    *scale = s;
    return sum;
}
