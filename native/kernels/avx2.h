/* avx2.h - the AVX2 vector primitives of ternary_tile.h; every function in a file that includes this is
 * compiled for that ISA while the library stays portable (chosen at run time). Every kernel file is compiled on
 * every CPU, so the files that include this are wrapped in #if defined(__x86_64__). */
#include <immintrin.h>
#pragma GCC target("avx2,fma,f16c")

#define VEC __m256i
#define VEC_ACC __m256i
#define VEC_BYTES 32
static inline __m256i vec_zero(void) { return _mm256_setzero_si256(); }
static inline __m256i vec_load(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
static inline void vec_store(void *p, __m256i v) { _mm256_storeu_si256((__m256i *)p, v); }
#ifdef AVX_VNNI
/* AVX-VNNI (the VEX form of AVX-512 VNNI's 4-byte dot, on Intel cores from Alder Lake and AMD's from Zen 5): the dot goes
 * straight into int32 lanes, one instruction per dot where AVX2 takes two and a widening per block. With 16 registers a
 * pass of a tile's rows keeps 8 accumulators (2 rows x 4 tokens) beside its codes and activations (x86 Zen 5, prefill
 * in cache: 4 ran 0.87x as fast, 12 0.95x, 16 spilled, 0.72x). */
#pragma GCC target("avxvnni")
/* in asm, as on AVX-512 (avx512.h): through the intrinsic GCC 12 copied each accumulator around the dot (prefill in
 * cache 0.9-0.95x as fast); {vex} keeps the assembler off AVX-512's EVEX form, which a CPU without AVX-512 faults on */
static inline __m256i vec_dot(__m256i acc, __m256i codes, __m256i x) {
    __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(codes), "xm"(x));
    return acc;
}
#define TILE_PASS_CELLS 8
#else
/* No 4-byte dot (VNNI): u8 x s8 pairs summed into int16 lanes over a block (|3 * 2 * 128| a pair, at most 8
 * segments a block: |part| <= 6144, no saturation or overflow), then widened to int32 once per block: one
 * multiply per dot instead of two (x86 Zen 5: prefill 1.45x). A pass of a tile's rows keeps 4 partials in registers
 * (TILE_PASS_CELLS; 4-6 ran fastest, 8 6% slower, 16 spilled). */
#define VEC_PART __m256i
static inline __m256i part_begin(__m256i acc) { (void)acc; return _mm256_setzero_si256(); }
static inline __m256i part_dot(__m256i part, __m256i codes, __m256i x) {
    part = _mm256_add_epi16(part, _mm256_maddubs_epi16(codes, x));
    __asm__("" : "+x"(part)); /* keeps the sums in order: GCC would make a tree of them, with every product live (spilled) */
    return part;
}
static inline __m256i part_end(__m256i acc, __m256i part) { return _mm256_add_epi32(acc, _mm256_madd_epi16(part, _mm256_set1_epi16(1))); }
#define TILE_PASS_CELLS 4
#endif
static inline int32_t vec_sum(__m256i acc) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* [sum(a), sum(b), sum(c), sum(d)]: rows interleaved and added until each 128-bit lane holds all four */
static inline __m128i vec_sum4(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i ab = _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
    __m256i cd = _mm256_add_epi32(_mm256_unpacklo_epi32(c, d), _mm256_unpackhi_epi32(c, d));
    __m256i abcd = _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
    return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}
static inline void vec_sum4_store(int32_t *out, __m256i a, __m256i b, __m256i c, __m256i d) { _mm_storeu_si128((__m128i *)out, vec_sum4(a, b, c, d)); }

/* 16 float lanes for float_tile.h: two ymm (lanes 0-7, 8-15) */
typedef struct { __m256 lo, hi; } acc16;
#define ACC acc16
static inline acc16 acc_zero(void) { return (acc16){_mm256_setzero_ps(), _mm256_setzero_ps()}; }
static inline acc16 acc_fma(acc16 acc, acc16 w, acc16 x) {
    return (acc16){_mm256_fmadd_ps(w.lo, x.lo, acc.lo), _mm256_fmadd_ps(w.hi, x.hi, acc.hi)};
}
static inline acc16 load_x(const float *p) { return (acc16){_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
static inline float acc_sum(acc16 acc) {
    __m256 s8 = _mm256_add_ps(acc.lo, acc.hi);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}
/* more of those 16 lanes, for attention_tile.h */
static inline acc16 acc_set1(float x) { return (acc16){_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
static inline acc16 acc_add(acc16 a, acc16 b) { return (acc16){_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
static inline acc16 acc_sub(acc16 a, acc16 b) { return (acc16){_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)}; }
static inline acc16 acc_mul(acc16 a, acc16 b) { return (acc16){_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
static inline acc16 acc_max(acc16 a, acc16 b) { return (acc16){_mm256_max_ps(a.lo, b.lo), _mm256_max_ps(a.hi, b.hi)}; }
static inline float acc_max_lanes(acc16 a) {
    __m256 m8 = _mm256_max_ps(a.lo, a.hi);
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    return _mm_cvtss_f32(_mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1)));
}
static inline void acc_store(float *p, acc16 a) { _mm256_storeu_ps(p, a.lo), _mm256_storeu_ps(p + 8, a.hi); }
/* all-ones in lanes < n (n < 16), for a masked load or a blend */
static inline acc16 first_lanes(int n) {
    __m256i at = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), nn = _mm256_set1_epi32(n);
    return (acc16){_mm256_castsi256_ps(_mm256_cmpgt_epi32(nn, at)),
                   _mm256_castsi256_ps(_mm256_cmpgt_epi32(nn, _mm256_add_epi32(at, _mm256_set1_epi32(8))))};
}
static inline acc16 acc_load_n(const float *p, int n) {
    acc16 m = first_lanes(n);
    return (acc16){_mm256_maskload_ps(p, _mm256_castps_si256(m.lo)), _mm256_maskload_ps(p + 8, _mm256_castps_si256(m.hi))};
}
static inline acc16 acc_keep_n(acc16 a, int n) {
    acc16 m = first_lanes(n);
    return (acc16){_mm256_and_ps(a.lo, m.lo), _mm256_and_ps(a.hi, m.hi)};
}
/* 2^n for whole n in [-126, 127] */
static inline __m256 exp2i8(__m256 n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
}
static inline acc16 acc_exp2i(acc16 n) { return (acc16){exp2i8(n.lo), exp2i8(n.hi)}; }
/* x >= c ? y : 0 (0 where x is NaN) */
static inline acc16 acc_keep_ge(acc16 y, acc16 x, float c) {
    __m256 cc = _mm256_set1_ps(c);
    return (acc16){_mm256_and_ps(y.lo, _mm256_cmp_ps(x.lo, cc, _CMP_GE_OQ)), _mm256_and_ps(y.hi, _mm256_cmp_ps(x.hi, cc, _CMP_GE_OQ))};
}
