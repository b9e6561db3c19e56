/* i2_s on AMX-INT8 (Intel Xeon since Sapphire Rapids): several tokens at once in 16 x 16 tiles of int32 sums, two ways.
 * - Many tokens (prompts: whole 16-token tiles from 33 tokens on): TDPBSUD adds signed activation bytes A (16 tokens
 *   x 64 values, loaded straight from the int8 rows) times unsigned weight codes w + 1 B (64 values x 16 rows, each
 *   row's 4 consecutive values side by side: the "VNNI" order) into C[token][row]. The weights are decoded 32 rows at
 *   a time into B tiles on the stack (a transpose: weight_b_tiles()), then every pair of 16-token tiles runs over them.
 * - Few tokens (5 to 32: batched decode, prompt chunks beside it, a prompt's last tokens): the decode above, paid once
 *   per weight whatever the token count, is then most of the time. TDPBUSD adds the codes as A (16 rows x 64 values in
 *   the rows' own order: one GF2P8AFFINEQB per 64 values, weight_a_tiles()) times the activations as B (their VNNI
 *   order, gathered once per call: token_b_tiles()) into C[row][token], tiles cut to the tokens there are; each i2_s
 *   block's A tiles are decoded while the block before runs, so they stay in L1. On one 2560 x 2560 matrix from L3
 *   this is 1.6x as fast at 16 tokens and 1.3x at 32, but slower from 64 (every pair decodes the weights again).
 * Both run 2 x 2 tiles at once (4 C, 2 A and 2 B: all 8 tiles). Fewer than 5 tokens (the AVX-512 kernel is faster
 * there: the tiles' work does not shrink with the tokens), a token tail of under 5 after whole tiles, rows outside
 * whole 16-row tiles and rows longer than MAX_COLS go to the AVX-512 kernel (the engine's row chunks start on
 * multiples of 16 rows). */
#include "kernels.h"
#if defined(__x86_64__) && defined(__linux__)
#include "avx512.h"
#pragma GCC target("amx-tile,amx-int8,gfni")

enum { TILE_ROWS = 16, BLOCK_ROWS = 32, CHUNK_VALUES = 64, TILE_BYTES = 1024, MAX_COLS = 8192 };
enum { FEW_TOKENS_MIN = 5, FEW_TOKENS_MAX = 32 }; /* AVX-512 is ahead up to 4 tokens (one thread, from memory) */

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* GCC 12's _tile_loadconfig tells the compiler it reads 8 bytes of the config, and _tile_loadd no memory at all: a
 * config built on the stack was left half written at -O3 (ldtilecfg then faults), and stores of a tile's bytes could
 * move past its load. These say what they read. */
static inline void load_config(const tile_config *c) { __asm__ volatile("ldtilecfg %0" ::"m"(*c)); }
#define load_tile(t, base, stride) \
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #t ::"r"((const void *)(base)), "r"((long)(stride)) : "memory")

/* Sums of the m[0] + m[1] tokens from t (token tiles of 16) and rows r .. r + 16 RT - 1 into y = (sum - sum(x)) / s *
 * w_scale, as the reference rounds it. c[a][b] is token tile a's C[token][row] for row tile b, or with by_row (the
 * few-token way) row tile a's C[row][token] for token tile b, each token's column then gathered. */
static inline void sums_to_y(int32_t c[2][2][TILE_ROWS * TILE_ROWS], int by_row, const int m[2], int RT, const tl_qact *x,
                             int32_t t, float w_scale, float *y, int64_t ldy, int64_t r) {
    const __m512i column = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                              _mm512_set1_epi32(TILE_ROWS));
    const __m512 ws = _mm512_set1_ps(w_scale);
    for (int tt = 0; tt < 2; tt++)
        for (int i = 0; i < m[tt]; i++) {
            int32_t token = t + tt * TILE_ROWS + i;
            __m512i xsum = _mm512_set1_epi32(x->sum[token]);
            __m512 s = _mm512_set1_ps(x->scale[token]);
            for (int rt = 0; rt < RT; rt++) {
                __m512i sums = by_row ? _mm512_i32gather_epi32(column, c[rt][tt] + i, 4)
                                      : _mm512_load_si512(c[tt][rt] + i * TILE_ROWS);
                __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(sums, xsum));
                _mm512_storeu_ps(y + token * ldy + r + rt * TILE_ROWS, _mm512_mul_ps(_mm512_div_ps(v, s), ws));
            }
        }
}

