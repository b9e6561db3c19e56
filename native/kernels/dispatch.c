/* The kernel tables per ISA and the run-time choice between them. */
#define _DEFAULT_SOURCE /* syscall */
#include <stdlib.h>
#include <string.h>
#include "kernels.h"
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#elif defined(__aarch64__) && defined(__APPLE__)
#include <sys/sysctl.h>
#elif defined(__x86_64__) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

static const tl_kernels ref = {"ref", tl_tq1_0_ref, tl_tq2_0_ref, tl_i2_s_ref,
                               tl_tq1_0_ref_rows, tl_tq2_0_ref_rows, tl_i2_s_ref_rows,
                               tl_f32_ref, tl_f16_ref, tl_bf16_ref, tl_q8_0_ref, tl_q4_k_ref, tl_q6_k_ref,
                               tl_int4_ref, tl_sparse_ref, tl_attention_ref, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0,
                               tl_kv_f32_to_f16_ref, tl_kv_f16_to_f32_ref, NULL};
#if defined(__x86_64__)
/* AVX2's table, i2_s and tq2_0 on AVX2's dot or AVX-VNNI's (tq1_0's kernel has a dot of its own; every ternary type is
 * read as i2_s here unless a file's layout is kept, cfg.keep_file_layout) */
#define AVX2_KERNELS(isa) tl_tq1_0_avx2, tl_tq2_0_##isa, tl_i2_s_##isa, tl_tq1_0_avx2_rows, tl_tq2_0_##isa##_rows, tl_i2_s_##isa##_rows, \
                          tl_f32_ref, tl_f16_ref, tl_bf16_avx2, tl_q8_0_avx2, tl_q4_k_avx2, tl_q6_k_avx2, \
                          tl_int4_avx2, tl_sparse_avx2, tl_attention_avx2, NULL, NULL, NULL, NULL, \
                          tl_i2_s_r4_##isa, tl_i2_s_r4_##isa##_rows, NULL, NULL, 1, \
                          tl_kv_f32_to_f16_avx2, tl_kv_f16_to_f32_avx2, tl_attention_f16_avx2
static const tl_kernels avx2 = {"avx2", AVX2_KERNELS(avx2)};
static const tl_kernels avxvnni = {"avxvnni", AVX2_KERNELS(avxvnni)};
#define AVX512_KERNELS(i2_s) tl_tq1_0_avx512, tl_tq2_0_avx512, i2_s, \
                             tl_tq1_0_avx512_rows, tl_tq2_0_avx512_rows, tl_i2_s_avx512_rows, \
                             tl_f32_ref, tl_f16_ref, tl_bf16_avx512, tl_q8_0_avx512, tl_q4_k_avx512, tl_q6_k_avx512, \
                             tl_int4_avx512, tl_sparse_avx512, tl_attention_avx512
static const tl_kernels avx512 = {"avx512", AVX512_KERNELS(tl_i2_s_avx512), NULL, NULL, NULL, NULL, tl_i2_s_r4_avx512,
                                  tl_i2_s_r4_avx512_rows, NULL, NULL, 0, tl_kv_f32_to_f16_avx512,
                                  tl_kv_f16_to_f32_avx512, tl_attention_f16_avx512};
/* VBMI's byte permutes decode tq1_0 and bf16 repacked into their lookup layouts (tq1_0_lut_ref.c, bf16_lut_ref.c) */
#define VBMI_KERNELS(i2_s_r4) tl_tq1_0_lut_vbmi, tl_tq1_0_lut_vbmi_rows, tl_tq1_0_lut_vbmi_pack, tl_bf16_lut_vbmi, i2_s_r4, \
                              tl_i2_s_r4_avx512_rows, tl_tq1_0_lut_r4_vbmi, tl_tq1_0_lut_r4_vbmi_rows, 0, \
                              tl_kv_f32_to_f16_avx512, tl_kv_f16_to_f32_avx512, tl_attention_f16_avx512
