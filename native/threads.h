/* threads.h - a small persistent thread pool: run one task on all threads and wait for it. */
#ifndef TL_THREADS_H
#define TL_THREADS_H
#include <stdint.h>

typedef struct tl_pool tl_pool;
/* A task runs once on each thread; ith in [0, nth) says which share of the work is this thread's. */
typedef void tl_task(void *ctx, int32_t ith, int32_t nth);

tl_pool *tl_pool_new(int32_t n_threads); /* <= 0: one thread per physical core; NULL if out of memory */
void tl_pool_free(tl_pool *p);
int32_t tl_pool_size(const tl_pool *p);
void tl_pool_run(tl_pool *p, tl_task *task, void *ctx); /* the caller is thread 0 */
/* The share [*begin, *end) of n items for thread ith of nth, in whole multiples of align. */
void tl_split(int64_t n, int64_t align, int32_t ith, int32_t nth, int64_t *begin, int64_t *end);

#endif
