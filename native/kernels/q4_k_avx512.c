/* Q4_K weights x f32 activations on AVX-512: a block's nibbles split 64 at a time, widened to f32 16 at a
 * time and mapped to (d * scale) * q - dmin * min as the reference (no fused multiply-add: it rounds once). */
#include "kernels.h"
#if defined(__x86_64__)
#include "avx512.h"

/* 16 codes (one 128-bit lane of q) to f32 values of a sub-block */
#define VALUES(q, lane, dl, ml) \
    _mm512_sub_ps(_mm512_mul_ps(dl, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(q, lane)))), ml)

static inline void unpack(const uint8_t *block, float *values) {
    float d = _cvtsh_ss(load_u16(block)), dmin = _cvtsh_ss(load_u16(block + 2));
    __m512 dl[8], ml[8];
    for (int j = 0; j < 8; j++) { /* the reference's d * scale and dmin * min (tl_q4_k_sub_block), inline */
        int scale, min;
        tl_q4_k_scale_min(block + 4, j, &scale, &min);
        dl[j] = _mm512_set1_ps(d * (float)scale), ml[j] = _mm512_set1_ps(dmin * (float)min);
    }
    __m512i nib = _mm512_set1_epi8(15);
    for (int p = 0; p < 2; p++) { /* 64 bytes: sub-blocks 4p (low nibbles of bytes 0-31), 4p+1 (high), 4p+2, 4p+3 */
        __m512i b = _mm512_loadu_si512(block + 16 + 64 * p);
        __m512i lo = _mm512_and_si512(b, nib), hi = _mm512_and_si512(_mm512_srli_epi16(b, 4), nib);
        float *v = values + 128 * p;
        int j = 4 * p;
        _mm512_store_ps(v + 0, VALUES(lo, 0, dl[j], ml[j]));
        _mm512_store_ps(v + 16, VALUES(lo, 1, dl[j], ml[j]));
        _mm512_store_ps(v + 32, VALUES(hi, 0, dl[j + 1], ml[j + 1]));
        _mm512_store_ps(v + 48, VALUES(hi, 1, dl[j + 1], ml[j + 1]));
        _mm512_store_ps(v + 64, VALUES(lo, 2, dl[j + 2], ml[j + 2]));
        _mm512_store_ps(v + 80, VALUES(lo, 3, dl[j + 2], ml[j + 2]));
        _mm512_store_ps(v + 96, VALUES(hi, 2, dl[j + 3], ml[j + 3]));
        _mm512_store_ps(v + 112, VALUES(hi, 3, dl[j + 3], ml[j + 3]));
    }
}
#define BT_BLOCK_VALUES TL_QK_K
#define BT_BLOCK_BYTES TL_Q4_K_BYTES
#define FTILE_WIDE_ROWS 2
#define BT_KERNEL tl_q4_k_avx512
#include "block_tile.h"
#endif
