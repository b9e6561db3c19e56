/* tq1_0 on ARM64 NEON, 16 values a vector. NEON multiplies bytes mod 256, so t = byte * 3^k is one instruction
 * and digit k = (t * 3) >> 8 = (t >= 86) + (t >= 171). Segments (16 values each):
 *   seg 0-9:   qs[16 (seg % 2) ..] digit seg / 2      values 32k + m
 *   seg 10-14: qs[32:48] digit seg - 10               values 160 + 16k + m
 *   seg 15:    qh[0:4] x4, digits 0, 1, 2, 3 per 4 bytes   values 240 + 4k + m
 * Built at each NEON level: tq1_0_dotprod.c and tq1_0_i8mm.c include this. */
#include <string.h>
#include "kernels.h"
#if defined(__aarch64__)
#include "neon.h"

#define BLOCK_VALUES TL_TQ1_0_VALUES
#define BLOCK_BYTES TL_TQ1_0_BYTES
static inline int8x16_t decode(const uint8_t *block, int seg) {
    static const uint8_t POW3[5] = {1, 3, 9, 27, 81}, QH_POW3[16] = {1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27};
    uint8x16_t src, pow3;
    if (seg < 15) {
        src = vld1q_u8(block + (seg < 10 ? 16 * (seg % 2) : 32));
        pow3 = vdupq_n_u8(POW3[seg < 10 ? seg / 2 : seg - 10]);
    } else {
        uint32_t qh;
        memcpy(&qh, block + 48, 4);
        src = vreinterpretq_u8_u32(vdupq_n_u32(qh));
        pow3 = vld1q_u8(QH_POW3);
    }
    uint8x16_t t = vmulq_u8(src, pow3);
    // each compare gives 0 or -1 per byte
    uint8x16_t minus = vaddq_u8(vcgeq_u8(t, vdupq_n_u8(86)), vcgeq_u8(t, vdupq_n_u8(171)));
    return vnegq_s8(vreinterpretq_s8_u8(minus));
}
#define KERNEL NEON_KERNEL(tq1_0)
#include "ternary_tile.h"
#endif