static const tl_kernels avx512vbmi = {"avx512vbmi", AVX512_KERNELS(tl_i2_s_avx512), VBMI_KERNELS(tl_i2_s_r4_avx512)};
#if defined(__linux__)
/* AMX's tiles run i2_s (and tq2_0, read as i2_s) for 5 tokens and more; fewer through AVX-512 */
static const tl_kernels amx = {"amx", AVX512_KERNELS(tl_i2_s_amx), VBMI_KERNELS(tl_i2_s_r4_amx)};

/* AMX-TILE and AMX-INT8 (CPUID 7: EDX bits 24, 25), the OS saving tile state (XCR0 bits 17, 18) and Linux granting this
 * process the tile data (arch_prctl ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA: asked once, kept). */
static int amx_usable(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || (d & 3u << 24) != 3u << 24) return 0;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & 1u << 27)) return 0; /* OSXSAVE: xgetbv works */
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 3u << 17) == 3u << 17 && syscall(SYS_arch_prctl, 0x1023, 18) == 0;
}
#endif

static int cpu_has(const tl_kernels *k) {
    __builtin_cpu_init();
    if (k == &avx512 || k == &avx512vbmi)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl") &&
               (k == &avx512 || __builtin_cpu_supports("avx512vbmi"));
#if defined(__linux__)
    if (k == &amx) return cpu_has(&avx512vbmi) && __builtin_cpu_supports("gfni") && amx_usable(); /* GFNI: its decode */
#endif
    if (k == &avxvnni) return cpu_has(&avx2) && __builtin_cpu_supports("avxvnni");
    if (k == &avx2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    return 1;
}
static const tl_kernels *const tables[] = { /* fastest first */
#if defined(__linux__)
    &amx,
#endif
    &avx512vbmi, &avx512, &avxvnni, &avx2, &ref};
#elif defined(__aarch64__)
/* NEON is part of every ARMv8-A core; dotprod and i8mm are optional extensions, each level adding one. */
static const tl_kernels neon = {"neon", tl_tq1_0_neon, tl_tq2_0_neon, tl_i2_s_neon,
                                tl_tq1_0_neon_rows, tl_tq2_0_neon_rows, tl_i2_s_neon_rows,
                                tl_f32_neon, tl_f16_neon, tl_bf16_neon, tl_q8_0_neon, tl_q4_k_neon, tl_q6_k_neon,
                                tl_int4_ref, tl_sparse_ref, tl_attention_ref, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0,
                                tl_kv_f32_to_f16_ref, tl_kv_f16_to_f32_ref, NULL};
#ifdef TL_NEON_DOTPROD
static const tl_kernels dotprod = {"dotprod", tl_tq1_0_dotprod, tl_tq2_0_dotprod, tl_i2_s_dotprod,
                                   tl_tq1_0_dotprod_rows, tl_tq2_0_dotprod_rows, tl_i2_s_dotprod_rows,
                                   tl_f32_neon, tl_f16_neon, tl_bf16_neon, tl_q8_0_neon, tl_q4_k_neon, tl_q6_k_neon,
                                   tl_int4_ref, tl_sparse_ref, tl_attention_ref, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0,
                                   tl_kv_f32_to_f16_ref, tl_kv_f16_to_f32_ref, NULL};
#endif
#ifdef TL_NEON_I8MM
static const tl_kernels i8mm = {"i8mm", tl_tq1_0_i8mm, tl_tq2_0_i8mm, tl_i2_s_i8mm,
                                tl_tq1_0_i8mm_rows, tl_tq2_0_i8mm_rows, tl_i2_s_i8mm_rows,
                                tl_f32_neon, tl_f16_neon, tl_bf16_neon, tl_q8_0_neon, tl_q4_k_neon, tl_q6_k_neon,
                                tl_int4_ref, tl_sparse_ref, tl_attention_ref, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0,
                                tl_kv_f32_to_f16_ref, tl_kv_f16_to_f32_ref, NULL};
#endif

/* Whether the CPU has an optional feature: the kernel's HWCAP bits on Linux, sysctl on macOS. */
enum { FEAT_DOTPROD, FEAT_I8MM };
static int cpu_feature(int feature) {
#if defined(__linux__)
    return feature == FEAT_DOTPROD ? !!(getauxval(AT_HWCAP) & (1ul << 20))    /* HWCAP_ASIMDDP */
                                   : !!(getauxval(AT_HWCAP2) & (1ul << 13));  /* HWCAP2_I8MM */
#elif defined(__APPLE__)
    int on = 0;
    size_t len = sizeof on;
    const char *name = feature == FEAT_DOTPROD ? "hw.optional.arm.FEAT_DotProd" : "hw.optional.arm.FEAT_I8MM";
    return sysctlbyname(name, &on, &len, NULL, 0) == 0 && on;
#else
    (void)feature;
    return 0;
#endif
}

static int cpu_has(const tl_kernels *k) {
    if (strcmp(k->isa, "i8mm") == 0) return cpu_feature(FEAT_DOTPROD) && cpu_feature(FEAT_I8MM);
    if (strcmp(k->isa, "dotprod") == 0) return cpu_feature(FEAT_DOTPROD);
    return 1;
}
static const tl_kernels *const tables[] = { /* fastest first */
#ifdef TL_NEON_I8MM
    &i8mm,
#endif
#ifdef TL_NEON_DOTPROD
    &dotprod,
#endif
    &neon, &ref};
#else
static int cpu_has(const tl_kernels *k) { (void)k; return 1; }
static const tl_kernels *const tables[] = {&ref};
#endif
enum { N_TABLES = sizeof(tables) / sizeof(tables[0]) };

const char *tl_kernels_name(int32_t i) { return i >= 0 && i < N_TABLES ? tables[i]->isa : NULL; }

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
    case TL_BF16_LUT: return k->bf16_lut;
    default: return NULL;
    }
}

