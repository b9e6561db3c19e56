/* tq1_0 on AVX2, 32 values per segment. Segments 0-4 are qs[0:32] digit k (values 32k..); then
 *   seg 5: [qs1 | qs1] x [1 | 3]      values 160..191  (qs1 = qs[32:48])
 *   seg 6: [qs1 | qs1] x [9 | 27]     values 192..223
 *   seg 7: [qs1 | qh x4] x [81 | 1,3,9,27 per 4 bytes]   values 224..255
 * Digit k of a byte is ((byte * 3^k mod 256) * 3) >> 8. */
#include "kernels.h"
#if defined(__x86_64__)
#include "avx2.h"

#define BLOCK_VALUES TL_TQ1_0_VALUES
#define BLOCK_BYTES TL_TQ1_0_BYTES

static const int16_t POW3[8][16] __attribute__((aligned(32))) = {
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3},
    {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9},
    {27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27},
    {81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81},
    {1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3},
    {9, 9, 9, 9, 9, 9, 9, 9, 27, 27, 27, 27, 27, 27, 27, 27},
    {81, 81, 81, 81, 81, 81, 81, 81, 1, 1, 3, 3, 9, 9, 27, 27},
};

static inline __m256i decode(const uint8_t *block, int seg) {
    __m256i src;
    if (seg < 5) src = _mm256_loadu_si256((const __m256i *)block);
    else {
        __m128i qs1 = _mm_loadu_si128((const __m128i *)(block + 32));
        __m128i qh = _mm_set1_epi32(block[48] | block[49] << 8 | block[50] << 16 | (int32_t)((uint32_t)block[51] << 24));
        src = _mm256_set_m128i(seg < 7 ? qs1 : qh, qs1);
    }
    __m256i pow3 = _mm256_load_si256((const __m256i *)POW3[seg]);
    // low bytes: the 16-bit product's low byte is byte * 3^k mod 256; moved to the top, mulhi by 3 gives the digit
    __m256i lo = _mm256_mulhi_epu16(_mm256_slli_epi16(_mm256_mullo_epi16(src, pow3), 8), _mm256_set1_epi16(3));
    // high bytes: multiplied alone (no carry from below), the digit comes out in the low byte; move it up
    __m256i hi = _mm256_mullo_epi16(_mm256_and_si256(src, _mm256_set1_epi16((short)0xFF00)), pow3);
    hi = _mm256_slli_epi16(_mm256_mulhi_epu16(hi, _mm256_set1_epi16(3)), 8);
    return _mm256_or_si256(lo, hi);
}
#define KERNEL tl_tq1_0_avx2
#include "ternary_tile.h"
#endif
