/* avx512.h - the AVX-512 (BW + VNNI) vector primitives of ternary_tile.h; every function in a file that
 * includes this is compiled for that ISA while the library stays portable (chosen at run time). Every
 * kernel file is compiled on every CPU, so the files that include this are wrapped in #if defined(__x86_64__). */
#include <immintrin.h>
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,f16c")

#define VEC __m512i
#define VEC_ACC __m512i
#define VEC_BYTES 64
static inline __m512i vec_zero(void) { return _mm512_setzero_si512(); }
static inline __m512i vec_add(__m512i a, __m512i b) { return _mm512_add_epi32(a, b); }
static inline __m512i vec_load(const void *p) { return _mm512_loadu_si512(p); }
static inline void vec_store(void *p, __m512i v) { _mm512_storeu_si512(p, v); }
/* in asm: GCC 12 copies every accumulator through another register around the intrinsic (two moves a dot; one token
 * ran 1.1x and four tokens 1.2x faster in cache without them) */
static inline __m512i vec_dot(__m512i acc, __m512i codes, __m512i x) {
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(codes), "vm"(x));
    return acc;
}
static inline int32_t vec_sum(__m512i acc) { return _mm512_reduce_add_epi32(acc); }
/* [sum(a), sum(b), sum(c), sum(d)]: rows interleaved and added until each 128-bit lane holds all four */
static inline __m128i vec_sum4(__m512i a, __m512i b, __m512i c, __m512i d) {
    __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
    __m512i abcd = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
    __m256i half = _mm256_add_epi32(_mm512_castsi512_si256(abcd), _mm512_extracti64x4_epi64(abcd, 1));
    return _mm_add_epi32(_mm256_castsi256_si128(half), _mm256_extracti128_si256(half, 1));
}
static inline void vec_sum4_store(int32_t *out, __m512i a, __m512i b, __m512i c, __m512i d) { _mm_storeu_si128((__m128i *)out, vec_sum4(a, b, c, d)); }
/* 8-, 16- or 32-bit lanes: lo in the low 256 bits, hi in the high 256 bits */
static inline __m512i halves8(char lo, char hi) { return _mm512_inserti64x4(_mm512_set1_epi8(lo), _mm256_set1_epi8(hi), 1); }
static inline __m512i halves16(short lo, short hi) {
    return _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_set1_epi16(lo), _mm512_set1_epi16(hi));
}
static inline __m512i halves32(int lo, int hi) { return _mm512_inserti64x4(_mm512_set1_epi32(lo), _mm256_set1_epi32(hi), 1); }

/* 16 float lanes for float_tile.h: one zmm */
#define ACC __m512
static inline __m512 acc_zero(void) { return _mm512_setzero_ps(); }
static inline __m512 acc_fma(__m512 acc, __m512 w, __m512 x) { return _mm512_fmadd_ps(w, x, acc); }
static inline __m512 load_x(const float *p) { return _mm512_loadu_ps(p); }
/* v loaded once into a register: GCC would fold its load into each FMA that uses it, one load per row of a tile */
#define keep_in_register(v) __asm__("" : "+v"(v))
static inline float acc_sum(__m512 acc) {
    __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}
/* w[r * stride + c] = acc_sum(a[r][c]) * scale for r, c < 4: the 16 sums in acc_sum's order (lanes l + 8, then l + 4,
 * l + 2, l + 1: tl_sum16's), each step halving two vectors into one (45 operations against ~9 a sum alone) */
#define ACC_SUMS4X4
static inline void acc_sums4x4(const __m512 acc[4][4], float scale, float *w, int64_t stride) {
    __m512 b[8], c[4], d[2]; /* sum i: acc[i / 4][i % 4] */
    for (int i = 0; i < 8; i++) { /* lanes 0-7: sum 2i's lanes l + l + 8; 8-15: sum 2i + 1's */
        __m512 x = acc[i / 2][2 * (i % 2)], y = acc[i / 2][2 * (i % 2) + 1];
        b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(3, 2, 3, 2)));
    }
    for (int i = 0; i < 4; i++) /* quarter q: sum 4i + q's lanes l + l + 4 */
        c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    for (int i = 0; i < 2; i++) /* quarter q, elements 0-1: sum 8i + q's l + l + 2; 2-3: sum 8i + 4 + q's */
        d[i] = _mm512_add_ps(_mm512_shuffle_ps(c[2 * i], c[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(c[2 * i], c[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    /* quarter q, element m: sum 4m + q; moved to lane 4m + q (row m, key q), then scaled */
    __m512 f = _mm512_add_ps(_mm512_shuffle_ps(d[0], d[1], _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_ps(d[0], d[1], _MM_SHUFFLE(3, 1, 3, 1)));
    f = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0), f),
                      _mm512_set1_ps(scale));
    _mm_storeu_ps(w, _mm512_castps512_ps128(f));
    _mm_storeu_ps(w + stride, _mm512_extractf32x4_ps(f, 1));
    _mm_storeu_ps(w + 2 * stride, _mm512_extractf32x4_ps(f, 2));
    _mm_storeu_ps(w + 3 * stride, _mm512_extractf32x4_ps(f, 3));
}
/* more of those 16 lanes, for attention_tile.h */
static inline __m512 acc_set1(float x) { return _mm512_set1_ps(x); }
static inline __m512 acc_add(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }
static inline __m512 acc_sub(__m512 a, __m512 b) { return _mm512_sub_ps(a, b); }
static inline __m512 acc_mul(__m512 a, __m512 b) { return _mm512_mul_ps(a, b); }
static inline __m512 acc_max(__m512 a, __m512 b) { return _mm512_max_ps(a, b); }
static inline float acc_max_lanes(__m512 a) { return _mm512_reduce_max_ps(a); }
static inline void acc_store(float *p, __m512 a) { _mm512_storeu_ps(p, a); }
static inline __mmask16 first_lanes(int n) { return (__mmask16)((1u << n) - 1); } /* n < 16 */
static inline __m512 acc_load_n(const float *p, int n) { return _mm512_maskz_loadu_ps(first_lanes(n), p); }
static inline __m512 acc_keep_n(__m512 a, int n) { return _mm512_maskz_mov_ps(first_lanes(n), a); }
/* 2^n for whole n in [-126, 127] */
static inline __m512 acc_exp2i(__m512 n) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
}
/* x >= c ? y : 0 (0 where x is NaN) */
static inline __m512 acc_keep_ge(__m512 y, __m512 x, float c) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(c), _CMP_GE_OQ), y);
}
