/* tq1_0's lookup layout (tq1_0_lut_ref.c) on AVX-512 VBMI + VNNI. A span's 40 bytes hold 64 five-bit fields: vpermb
 * puts bytes 5q..5q+7 in 64-bit lane q (fields 8q..8q+7 at bits 5j), vpmultishiftqb moves field 8q+j to byte j of the
 * lane, and one vpermb per digit looks its code up in a table. vpermb indexes by 6 bits and the fields carry the next
 * field's bits above bit 4, so each table holds its 32 entries twice. Codes (0..2) face 64 consecutive activations and
 * go through vpdpbusd as tq2_0's do: about 2 instructions per 64 values besides the dot, tq2_0's count. The tail's
 * 2-bit codes: 16 bytes broadcast to the 4 lanes, lane n shifted by 2n. */
#include <stdlib.h>
#include "kernels.h"
#if defined(__x86_64__)
#include "avx512.h"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,avx512vbmi,f16c")

#define BLOCK_VALUES TL_LUT_SPAN_VALUES
#define BLOCK_BYTES TL_LUT_SPAN_BYTES
#define ROW_BYTES(cols) tl_tq1_0_lut_row_bytes(cols)

/* SPREAD: bytes 5q + j into lane q; SHIFTS: bit 5j for byte j of each lane */
#define LANE(q) 5 * q, 5 * q + 1, 5 * q + 2, 5 * q + 3, 5 * q + 4, 5 * q + 5, 5 * q + 6, 5 * q + 7
static const uint8_t SPREAD[64] __attribute__((aligned(64))) = {LANE(0), LANE(1), LANE(2), LANE(3), LANE(4), LANE(5), LANE(6), LANE(7)};
#define SHIFTS8 0, 5, 10, 15, 20, 25, 30, 35
static const uint8_t SHIFTS[64] __attribute__((aligned(64))) = {SHIFTS8, SHIFTS8, SHIFTS8, SHIFTS8, SHIFTS8, SHIFTS8, SHIFTS8, SHIFTS8};
/* DIGIT[k][c] = code c_k of field c = c0 + 3 c1 + 9 c2 (fields 27..31 never occur), twice */
#define D(k, c) (uint8_t)((c) < 27 ? (c) / (k == 0 ? 1 : k == 1 ? 3 : 9) % 3 : 0)
#define D8(k, c) D(k, c), D(k, c + 1), D(k, c + 2), D(k, c + 3), D(k, c + 4), D(k, c + 5), D(k, c + 6), D(k, c + 7)
#define D32(k) D8(k, 0), D8(k, 8), D8(k, 16), D8(k, 24)
static const uint8_t DIGIT[3][64] __attribute__((aligned(64))) = {{D32(0), D32(0)}, {D32(1), D32(1)}, {D32(2), D32(2)}};

/* codes of values 64 seg .. 64 seg + 63 of a span (the three calls of a span share the fields: the compiler keeps one);
 * its 40 bytes are loaded as 64 (TL_LUT_READ_PAST), which folds the load into the vpermb: 5-7% faster than a masked one */
static inline __m512i decode(const uint8_t *span, int seg) {
    __m512i bytes = _mm512_loadu_si512(span);
    __m512i fields = _mm512_multishift_epi64_epi8(_mm512_load_si512(SHIFTS), _mm512_permutexvar_epi8(_mm512_load_si512(SPREAD), bytes));
    return _mm512_permutexvar_epi8(fields, _mm512_load_si512(DIGIT[seg]));
}

/* codes of tail values 64 seg .. 64 seg + 63 */
static inline __m512i decode_tail(const uint8_t *tail, int seg) {
    __m512i bytes = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(tail + 16 * seg)));
    __m512i shift = _mm512_set_epi64(0x0006000600060006, 0x0006000600060006, 0x0004000400040004, 0x0004000400040004,
                                     0x0002000200020002, 0x0002000200020002, 0, 0);
    return _mm512_and_si512(_mm512_srlv_epi16(bytes, shift), _mm512_set1_epi8(3));
}
#define KERNEL tl_tq1_0_lut_vbmi
#define GROUPED_KERNEL tl_tq1_0_lut_r4_vbmi /* TL_TQ1_0_LUT_R4 */
#include "ternary_tile.h"

