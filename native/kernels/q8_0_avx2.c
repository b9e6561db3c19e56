/* q8_0 on AVX2, in the reference's order: per block, lanes sum q * x over its 32 values (two a lane, FMAs from
 * zero), then add d * partial. unpack() widens the 32 int8 to floats (exact) and puts d after them. */
#include "kernels.h"
#if defined(__x86_64__)
#include "avx2.h"

static inline void unpack(const uint8_t *block, float *values) {
    for (int i = 0; i < 4; i++)
        _mm256_store_ps(values + 8 * i, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(block + 2 + 8 * i)))));
    values[TL_Q8_0_VALUES] = _cvtsh_ss(load_u16(block));
}

static inline acc16 block_dot(acc16 acc, const float *values, const float *x) {
    acc16 part = acc_fma(acc_zero(), load_x(values), load_x(x));
    part = acc_fma(part, load_x(values + 16), load_x(x + 16));
    __m256 d = _mm256_set1_ps(values[TL_Q8_0_VALUES]);
    return acc_fma(acc, (acc16){d, d}, part);
}
#define BLOCK_DOT
#define FTILE_ROWS 2 /* 16 ymm registers: 4 rows x 2 ymm of accumulators and values would spill */
#define BT_BLOCK_VALUES TL_Q8_0_VALUES
#define BT_BLOCK_BYTES TL_Q8_0_BYTES
#define BT_KERNEL tl_q8_0_avx2
#include "block_tile.h"
#endif
