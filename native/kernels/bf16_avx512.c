/* bf16 weights x f32 activations on AVX-512: a bf16 is the top half of an f32, so widen and shift by 16. */
#include "kernels.h"
#if defined(__x86_64__)
#include "avx512.h"

static inline __m512 load_w(const uint8_t *row, int64_t k) {
    __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(row + 2 * k)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}
#define ELEM_BYTES 2
#define FLOAT_KERNEL tl_bf16_avx512
#include "float_tile.h"
#endif