/* C tiles 0 .. 3 hold sums c[0][0], c[0][1], c[1][0], c[1][1]: A x B of them (each 1 or 2) are used */
static inline __attribute__((always_inline)) void zero_c(int A, int B) {
    _tile_zero(0);
    if (B == 2) _tile_zero(1);
    if (A == 2) _tile_zero(2);
    if (A == 2 && B == 2) _tile_zero(3);
}
static inline __attribute__((always_inline)) void store_c(int32_t c[2][2][TILE_ROWS * TILE_ROWS], int A, int B) {
    _tile_stored(0, c[0][0], 64);
    if (B == 2) _tile_stored(1, c[0][1], 64);
    if (A == 2) _tile_stored(2, c[1][0], 64);
    if (A == 2 && B == 2) _tile_stored(3, c[1][1], 64);
}

/* ---- many tokens: activations as A, weights transposed into B ---- */

/* A GF2P8AFFINEQB matrix taking bits s + 1, s of each byte to bits 1, 0 (the rest 0): one instruction where a shift
 * and a mask took two (both ways decode i2_s's 2-bit codes with it) */
#define BITS_TO_LOW(s) (long long)((1ull << (s)) << 56 | (1ull << ((s) + 1)) << 48) /* bits s+1, s to 1, 0 */

/* Row r's i2_s block b: rows row_bytes apart, or grouped (a group's blocks b side by side) */
static inline const uint8_t *row_block(const uint8_t *w, int64_t row_bytes, int64_t r, int64_t b, int grouped) {
    return w + (grouped ? tl_group_block_at(row_bytes, TL_I2_S_BYTES, r, b) : r * row_bytes + b * TL_I2_S_BYTES);
}

/* The index vectors of an 8 x 16 transpose in three rounds of vpermt2d (see weight_b_tiles()) */
typedef struct { __m512i lo[3], hi[3]; } transpose_index;

/* Round s pairs the registers that differ in one bit of the row number (r3, then r2, then r1: register i holds rows
 * 2i, 2i + 1) and swaps it with one bit of the dword number (d2, then d1, then d0): lo gathers the lanes whose dword
 * bit is 0, hi those where it is 1. Lane bits, high to low, before round 0: r0 d2 d1 d0; after it: r3 r0 d1 d0; after
 * round 1: r2 r3 r0 d0; after round 2: r3 r2 r1 r0 (the row), register bits d2 d1 d0 (the dword). */
static transpose_index transpose_indices(void) {
    transpose_index ix;
    for (int s = 0; s < 3; s++) {
        int32_t lo[16], hi[16];
        for (int lane = 0; lane < 16; lane++) {
            int bit = lane >> 3 & 1, b2 = lane >> 2 & 1, b1 = lane >> 1 & 1, b0 = lane & 1;
            int from_b = s < 2 ? bit : b1; /* the row bit moved into lanes: the pair's second register */
            int kept = s == 0 ? b2 << 3 | (lane & 3) : s == 1 ? b2 << 3 | b1 << 2 | b0 : b2 << 3 | bit << 2 | b0 << 1;
            int dword_bit = 4 >> s; /* the swapped dword bit's place in the source lane */
            lo[lane] = from_b << 4 | kept, hi[lane] = from_b << 4 | kept | dword_bit;
        }
        ix.lo[s] = _mm512_loadu_si512(lo), ix.hi[s] = _mm512_loadu_si512(hi);
    }
    return ix;
}

/* The B tiles of 16 rows' i2_s block b (values 128 b .. 128 b + 127) into out: tile 2b + h (h = 0, 1) at out +
 * (2b + h) * tiles_per_chunk * TILE_BYTES. Byte j of a block holds values j, j+32, j+64, j+96 at bits 6, 4, 2, 0, so
 * dword d of every row, masked at one pair of bits, is that row's values 4d .. 4d+3 of one quarter of the block: the
 * 16 rows' 8 dwords transposed to [d][row] are, with one pair of bits taken per quarter, B tile rows 8 (quarter % 2)
 * + d. Rows r0 .. r0 + 15 are row_bytes apart, or grouped (r0 a multiple of 4: a group's blocks b side by side). */
