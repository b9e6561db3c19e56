/* bf16 weights x f32 activations on AVX2: a bf16 is the top half of an f32, so widen and shift by 16. */
#include "kernels.h"
#if defined(__x86_64__)
#include "avx2.h"

static inline __m256 widen8(const uint8_t *p) {
    __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}
static inline acc16 load_w(const uint8_t *row, int64_t k) { return (acc16){widen8(row + 2 * k), widen8(row + 2 * k + 16)}; }
#define ELEM_BYTES 2
#define FLOAT_KERNEL tl_bf16_avx2
#include "float_tile.h"
#endif
