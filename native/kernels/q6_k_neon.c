/* q6_k on ARM64 NEON: 16 values at a time, q = (ql nibble | qh pair << 4) - 32 and value = (d * scale) * q with
 * the reference's two roundings; then block_tile.h's dot. Values 128h + 16j .. +16 (j < 8) take ql bytes
 * 64h + 16 (j % 4) >> 4 (j / 4), qh bytes 32h + 16 (j % 2) >> 2 (j / 2), and sub-block scale 8h + j. */
#include <string.h>
#include "kernels.h"
#if defined(__aarch64__)
#include "neon.h"

static inline void unpack(const uint8_t *block, float *values) {
    const uint8_t *ql = block, *qh = block + 128;
    const int8_t *scales = (const int8_t *)(block + 192);
    uint16_t h;
    memcpy(&h, block + 208, 2);
    float d = tl_f16_to_f32(h);
    for (int half = 0; half < 2; half++)
        for (int j = 0; j < 8; j++) {
            uint8x16_t low = vandq_u8(vshlq_u8(vld1q_u8(ql + 64 * half + 16 * (j % 4)), vdupq_n_s8((int8_t)(-4 * (j / 4)))), vdupq_n_u8(15));
            uint8x16_t high = vandq_u8(vshlq_u8(vld1q_u8(qh + 32 * half + 16 * (j % 2)), vdupq_n_s8((int8_t)(-2 * (j / 2)))), vdupq_n_u8(3));
            int8x16_t q = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(low, vshlq_n_u8(high, 4))), vdupq_n_s8(32));
            float ds = d * (float)scales[8 * half + j];
            int16x8_t q0 = vmovl_s8(vget_low_s8(q)), q1 = vmovl_high_s8(q);
            float *out = values + 128 * half + 16 * j;
            vst1q_f32(out, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(q0))), ds));
            vst1q_f32(out + 4, vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(q0)), ds));
            vst1q_f32(out + 8, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(q1))), ds));
            vst1q_f32(out + 12, vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(q1)), ds));
        }
}
#define BT_BLOCK_VALUES TL_QK_K
#define BT_BLOCK_BYTES TL_Q6_K_BYTES
#define BT_KERNEL tl_q6_k_neon
#include "block_tile.h"
#endif