static inline __attribute__((always_inline)) void weight_b_tiles(const uint8_t *w, int64_t row_bytes, int64_t b,
                                                                int64_t r0, int grouped, const transpose_index *ix,
                                                                int8_t *out, int tiles_per_chunk) {
    __m512i z[8];
    const uint8_t *base = row_block(w, row_bytes, r0, b, grouped);
    for (int i = 0; i < 8; i++) { /* rows 2i and 2i + 1: lane 8 (r % 2) + d */
        const uint8_t *p = base + (grouped ? i / 2 * TL_GROUP_ROWS * row_bytes + i % 2 * 2 * TL_I2_S_BYTES : 2 * i * row_bytes);
        z[i] = grouped ? _mm512_loadu_si512(p)
                       : _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p)),
                                            _mm256_loadu_si256((const __m256i *)(p + row_bytes)), 1);
    }
    // transposed to [dword][row] (transpose_indices())
    for (int s = 0; s < 3; s++) {
        int bit = 4 >> s;
        __m512i t[8];
        for (int i = 0; i < 8; i++) {
            if (i & bit) continue;
            t[i] = _mm512_permutex2var_epi32(z[i], ix->lo[s], z[i | bit]);
            t[i | bit] = _mm512_permutex2var_epi32(z[i], ix->hi[s], z[i | bit]);
        }
        for (int i = 0; i < 8; i++) z[i] = t[i];
    }
    for (int quarter = 0; quarter < 4; quarter++) {
        int8_t *tile = out + (2 * b + quarter / 2) * tiles_per_chunk * TILE_BYTES + quarter % 2 * 8 * CHUNK_VALUES;
        const __m512i bits = _mm512_set1_epi64(BITS_TO_LOW(6 - 2 * quarter));
        for (int d = 0; d < 8; d++) _mm512_store_si512(tile + d * CHUNK_VALUES, _mm512_gf2p8affine_epi64_epi8(z[d], bits, 0));
    }
}

/* C tiles 0 .. 3 (token tile, row tile) = (0, 0), (0, 1), (1, 0), (1, 1); A tiles 4, 5; B tiles 6, 7. TT token tiles x
 * RT row tiles (each 1 or 2), over every chunk of 64 values; the sums into c[token tile][row tile][token][row]. */
static inline __attribute__((always_inline)) void many_tiles(const int8_t *q, int64_t cols, const int8_t *codes, int TT,
                                                            int RT, int32_t c[2][2][TILE_ROWS * TILE_ROWS]) {
    zero_c(TT, RT);
    for (int64_t k = 0; k < cols / CHUNK_VALUES; k++) {
        const int8_t *b = codes + k * RT * TILE_BYTES;
        load_tile(6, b, CHUNK_VALUES);
        if (RT == 2) load_tile(7, b + TILE_BYTES, CHUNK_VALUES);
        load_tile(4, q + k * CHUNK_VALUES, cols);
        _tile_dpbsud(0, 4, 6);
        if (RT == 2) _tile_dpbsud(1, 4, 7);
        if (TT == 2) {
            load_tile(5, q + TILE_ROWS * cols + k * CHUNK_VALUES, cols);
            _tile_dpbsud(2, 5, 6);
            if (RT == 2) _tile_dpbsud(3, 5, 7);
        }
    }
    store_c(c, TT, RT);
}

