/* q8_0 on AVX-512, in the reference's order: per block, lanes sum q * x over its 32 values (two a lane, FMAs from
 * zero), then add d * partial. unpack() widens the 32 int8 to floats (exact) and puts d after them. */
#include "kernels.h"
#if defined(__x86_64__)
#include "avx512.h"

static inline void unpack(const uint8_t *block, float *values) {
    for (int h = 0; h < 2; h++)
        _mm512_store_ps(values + 16 * h, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(block + 2 + 16 * h)))));
    values[TL_Q8_0_VALUES] = _cvtsh_ss(load_u16(block));
}

static inline __m512 block_dot(__m512 acc, const float *values, const float *x) {
    __m512 part = acc_fma(acc_zero(), load_x(values), load_x(x));
    part = acc_fma(part, load_x(values + 16), load_x(x + 16));
    return acc_fma(acc, _mm512_set1_ps(values[TL_Q8_0_VALUES]), part);
}
#define BLOCK_DOT
#define BT_BLOCK_VALUES TL_Q8_0_VALUES
#define BT_BLOCK_BYTES TL_Q8_0_BYTES
#define BT_KERNEL tl_q8_0_avx512
#include "block_tile.h"
#endif
