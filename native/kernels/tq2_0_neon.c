/* tq2_0 on ARM64 NEON, 16 values a vector: bytes 16h .. 16h+15 of 32-byte chunk c shifted right by 2n give the
 * codes of values 128c + 32n + 16h .. +16. Built at each NEON level: tq2_0_dotprod.c and tq2_0_i8mm.c include this. */
#include "kernels.h"
#if defined(__aarch64__)
#include "neon.h"

#define BLOCK_VALUES TL_TQ2_0_VALUES
#define BLOCK_BYTES TL_TQ2_0_BYTES
static inline int8x16_t decode(const uint8_t *block, int seg) {
    return codes_at(vld1q_u8(block + 32 * (seg / 8) + 16 * (seg % 2)), 2 * (seg % 8 / 2));
}
#define KERNEL NEON_KERNEL(tq2_0)
#include "ternary_tile.h"
#endif
