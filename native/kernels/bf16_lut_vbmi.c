/* bf16's lookup layout (bf16_lut_ref.c) x f32 activations on AVX-512 VBMI, through float_tile.h in the canonical
 * order. 32 values a step, as bf16_avx512.c takes a 64-byte line: vpermt2b interleaves their 32 low bytes with the
 * code bytes so 32-bit lane l holds values k + l (low 16 bits) and k + 16 + l (high), each with its code byte where
 * its high byte goes; a merge-masked vpermb then puts the table's high byte there (vpermb reads 6 index bits: the
 * table is repeated 4 times, so the byte's other nibble is ignored; the block's second 32 values have their codes in
 * the high nibbles, shifted down first). Then a shift and a mask make the two f32 vectors, as for bf16: 5 vector
 * instructions per 32 values against bf16's 3, for 48 bytes read instead of 64. A row's exceptions are patched into
 * the step holding them (the next one's column is kept per row of the tile: one scalar compare a step). */
#include <string.h>
#include "kernels.h"
#if defined(__x86_64__)
#include "avx512.h"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,avx512vbmi,f16c")

/* byte 4l: low byte of value l, 4l + 1: code byte l, 4l + 2: low byte of value 16 + l, 4l + 3: code byte 16 + l
 * (indices from 64 pick the second source, the code bytes) */
#define LANE(l) l, 64 + l, 16 + l, 80 + l
static const uint8_t INTERLEAVE[64] __attribute__((aligned(64))) = {
    LANE(0), LANE(1), LANE(2), LANE(3), LANE(4), LANE(5), LANE(6), LANE(7),
    LANE(8), LANE(9), LANE(10), LANE(11), LANE(12), LANE(13), LANE(14), LANE(15)};

/* A row's decoding state from column k0: its table (4 times), header, block 0, and the column of its next exception
 * from k0 (INT64_MAX: none left). */
typedef struct {
    __m512i table;
    const uint8_t *header, *blocks;
    int64_t next;
} lut_row;

/* The column of entry i of a row's exception list. */
static int64_t column_of(const uint8_t *list, int32_t i) {
    uint32_t col;
    memcpy(&col, list + (int64_t)i * TL_BF16_LUT_EXCEPTION_BYTES, 4);
    return col;
}
/* The first entry of a list at or after column k (n: none), by bisection. */
static int32_t first_from(const uint8_t *list, int32_t n, int64_t k) {
    int32_t lo = 0, hi = n;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (column_of(list, mid) < k) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* The column of a row's first exception at or after column k, or INT64_MAX. Out of line (rare), taking no pointer to
 * the row's state, which then stays in registers (1.1x faster at 8-64 tokens than a state kept in memory). */
static __attribute__((noinline)) int64_t exception_from(const uint8_t *header, int64_t k) {
    int32_t n;
    const uint8_t *list = tl_bf16_lut_exceptions(header, &n);
    int32_t i = first_from(list, n, k);
    return i < n ? column_of(list, i) : INT64_MAX;
}

static inline lut_row w_row(const uint8_t *w, int64_t row_bytes, int64_t r, int64_t k0) {
    const uint8_t *header = w + tl_bf16_lut_header_at(row_bytes, r);
    lut_row s = {_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)header)), header,
                 w + tl_bf16_lut_block_at(row_bytes, r, 0), exception_from(header, k0)};
    return s;
}

/* Values k .. k + 31 with the row's exceptions among them written over (value k + j is word 2j, or 2(j - 16) + 1
 * from 16). */
static __attribute__((noinline)) __m512i patch(const uint8_t *header, int64_t k, __m512i words) {
    uint16_t w[32];
    int32_t n;
    const uint8_t *list = tl_bf16_lut_exceptions(header, &n);
    _mm512_storeu_si512(w, words);
    for (int32_t i = first_from(list, n, k); i < n && column_of(list, i) < k + 32; i++) {
        int64_t j = column_of(list, i) - k;
        memcpy(&w[j < 16 ? 2 * j : 2 * (j - 16) + 1], list + (int64_t)i * TL_BF16_LUT_EXCEPTION_BYTES + 4, 2);
    }
    return _mm512_loadu_si512(w);
}

/* Where a row's values k .. k + 31 are: their block (the row's blocks are a group's blocks apart), their low bytes. */
#define BLOCK_OF(s, k) ((s).blocks + (k) / 64 * (TL_BF16_LUT_GROUP * TL_BF16_LUT_BLOCK_BYTES))
#define LINE_AT(s, k) (BLOCK_OF(s, k) + ((k) & 32))

static inline void load_w_line(lut_row *s, int64_t k, __m512 *lo, __m512 *hi) {
    const uint8_t *block = BLOCK_OF(*s, k);
    __m512i low = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(block + (k & 32))));
    __m512i codes = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(block + 64)));
    __m512i v = _mm512_permutex2var_epi8(low, _mm512_load_si512(INTERLEAVE), codes);
    __m512i index = k & 32 ? _mm512_srli_epi16(v, 4) : v; /* the second 32: high nibbles (k % 64 is a constant here) */
    v = _mm512_mask_permutexvar_epi8(v, 0xAAAAAAAAAAAAAAAAull, index, s->table);
    if (__builtin_expect(s->next < k + 32, 0)) {
        v = patch(s->header, k, v);
        s->next = exception_from(s->header, k + 32);
    }
    *lo = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    *hi = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32((int)0xffff0000u)));
}
#define LOAD_W_LINE
#define W_ROW lut_row
#define FTILE_WIDE_ROWS 2
#define ROW_BYTES(cols) tl_bf16_lut_row_bytes(cols)
#define FLOAT_KERNEL tl_bf16_lut_vbmi
#include "float_tile.h"
#endif