/* The repack, from each row's codes (tq1_0_avx512.c decodes them): per span, c0 + 3 c1 + 9 c2 by table lookups, the 8
 * fields of each 64-bit lane joined into its low 40 bits (pairs to 10 bits, 20, then 40), and those 5 bytes of each
 * lane packed together; the tail's 4 lanes of 16 codes shifted by 2j and or-ed. As tl_tq1_0_lut_pack, ~20x faster. */
#define TIMES(k) 0, k, 2 * k, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
#define PACK8(q) 8 * q, 8 * q + 1, 8 * q + 2, 8 * q + 3, 8 * q + 4
static const uint8_t PACK[64] __attribute__((aligned(64))) = {PACK8(0), PACK8(1), PACK8(2), PACK8(3), PACK8(4), PACK8(5), PACK8(6), PACK8(7)};

static inline void encode_span(const int8_t *codes, uint8_t *span) {
    __m512i times3 = _mm512_broadcast_i32x4(_mm_setr_epi8(TIMES(3))), times9 = _mm512_broadcast_i32x4(_mm_setr_epi8(TIMES(9)));
    __m512i fields = _mm512_add_epi8(_mm512_loadu_si512(codes), _mm512_add_epi8(_mm512_shuffle_epi8(times3, _mm512_loadu_si512(codes + 64)),
                                                                             _mm512_shuffle_epi8(times9, _mm512_loadu_si512(codes + 128))));
    __m512i pairs = _mm512_maddubs_epi16(fields, _mm512_set1_epi16(1 | 32 << 8));
    __m512i quads = _mm512_madd_epi16(pairs, _mm512_set1_epi32(1 | 1024 << 16));
    __m512i lanes = _mm512_or_si512(_mm512_and_si512(quads, _mm512_set1_epi64(0xFFFFF)),
                                    _mm512_and_si512(_mm512_srli_epi64(quads, 12), _mm512_set1_epi64(0xFFFFF00000)));
    _mm512_mask_storeu_epi8(span, (1ull << BLOCK_BYTES) - 1, _mm512_permutexvar_epi8(_mm512_load_si512(PACK), lanes));
}

int32_t tl_tq1_0_lut_vbmi_pack(const uint8_t *tq1_0, int64_t cols, int64_t r0, int64_t r1, uint8_t *out) {
    int8_t *codes = malloc((size_t)cols);
    if (!codes) return -1;
    int64_t spans = cols / BLOCK_VALUES, row_bytes = ROW_BYTES(cols);
    for (int64_t r = r0; r < r1; r++) {
        uint8_t *row = out + r * row_bytes;
        tl_tq1_0_avx512_codes(tq1_0 + r * tl_row_bytes(TL_TQ1_0, cols), cols, codes);
        for (int64_t s = 0; s < spans; s++) encode_span(codes + s * BLOCK_VALUES, row + s * BLOCK_BYTES);
        for (int64_t p = 0; p < cols % BLOCK_VALUES / 64; p++) {
            __m512i c = _mm512_loadu_si512(codes + spans * BLOCK_VALUES + 64 * p);
            __m128i lo = _mm_or_si128(_mm512_castsi512_si128(c), _mm_slli_epi16(_mm512_extracti32x4_epi32(c, 1), 2));
            __m128i hi = _mm_or_si128(_mm_slli_epi16(_mm512_extracti32x4_epi32(c, 2), 4), _mm_slli_epi16(_mm512_extracti32x4_epi32(c, 3), 6));
            _mm_storeu_si128((__m128i *)(row + spans * BLOCK_BYTES + 16 * p), _mm_or_si128(lo, hi));
        }
    }
    free(codes);
    return 0;
}
#endif
