/* threads.h - a small persistent thread pool. A task is split into chunks that threads claim one at a time,
 * so a thread the OS preempts (the cores may be shared) delays only the chunk it holds. */
#ifndef TL_THREADS_H
#define TL_THREADS_H
#include <stddef.h>
#include <stdint.h>

typedef struct tl_pool tl_pool;
/* Runs chunk `chunk` of a task; `thread` in [0, pool size) names the running thread within this tl_pool_run (for
 * per-thread scratch, which must belong to the caller: another caller's run may use the same numbers). */
typedef void tl_task(void *arg, int32_t chunk, int32_t thread);

tl_pool *tl_pool_new(int32_t n_threads); /* <= 0: one thread per physical core; NULL if out of memory */
void tl_pool_free(tl_pool *p);
int32_t tl_pool_size(const tl_pool *p);
/* Runs chunks 0..n_chunks-1 of task; returns when all are done. Callers on several threads take turns. */
void tl_pool_run(tl_pool *p, tl_task *task, void *arg, int32_t n_chunks);
/* Memory that the pool's threads stream (weights, the bandwidth probe's buffer), on 2 MiB pages where the system has
 * transparent huge pages: fewer TLB misses, and scattered reads (a sparse GEMV's kept columns) find their entries.
 * Freed with free(); NULL if out of memory. */
void *tl_alloc_huge(size_t bytes);
/* The share [*begin, *end) of n items for part i of parts, in whole multiples of align. */
void tl_split(int64_t n, int64_t align, int32_t i, int32_t parts, int64_t *begin, int64_t *end);

#endif
