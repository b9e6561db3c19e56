/* q4_k on ARM64 NEON: per 32-value sub-block, value = (d * scale) * q - dmin * min with the reference's roundings
 * (its scales from the reference's tl_q4_k_sub_block); then block_tile.h's dot. */
#include "kernels.h"
#if defined(__aarch64__)
#include "neon.h"

static inline void unpack(const uint8_t *block, float *values) {
    const uint8_t *qs = block + 16;
    for (int j = 0; j < 8; j++) { /* sub-blocks of 32: pair j/2 of 32 bytes, low nibbles then high */
        float dl, ml;
        tl_q4_k_sub_block(block, j, &dl, &ml);
        for (int half = 0; half < 2; half++) {
            uint8x16_t q = vandq_u8(vshlq_u8(vld1q_u8(qs + j / 2 * 32 + 16 * half), vdupq_n_s8((int8_t)(-4 * (j % 2)))), vdupq_n_u8(15));
            uint16x8_t q0 = vmovl_u8(vget_low_u8(q)), q1 = vmovl_high_u8(q);
            uint32x4_t parts[4] = {vmovl_u16(vget_low_u16(q0)), vmovl_high_u16(q0), vmovl_u16(vget_low_u16(q1)), vmovl_high_u16(q1)};
            for (int i = 0; i < 4; i++)
                vst1q_f32(values + 32 * j + 16 * half + 4 * i, vsubq_f32(vmulq_n_f32(vcvtq_f32_u32(parts[i]), dl), vdupq_n_f32(ml)));
        }
    }
}
#define BT_BLOCK_VALUES TL_QK_K
#define BT_BLOCK_BYTES TL_Q4_K_BYTES
#define BT_KERNEL tl_q4_k_neon
#include "block_tile.h"
#endif
