/* Top-K activation masking (Q-Sparse; BitNet a4.8's o_proj input): keep the k largest |x| of a token's row and
 * zero the rest, in place. Ties at the k-th value keep the lower indices first, so the kept set is exactly
 * numpy's stable argsort of -|x| cut at k. |x| is compared as its IEEE bits (same order for non-negative floats);
 * the k-th largest is found by a radix histogram, then quickselect within its bin (work [dim]): O(dim). */
#include <string.h>
#include "kernels.h"

static inline uint32_t abs_bits(float f) {
    union { float f; uint32_t u; } v = {f};
    return v.u & 0x7fffffffu;
}

/* The k-th largest (1-based) of a[0..n), reordering a: quickselect. */
static uint32_t kth_largest(uint32_t *a, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1, want = k - 1;
    while (lo < hi) {
        uint32_t pivot = a[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) { /* descending: larger values to the left */
            while (a[i] > pivot) i++;
            while (a[j] < pivot) j--;
            if (i <= j) {
                uint32_t t = a[i];
                a[i++] = a[j];
                a[j--] = t;
            }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else break; /* a[j+1 .. i-1] all equal the pivot */
    }
    return a[want];
}

/* Radix step first: a histogram of the top RADIX_BITS of the 31 magnitude bits (exponent and leading mantissa)
 * finds the bin holding the k-th largest, and only that bin's values go through quickselect. */
enum { RADIX_BITS = 10, RADIX_SHIFT = 31 - RADIX_BITS };

int64_t tl_topk_ref(float *x, int64_t dim, int64_t k, uint32_t *work) {
    if (k >= dim) return dim;
    int32_t count[1 << RADIX_BITS], bin = 0;
    memset(count, 0, sizeof count);
    for (int64_t i = 0; i < dim; i++) {
        int32_t b = (int32_t)(abs_bits(x[i]) >> RADIX_SHIFT);
        count[b]++;
        bin = b > bin ? b : bin; /* the walk down starts at the largest */
    }
    int64_t above = 0; /* values in bins above `bin` */
    while (above + count[bin] < k) above += count[bin--];
    int64_t n = 0;
    for (int64_t i = 0; i < dim; i++)
        if ((int32_t)(abs_bits(x[i]) >> RADIX_SHIFT) == bin) work[n++] = abs_bits(x[i]);
    uint32_t kth = kth_largest(work, n, k - above);
    for (int64_t i = 0; i < n; i++) above += work[i] > kth;
    int64_t ties = k - above; /* how many values equal to the k-th are kept, lowest index first */
    for (int64_t i = 0; i < dim; i++) {
        uint32_t b = abs_bits(x[i]);
        if (b > kth) continue;
        if (b == kth && ties > 0) ties--;
        else x[i] = 0.0f;
    }
    return k;
}
