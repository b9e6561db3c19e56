/* bf16 weights x f32 activations on ARM64 NEON: a bf16 is the top half of an f32, so widen by shifting 16 left. */
#include "kernels.h"
#if defined(__aarch64__)
#include "neon.h"

static inline acc16 load_w(const uint8_t *row, int64_t k) {
    uint16x8_t lo = vld1q_u16((const uint16_t *)row + k), hi = vld1q_u16((const uint16_t *)row + k + 8);
    return (acc16){{vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(lo), 16)), vreinterpretq_f32_u32(vshll_high_n_u16(lo, 16)),
                    vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(hi), 16)), vreinterpretq_f32_u32(vshll_high_n_u16(hi, 16))}};
}
#define ELEM_BYTES 2
#define FLOAT_KERNEL tl_bf16_neon
#include "float_tile.h"
#endif