/* Tokens 0 .. n - 1 (a multiple of 16) times rows r0 .. r1 - 1 (whole 16-row tiles) */
__attribute__((noinline)) static void many_tokens(const uint8_t *w, int64_t cols, int64_t r0, int64_t r1, const tl_qact *x,
                                                  int32_t n, float w_scale, float *y, int64_t ldy, int grouped) {
    static const tile_config config = {1, 0, {0}, {64, 64, 64, 64, 64, 64, 64, 64}, {16, 16, 16, 16, 16, 16, 16, 16}};
    int8_t codes[BLOCK_ROWS * MAX_COLS] __attribute__((aligned(64)));
    int32_t c[2][2][TILE_ROWS * TILE_ROWS] __attribute__((aligned(64)));
    int64_t row_bytes = cols / TL_I2_S_VALUES * TL_I2_S_BYTES;
    transpose_index ix = transpose_indices();
    load_config(&config);
    for (int64_t r = r0; r < r1; r += BLOCK_ROWS) {
        int RT = r1 - r >= BLOCK_ROWS ? 2 : 1;
        // decode the block's rows into B tiles, [chunk][row tile][1 KiB]
        for (int rt = 0; rt < RT; rt++)
            for (int64_t b = 0; b < cols / TL_I2_S_VALUES; b++)
                weight_b_tiles(w, row_bytes, b, r + rt * TILE_ROWS, grouped, &ix, codes + rt * TILE_BYTES, RT);
        // every pair of token tiles over them
        for (int32_t t = 0; t < n; t += 2 * TILE_ROWS) {
            int TT = n - t >= 2 * TILE_ROWS ? 2 : 1;
            const int8_t *q = x->q + t * cols;
            if (TT == 2 && RT == 2) many_tiles(q, cols, codes, 2, 2, c);
            else if (TT == 2) many_tiles(q, cols, codes, 2, 1, c);
            else if (RT == 2) many_tiles(q, cols, codes, 1, 2, c);
            else many_tiles(q, cols, codes, 1, 1, c);
            sums_to_y(c, 0, (int[2]){TILE_ROWS, TT == 2 ? TILE_ROWS : 0}, RT, x, t, w_scale, y, ldy, r);
        }
    }
    _tile_release();
}

/* ---- few tokens: weights as A, activations as B ---- */

/* The A tiles of 16 rows' i2_s block b (values 128 b .. 128 b + 127) into out: values 0 .. 63 of the block in the
 * first tile, 64 .. 127 in the second (TILE_BYTES on). Byte j of a block holds values j, j+32, j+64, j+96 at bits 6,
 * 4, 2, 0, so a row's 32 bytes in both halves of a register, bits 7..6 taken in the low half and 5..4 in the high
 * half, are its values 0 .. 63; bits 3..2 and 1..0, 64 .. 127 (BITS_TO_LOW: with a shift and a mask, 1.2x slower
 * in cache). Rows r0 .. r0 + 15 are row_bytes apart, or grouped (r0 a multiple of 4: a group's blocks b side by
 * side), each at a constant offset from the first (a division per row cost 1.2x in cache). */
static inline __attribute__((always_inline)) void weight_a_tiles(const uint8_t *w, int64_t row_bytes, int64_t b,
                                                                int64_t r0, int grouped, int8_t *out) {
    const __m512i first = _mm512_inserti64x4(_mm512_set1_epi64(BITS_TO_LOW(6)), _mm256_set1_epi64x(BITS_TO_LOW(4)), 1);
    const __m512i second = _mm512_inserti64x4(_mm512_set1_epi64(BITS_TO_LOW(2)), _mm256_set1_epi64x(BITS_TO_LOW(0)), 1);
    const uint8_t *base = row_block(w, row_bytes, r0, b, grouped);
#pragma GCC unroll 16
    for (int i = 0; i < TILE_ROWS; i++) {
        const uint8_t *p = base + (grouped ? i / TL_GROUP_ROWS * TL_GROUP_ROWS * row_bytes + i % TL_GROUP_ROWS * TL_I2_S_BYTES
                                           : i * row_bytes);
        __m512i z = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p));
        _mm512_store_si512(out + i * CHUNK_VALUES, _mm512_gf2p8affine_epi64_epi8(z, first, 0));
        _mm512_store_si512(out + TILE_BYTES + i * CHUNK_VALUES, _mm512_gf2p8affine_epi64_epi8(z, second, 0));
    }
}

/* The B tiles of m tokens' rows (q, cols apart) into xt: chunk k's tile at xt + k * TILE_BYTES, its row d holding
 * dword d of the chunk of each token in turn (tokens m .. 15 zero). */
