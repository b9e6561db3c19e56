/* Q4_K weights x f32 activations on AVX2: a block's nibbles split 32 at a time, widened to f32 8 at a time
 * and mapped to (d * scale) * q - dmin * min as the reference (no fused multiply-add: it rounds once). */
#include "kernels.h"
#if defined(__x86_64__)
#include "avx2.h"

/* 8 codes (the low 8 bytes of q) to f32 values of a sub-block */
static inline __m256 values8(__m128i q, __m256 dl, __m256 ml) {
    return _mm256_sub_ps(_mm256_mul_ps(dl, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(q))), ml);
}

static inline void unpack(const uint8_t *block, float *values) {
    float d = _cvtsh_ss(load_u16(block)), dmin = _cvtsh_ss(load_u16(block + 2));
    __m256i nib = _mm256_set1_epi8(15);
    for (int p = 0; p < 4; p++) { /* 32 bytes: sub-blocks 2p (low nibbles), 2p + 1 (high nibbles) */
        __m256i b = _mm256_loadu_si256((const __m256i *)(block + 16 + 32 * p));
        __m256i q[2] = {_mm256_and_si256(b, nib), _mm256_and_si256(_mm256_srli_epi16(b, 4), nib)};
        for (int n = 0; n < 2; n++) {
            int j = 2 * p + n;
            int scale, min; /* the reference's d * scale and dmin * min (tl_q4_k_sub_block), inline */
            tl_q4_k_scale_min(block + 4, j, &scale, &min);
            __m256 dl = _mm256_set1_ps(d * (float)scale), ml = _mm256_set1_ps(dmin * (float)min);
            __m128i lo = _mm256_castsi256_si128(q[n]), hi = _mm256_extracti128_si256(q[n], 1);
            float *v = values + 32 * j;
            _mm256_store_ps(v, values8(lo, dl, ml));
            _mm256_store_ps(v + 8, values8(_mm_unpackhi_epi64(lo, lo), dl, ml));
            _mm256_store_ps(v + 16, values8(hi, dl, ml));
            _mm256_store_ps(v + 24, values8(_mm_unpackhi_epi64(hi, hi), dl, ml));
        }
    }
}
#define FTILE_ROWS 2 /* 16 ymm registers: 4 rows x 2 ymm of accumulators and values would spill */
#define BT_BLOCK_VALUES TL_QK_K
#define BT_BLOCK_BYTES TL_Q4_K_BYTES
#define BT_KERNEL tl_q4_k_avx2
#include "block_tile.h"
#endif
