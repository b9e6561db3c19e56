/* f32 weights x f32 activations on ARM64 NEON, in the canonical order of float_tile.h. */
#include "kernels.h"
#if defined(__aarch64__)
#include "neon.h"

static inline acc16 load_w(const uint8_t *row, int64_t k) { return load_x((const float *)row + k); }
#define ELEM_BYTES 4
#define FLOAT_KERNEL tl_f32_neon
#include "float_tile.h"
#endif