static void token_b_tiles(const int8_t *q, int64_t cols, int m, int8_t *xt) {
    const __m512i lanes = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                             _mm512_set1_epi32((int32_t)(cols / 4)));
    __mmask16 tokens = (__mmask16)((1u << m) - 1);
    for (int64_t d = 0; d < cols / 4; d++) /* dword d of every token: row d % 16 of chunk d / 16 */
        _mm512_store_si512(xt + d * CHUNK_VALUES,
                           _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), tokens, lanes, (const int *)q + d, 4));
}

/* The tiles' shapes: C 0 .. 3 (row tile, token tile) = (0, 0), (0, 1), (1, 0), (1, 1) and B 6, 7 of token tiles 0, 1
 * with m[0] and m[1] tokens (0: unused); A 4, 5 of 16 rows of 64 values */
static void configure(const int m[2]) {
    tile_config config = {1, 0, {0}, {0}, {0}};
    for (int i = 0; i < 8; i++) config.colsb[i] = CHUNK_VALUES, config.rows[i] = TILE_ROWS;
    for (int tt = 0; tt < 2; tt++)
        if (m[tt]) config.colsb[tt] = config.colsb[2 + tt] = config.colsb[6 + tt] = (uint16_t)(4 * m[tt]);
    load_config(&config);
}

/* One chunk of 64 values, k: the A tiles at a (RT of them, 2 KiB apart) times the B tiles of the TT token tiles */
static inline __attribute__((always_inline)) void few_chunk(const int8_t *a, const int8_t *xt, int64_t tile_stride,
                                                           int64_t k, int TT, int RT) {
    load_tile(4, a, CHUNK_VALUES);
    if (RT == 2) load_tile(5, a + 2 * TILE_BYTES, CHUNK_VALUES);
    load_tile(6, xt + k * TILE_BYTES, CHUNK_VALUES);
    _tile_dpbusd(0, 4, 6);
    if (RT == 2) _tile_dpbusd(2, 5, 6);
    if (TT == 2) {
        load_tile(7, xt + tile_stride + k * TILE_BYTES, CHUNK_VALUES);
        _tile_dpbusd(1, 4, 7);
        if (RT == 2) _tile_dpbusd(3, 5, 7);
    }
}

/* RT row tiles from row r (each 1 or 2) x TT token tiles (B tiles at xt, tile_stride apart), over every chunk of 64
 * values: the sums into c[row tile][token tile][row][token]. Block b + 1 is decoded before block b's tiles run (into
 * the other half of a), and the next strip of rows prefetched as this one is read: 10 GB/s from memory on one thread
 * at 8 tokens (one buffer, no prefetch: 6 to 7). */
static inline __attribute__((always_inline)) void few_tiles(const uint8_t *w, int64_t cols, int64_t r, int grouped,
                                                           const int8_t *xt, int64_t tile_stride, int TT, int RT,
                                                           int32_t c[2][2][TILE_ROWS * TILE_ROWS]) {
    int8_t a[2][2 * 2 * TILE_BYTES] __attribute__((aligned(64))); /* [block % 2][row tile][2 chunks][1 KiB] */
    int64_t row_bytes = cols / TL_I2_S_VALUES * TL_I2_S_BYTES, blocks = cols / TL_I2_S_VALUES;
    int64_t strip_block = RT * TILE_ROWS * TL_I2_S_BYTES; /* a strip's bytes of one block (rows or groups: the same) */
    const uint8_t *next = w + (r + RT * TILE_ROWS) * row_bytes;
    zero_c(RT, TT);
    for (int rt = 0; rt < RT; rt++) weight_a_tiles(w, row_bytes, 0, r + rt * TILE_ROWS, grouped, a[0] + rt * 2 * TILE_BYTES);
    for (int64_t b = 0; b < blocks; b++) {
        for (int64_t at = 0; at < strip_block; at += 64) prefetch_l2(next + b * strip_block + at);
        for (int rt = 0; rt < RT && b + 1 < blocks; rt++)
            weight_a_tiles(w, row_bytes, b + 1, r + rt * TILE_ROWS, grouped, a[(b + 1) % 2] + rt * 2 * TILE_BYTES);
        few_chunk(a[b % 2], xt, tile_stride, 2 * b, TT, RT);
        few_chunk(a[b % 2] + TILE_BYTES, xt, tile_stride, 2 * b + 1, TT, RT);
    }
    store_c(c, RT, TT);
}

