/* neon.h - the ARM64 vector primitives of ternary_tile.h and float_tile.h at one of three levels, chosen by the
 * including file before it includes this: NEON_LEVEL 0 (default) baseline Advanced SIMD, every ARMv8-A; 1 dotprod
 * (sdot, ARMv8.2-A and later cores); 2 i8mm (smmla for prefill, ARMv8.6-A). GCC compiles each file for its level
 * while the library stays portable (chosen at run time); clang can only build a level its target already has
 * (kernels.h's TL_NEON_DOTPROD / TL_NEON_I8MM). Every kernel file is compiled on every CPU, so the files that
 * include this are wrapped in #if defined(__aarch64__). */
#ifndef NEON_LEVEL
#define NEON_LEVEL 0
#endif
#if NEON_LEVEL == 1 && !defined(__clang__)
#pragma GCC target("arch=armv8.2-a+dotprod")
#elif NEON_LEVEL == 2 && !defined(__clang__)
#pragma GCC target("arch=armv8.2-a+dotprod+i8mm") /* e.g. Neoverse V1 is ARMv8.4-A with i8mm */
#endif
#include <arm_neon.h>

/* The kernel name of a format at this level: tl_<type>_neon, _dotprod or _i8mm. */
#if NEON_LEVEL == 2
#define NEON_KERNEL(type) tl_##type##_i8mm
#elif NEON_LEVEL == 1
#define NEON_KERNEL(type) tl_##type##_dotprod
#else
#define NEON_KERNEL(type) tl_##type##_neon
#endif

/* Ternary: codes (0..2) and activations as int8 lanes, int32 accumulators. */
#define VEC int8x16_t
#define VEC_ACC int32x4_t
#define VEC_BYTES 16
static inline int32x4_t vec_zero(void) { return vdupq_n_s32(0); }
static inline int8x16_t vec_load(const void *p) { return vld1q_s8((const int8_t *)p); }
static inline void vec_store(void *p, int8x16_t v) { vst1q_s8((int8_t *)p, v); }
static inline int32x4_t vec_dot(int32x4_t acc, int8x16_t codes, int8x16_t x) {
#if NEON_LEVEL >= 1
    return vdotq_s32(acc, codes, x);
#else
    // pairs of int8 products to int16 (|2 * 2 * 128| cannot overflow), then pairs of int16 into int32
    int16x8_t pairs = vmlal_high_s8(vmull_s8(vget_low_s8(codes), vget_low_s8(x)), codes, x);
    return vpadalq_s16(acc, pairs);
#endif
}
static inline int32_t vec_sum(int32x4_t acc) { return vaddvq_s32(acc); }
static inline void vec_sum4_store(int32_t *out, int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
    vst1q_s32(out, vpaddq_s32(vpaddq_s32(a, b), vpaddq_s32(c, d)));
}
/* Codes of a 16-byte vector's bytes shifted right by `shift` (0..6, even), masked to 2 bits. */
static inline int8x16_t codes_at(uint8x16_t bytes, int shift) {
    return vreinterpretq_s8_u8(vandq_u8(vshlq_u8(bytes, vdupq_n_s8((int8_t)-shift)), vdupq_n_u8(3)));
}

#if NEON_LEVEL == 2
/* Many tokens on i8mm: smmla multiplies a 2x8 block of codes (two rows) by an 8x2 block of activations (two
 * tokens) into a 2x2 block of sums, so the code buffer holds rows in pairs, 8 values of one then 8 of the other. */
static inline void store_decoded(int8_t *buf, int row, int64_t cols, int64_t k, int8x16_t codes) {
    int8_t *pair = buf + (row / 2) * 2 * cols + (row % 2) * 8 + 2 * k;
    vst1_s8(pair, vget_low_s8(codes));
    vst1_s8(pair + 16, vget_high_s8(codes));
}
static inline __attribute__((always_inline)) void mmla_tile(const uint8_t *codes, const int8_t *x, int64_t cols, int T,
                                                            int32_t out[4][4]) {
    int32x4_t acc[2][2]; /* [row pair][token pair]: lanes (r, t), (r, t + 1), (r + 1, t), (r + 1, t + 1) */
    for (int p = 0; p < 2; p++)
        for (int q = 0; q < (T + 1) / 2; q++) acc[p][q] = vdupq_n_s32(0);
    for (int64_t k = 0; k < cols; k += 16) {
        int8x16_t a[2][2]; /* [row pair][values k..k+7, k+8..k+15] */
        for (int p = 0; p < 2; p++)
            for (int h = 0; h < 2; h++) a[p][h] = vld1q_s8((const int8_t *)codes + p * 2 * cols + 2 * k + 16 * h);
        for (int q = 0; q < (T + 1) / 2; q++) {
            // two tokens' activations interleaved by 8 (an odd count pairs the last token with itself)
            int64x2_t x0 = vreinterpretq_s64_s8(vld1q_s8(x + 2 * q * cols + k));
            int64x2_t x1 = 2 * q + 1 < T ? vreinterpretq_s64_s8(vld1q_s8(x + (2 * q + 1) * cols + k)) : x0;
            int8x16_t b0 = vreinterpretq_s8_s64(vzip1q_s64(x0, x1)), b1 = vreinterpretq_s8_s64(vzip2q_s64(x0, x1));
            for (int p = 0; p < 2; p++) acc[p][q] = vmmlaq_s32(vmmlaq_s32(acc[p][q], a[p][0], b0), a[p][1], b1);
        }
    }
    for (int p = 0; p < 2; p++)
        for (int q = 0; q < (T + 1) / 2; q++) {
            int32_t s[4];
            vst1q_s32(s, acc[p][q]);
            out[2 * q][2 * p] = s[0], out[2 * q][2 * p + 1] = s[2];
            if (2 * q + 1 < T) out[2 * q + 1][2 * p] = s[1], out[2 * q + 1][2 * p + 1] = s[3];
        }
}
#define DECODED_TILE mmla_tile
#endif

/* Float: 16 lanes in four float32x4 (lanes 0-3, 4-7, 8-11, 12-15), summed l + 8, l + 4, l + 2, l + 1. A 2 x 2 tile
 * keeps its 16 accumulator registers, 8 of weights and 4 of activations within the 32 (4 x 4 would spill). */
#define FTILE_ROWS 2
#define FTILE_TOKENS 2
typedef struct { float32x4_t v[4]; } acc16;
#define ACC acc16
static inline acc16 acc_zero(void) { return (acc16){{vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)}}; }
static inline acc16 acc_fma(acc16 acc, acc16 w, acc16 x) {
    for (int i = 0; i < 4; i++) acc.v[i] = vfmaq_f32(acc.v[i], w.v[i], x.v[i]);
    return acc;
}
static inline acc16 load_x(const float *p) { return (acc16){{vld1q_f32(p), vld1q_f32(p + 4), vld1q_f32(p + 8), vld1q_f32(p + 12)}}; }
static inline float acc_sum(acc16 acc) {
    float32x4_t s4 = vaddq_f32(vaddq_f32(acc.v[0], acc.v[2]), vaddq_f32(acc.v[1], acc.v[3]));
    float32x2_t s2 = vadd_f32(vget_low_f32(s4), vget_high_f32(s4));
    return vget_lane_f32(s2, 0) + vget_lane_f32(s2, 1);
}
