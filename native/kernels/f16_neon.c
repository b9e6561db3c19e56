/* f16 weights x f32 activations on ARM64 NEON: fcvtl widens 4 halves to floats exactly. */
#include "kernels.h"
#if defined(__aarch64__)
#include "neon.h"

static inline acc16 load_w(const uint8_t *row, int64_t k) {
    float16x8_t lo = vld1q_f16((const float16_t *)row + k), hi = vld1q_f16((const float16_t *)row + k + 8);
    return (acc16){{vcvt_f32_f16(vget_low_f16(lo)), vcvt_high_f32_f16(lo), vcvt_f32_f16(vget_low_f16(hi)), vcvt_high_f32_f16(hi)}};
}
#define ELEM_BYTES 2
#define FLOAT_KERNEL tl_f16_neon
#include "float_tile.h"
#endif
