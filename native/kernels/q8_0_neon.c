/* q8_0 on ARM64 NEON, in the reference's order: per block, lanes sum q * x over its 32 values (two a lane, FMAs
 * from zero), then add d * partial. unpack() widens the 32 int8 to floats (exact) and puts d after them. */
#include <string.h>
#include "kernels.h"
#if defined(__aarch64__)
#include "neon.h"

static inline void unpack(const uint8_t *block, float *values) {
    for (int h = 0; h < 2; h++) {
        int8x16_t q = vld1q_s8((const int8_t *)block + 2 + 16 * h);
        int16x8_t q0 = vmovl_s8(vget_low_s8(q)), q1 = vmovl_high_s8(q);
        vst1q_f32(values + 16 * h, vcvtq_f32_s32(vmovl_s16(vget_low_s16(q0))));
        vst1q_f32(values + 16 * h + 4, vcvtq_f32_s32(vmovl_high_s16(q0)));
        vst1q_f32(values + 16 * h + 8, vcvtq_f32_s32(vmovl_s16(vget_low_s16(q1))));
        vst1q_f32(values + 16 * h + 12, vcvtq_f32_s32(vmovl_high_s16(q1)));
    }
    uint16_t d;
    memcpy(&d, block, 2);
    values[TL_Q8_0_VALUES] = tl_f16_to_f32(d);
}

static inline acc16 block_dot(acc16 acc, const float *values, const float *x) {
    acc16 part = acc_fma(acc_zero(), load_x(values), load_x(x));
    part = acc_fma(part, load_x(values + 16), load_x(x + 16));
    float32x4_t d = vdupq_n_f32(values[TL_Q8_0_VALUES]);
    return acc_fma(acc, (acc16){{d, d, d, d}}, part);
}
#define BLOCK_DOT
#define BT_BLOCK_VALUES TL_Q8_0_VALUES
#define BT_BLOCK_BYTES TL_Q8_0_BYTES
#define BT_KERNEL tl_q8_0_neon
#include "block_tile.h"
#endif