/* Each type the engine reads: its name as tritlm/formats.py spells it, and its blocks (a float type's block is one
 * value). */
static const struct { const char *name; int64_t values, bytes; } TYPES[TL_TYPE_ID_END] = {
    [TL_F32] = {"f32", 1, 4},
    [TL_F16] = {"f16", 1, 2},
    [TL_BF16] = {"bf16", 1, 2},
    [TL_Q8_0] = {"q8_0", TL_Q8_0_VALUES, TL_Q8_0_BYTES},
    [TL_Q4_K] = {"q4_k", TL_Q4_K_VALUES, TL_Q4_K_BYTES},
    [TL_Q6_K] = {"q6_k", TL_Q6_K_VALUES, TL_Q6_K_BYTES},
    [TL_TQ1_0] = {"tq1_0", TL_TQ1_0_VALUES, TL_TQ1_0_BYTES},
    [TL_TQ2_0] = {"tq2_0", TL_TQ2_0_VALUES, TL_TQ2_0_BYTES},
    [TL_I2_S] = {"i2_s", TL_I2_S_VALUES, TL_I2_S_BYTES},
};

const char *tl_type_name(int32_t type) { return type >= 0 && type < TL_TYPE_ID_END ? TYPES[type].name : NULL; }

int64_t tl_block_values(int32_t type) { return tl_type_name(type) ? TYPES[type].values : 0; }

int64_t tl_row_bytes(int32_t type, int64_t cols) {
    if (type == TL_TQ1_0_LUT || type == TL_TQ1_0_LUT_R4) /* repacked from tq1_0 (rows, or grouped) */
        return tl_row_bytes(TL_TQ1_0, cols) ? tl_tq1_0_lut_row_bytes(cols) : 0;
    if (type == TL_BF16_LUT) return tl_bf16_lut_row_bytes(cols); /* repacked from bf16 */
    if (type == TL_I2_S_R4) return tl_row_bytes(TL_I2_S, cols); /* i2_s's rows, grouped */
    int64_t values = tl_block_values(type);
    return values && cols % values == 0 ? cols / values * TYPES[type].bytes : 0;
}
