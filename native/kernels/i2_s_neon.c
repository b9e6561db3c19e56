/* i2_s on ARM64 NEON, 16 values a vector: bytes 16h .. 16h+15 of the 32-byte block shifted right by 6 - 2n give
 * the codes of values 32n + 16h .. +16. Built at each NEON level: i2_s_dotprod.c and i2_s_i8mm.c include this. */
#include "kernels.h"
#if defined(__aarch64__)
#include "neon.h"

#define BLOCK_VALUES TL_I2_S_VALUES
#define BLOCK_BYTES TL_I2_S_BYTES
static inline int8x16_t decode(const uint8_t *block, int seg) {
    return codes_at(vld1q_u8(block + 16 * (seg % 2)), 6 - 2 * (seg / 2));
}
#define KERNEL NEON_KERNEL(i2_s)
#include "ternary_tile.h"
#endif