/* Tokens 0 .. n - 1 (FEW_TOKENS_MIN to FEW_TOKENS_MAX: one pair of token tiles) times rows r0 .. r1 - 1 (whole 16-row
 * tiles) */
__attribute__((noinline)) static void few_tokens(const uint8_t *w, int64_t cols, int64_t r0, int64_t r1, const tl_qact *x,
                                                 int32_t n, float w_scale, float *y, int64_t ldy, int grouped) {
    int8_t xt[2 * MAX_COLS * TILE_ROWS] __attribute__((aligned(64))); /* the pair's B tiles */
    int32_t c[2][2][TILE_ROWS * TILE_ROWS] __attribute__((aligned(64)));
    int64_t tile_stride = cols * TILE_ROWS; /* between a chunk's B tiles of the two token tiles */
    int m[2] = {n < TILE_ROWS ? n : TILE_ROWS, n > TILE_ROWS ? n - TILE_ROWS : 0};
    configure(m);
    for (int tt = 0; tt < 2 && m[tt]; tt++) token_b_tiles(x->q + tt * TILE_ROWS * cols, cols, m[tt], xt + tt * tile_stride);
    for (int64_t r = r0; r < r1; r += BLOCK_ROWS) {
        int RT = r1 - r >= BLOCK_ROWS ? 2 : 1;
        if (m[1] && RT == 2) few_tiles(w, cols, r, grouped, xt, tile_stride, 2, 2, c);
        else if (m[1]) few_tiles(w, cols, r, grouped, xt, tile_stride, 2, 1, c);
        else if (RT == 2) few_tiles(w, cols, r, grouped, xt, tile_stride, 1, 2, c);
        else few_tiles(w, cols, r, grouped, xt, tile_stride, 1, 1, c);
        sums_to_y(c, 1, m, RT, x, 0, w_scale, y, ldy, r);
    }
    _tile_release();
}

/* Rows in whole 16-row tiles through AMX (many_tokens(), then few_tokens() for a tail of 5 or more), the rest
 * through simd (rows, or grouped). */
static void matmul(const uint8_t *w, int64_t cols, int64_t r0, int64_t r1, const tl_qact *x, float w_scale, float *y,
                   int64_t ldy, int grouped, tl_ternary_fn *simd) {
    int32_t many = x->n > FEW_TOKENS_MAX ? x->n / TILE_ROWS * TILE_ROWS : 0, rest = x->n - many;
    int64_t a0 = (r0 + TILE_ROWS - 1) / TILE_ROWS * TILE_ROWS, a1 = r1 / TILE_ROWS * TILE_ROWS;
    if (x->n < FEW_TOKENS_MIN || cols > MAX_COLS || a0 >= a1) {
        simd(w, cols, r0, r1, x, w_scale, y, ldy);
        return;
    }
    if (r0 < a0) simd(w, cols, r0, a0, x, w_scale, y, ldy);
    if (a1 < r1) simd(w, cols, a1, r1, x, w_scale, y, ldy);
    if (many) many_tokens(w, cols, a0, a1, x, many, w_scale, y, ldy, grouped);
    if (rest) {
        tl_qact tail = {x->q + many * cols, x->scale + many, x->sum + many, rest};
        if (rest < FEW_TOKENS_MIN) simd(w, cols, a0, a1, &tail, w_scale, y + many * ldy, ldy);
        else few_tokens(w, cols, a0, a1, &tail, rest, w_scale, y + many * ldy, ldy, grouped);
    }
}

void tl_i2_s_amx(const uint8_t *w, int64_t cols, int64_t r0, int64_t r1, const tl_qact *x, float w_scale, float *y, int64_t ldy) {
    matmul(w, cols, r0, r1, x, w_scale, y, ldy, 0, tl_i2_s_avx512);
}
void tl_i2_s_r4_amx(const uint8_t *w, int64_t cols, int64_t r0, int64_t r1, const tl_qact *x, float w_scale, float *y,
                    int64_t ldy) {
    matmul(w, cols, r0, r1, x, w_scale, y, ldy, 1, tl_i2_s_r4_avx512);
}
#endif
