/* The kernel tables per ISA and the run-time choice between them (an ARM NEON table would go here too). */
#include <stdlib.h>
#include <string.h>
#include "kernels.h"

static const tl_kernels ref = {"ref", tl_tq1_0_ref, tl_tq2_0_ref, tl_i2_s_ref,
                               tl_f32_ref, tl_f16_ref, tl_bf16_ref, tl_q8_0_ref, tl_q4_k_ref, tl_q6_k_ref};
#if defined(__x86_64__)
static const tl_kernels avx2 = {"avx2", tl_tq1_0_avx2, tl_tq2_0_avx2, tl_i2_s_avx2,
                                tl_f32_ref, tl_f16_ref, tl_bf16_avx2, tl_q8_0_ref, tl_q4_k_ref, tl_q6_k_ref};
static const tl_kernels avx512 = {"avx512", tl_tq1_0_avx512, tl_tq2_0_avx512, tl_i2_s_avx512,
                                  tl_f32_ref, tl_f16_ref, tl_bf16_avx512, tl_q8_0_ref, tl_q4_k_ref, tl_q6_k_ref};

static int cpu_has(const tl_kernels *k) {
    __builtin_cpu_init();
    if (k == &avx512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl");
    if (k == &avx2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    return 1;
}
static const tl_kernels *const tables[] = {&avx512, &avx2, &ref}; /* fastest first */
#else
static int cpu_has(const tl_kernels *k) { (void)k; return 1; }
static const tl_kernels *const tables[] = {&ref};
#endif
enum { N_TABLES = sizeof(tables) / sizeof(tables[0]) };

const tl_kernels *tl_kernels_named(const char *isa) {
    for (int i = 0; i < N_TABLES; i++)
        if (strcmp(tables[i]->isa, isa) == 0) return cpu_has(tables[i]) ? tables[i] : NULL;
    return NULL;
}

const tl_kernels *tl_kernels_best(void) {
    const char *forced = getenv("TRITLM_ISA");
    int at_or_below = forced == NULL; /* a forced ISA only lowers the choice: tables are fastest first */
    for (int i = 0; i < N_TABLES; i++) {
        if (!at_or_below && strcmp(tables[i]->isa, forced) == 0) at_or_below = 1;
        if (at_or_below && cpu_has(tables[i])) return tables[i];
    }
    return tables[N_TABLES - 1]; /* unknown name: the portable reference */
}

tl_float_fn *tl_float_kernel(const tl_kernels *k, int32_t type) {
    switch (type) {
    case TL_F32: return k->f32;
    case TL_F16: return k->f16;
    case TL_BF16: return k->bf16;
    case TL_Q8_0: return k->q8_0;
    case TL_Q4_K: return k->q4_k;
    case TL_Q6_K: return k->q6_k;
    default: return NULL;
    }
}

/* Bytes of cols values in blocks of block_values (0 unless a whole number of blocks). */
static int64_t blocks_bytes(int64_t cols, int64_t block_values, int64_t block_bytes) {
    return cols % block_values ? 0 : cols / block_values * block_bytes;
}

int64_t tl_row_bytes(int32_t type, int64_t cols) {
    switch (type) {
    case TL_F32: return 4 * cols;
    case TL_F16: case TL_BF16: return 2 * cols;
    case TL_Q8_0: return blocks_bytes(cols, TL_Q8_0_VALUES, TL_Q8_0_BYTES);
    case TL_Q4_K: return blocks_bytes(cols, TL_Q4_K_VALUES, TL_Q4_K_BYTES);
    case TL_Q6_K: return blocks_bytes(cols, TL_Q6_K_VALUES, TL_Q6_K_BYTES);
    case TL_TQ1_0: return blocks_bytes(cols, TL_TQ1_0_VALUES, TL_TQ1_0_BYTES);
    case TL_TQ2_0: return blocks_bytes(cols, TL_TQ2_0_VALUES, TL_TQ2_0_BYTES);
    case TL_I2_S: return blocks_bytes(cols, TL_I2_S_VALUES, TL_I2_S_BYTES);
    default: return 0;
    }
}
