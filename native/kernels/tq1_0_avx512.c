/* tq1_0 on AVX-512 VNNI. Each 64-value segment is built from the block's 16-byte lanes (qs[0:16], qs[16:32],
 * qs[32:48], qh) arranged so that its bytes times a per-lane power of 3 (mod 256) hold the wanted digits
 * in consecutive value order; digit = (t * 3) >> 8, i.e. (t >= 86) + (t >= 171).
 *   seg 0: [qs0 | qs0] x [1 | 3]          values   0..63   (qs0 = qs[0:32], digits 0, 1)
 *   seg 1: [qs0 | qs0] x [9 | 27]         values  64..127  (digits 2, 3)
 *   seg 2: [qs0 | qs1 | qs1] x [81|1|3]    values 128..191  (qs0 digit 4, qs1 = qs[32:48] digits 0, 1)
 *   seg 3: [qs1 | qs1 | qs1 | qh x4] x [9|27|81|1,3,9,27 per 4 bytes]   values 192..255 */
#include "kernels.h"
#include "avx512.h"

#define BLOCK_VALUES 256
#define BLOCK_BYTES 54

/* powers of 3 per 16-bit lane (both bytes of a lane share one) for each segment */
static const int16_t POW3[4][32] __attribute__((aligned(64))) = {
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3},
    {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27},
    {81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3},
    {9, 9, 9, 9, 9, 9, 9, 9, 27, 27, 27, 27, 27, 27, 27, 27, 81, 81, 81, 81, 81, 81, 81, 81, 1, 1, 3, 3, 9, 9, 27, 27},
};

static inline __m512i decode(const uint8_t *block, int seg) {
    // the 52 payload bytes (masked: the last block of a tensor may end right after d)
    __m512i lanes = _mm512_maskz_loadu_epi8(0x000FFFFFFFFFFFFFull, block), src;
    if (seg < 2) src = _mm512_shuffle_i64x2(lanes, lanes, _MM_SHUFFLE(1, 0, 1, 0));
    else if (seg == 2) src = _mm512_shuffle_i64x2(lanes, lanes, _MM_SHUFFLE(2, 2, 1, 0));
    else {
        src = _mm512_shuffle_i64x2(lanes, lanes, _MM_SHUFFLE(3, 2, 2, 2));
        src = _mm512_mask_shuffle_epi32(src, 0xF000, src, _MM_PERM_AAAA); /* qh's 4 bytes, 4 times */
    }
    // t = byte * 3^k mod 256, per byte: 16-bit products are exact in the low byte; the high byte is
    // multiplied on its own so no carry reaches it
    __m512i pow3 = _mm512_load_si512(POW3[seg]);
    __m512i lo = _mm512_mullo_epi16(src, pow3);
    __m512i hi = _mm512_mullo_epi16(_mm512_and_si512(src, _mm512_set1_epi16((short)0xFF00)), pow3);
    __m512i t = _mm512_mask_blend_epi8(0xAAAAAAAAAAAAAAAAull, lo, hi);
    // digit = (t * 3) >> 8 = (t >= 86) + (t >= 171)
    __m512i one = _mm512_set1_epi8(1);
    __m512i codes = _mm512_maskz_mov_epi8(_mm512_cmpge_epu8_mask(t, _mm512_set1_epi8((char)86)), one);
    return _mm512_mask_add_epi8(codes, _mm512_cmpge_epu8_mask(t, _mm512_set1_epi8((char)171)), codes, one);
}
#define KERNEL tl_tq1_0_avx512
#include "ternary_tile.h"
