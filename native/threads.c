/* threads.c - persistent workers that spin briefly for the next task, then sleep on a condition variable.
 * Running a task allocates nothing: the caller publishes (task, ctx) under a new generation number. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "threads.h"

enum { SPIN_ROUNDS = 20000 }; /* ~50-100 us of polling before a worker sleeps */

struct tl_pool {
    int32_t n_threads;
    pthread_t *workers;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_int generation; /* bumped (under lock) once per task */
    atomic_int done;       /* workers finished with the current task */
    int quit;
    tl_task *task;
    void *ctx;
};

typedef struct { tl_pool *pool; int32_t ith; } worker_arg;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *worker_main(void *arg_) {
    worker_arg *arg = arg_;
    tl_pool *p = arg->pool;
    int seen = 0;
    for (;;) {
        // wait for a new generation: spin first (decode steps come back to back), then sleep
        int spins = 0;
        while (atomic_load_explicit(&p->generation, memory_order_acquire) == seen && spins++ < SPIN_ROUNDS) cpu_relax();
        pthread_mutex_lock(&p->lock);
        while (atomic_load(&p->generation) == seen && !p->quit) pthread_cond_wait(&p->wake, &p->lock);
        int quit = p->quit;
        pthread_mutex_unlock(&p->lock);
        if (quit) break;
        seen = atomic_load(&p->generation);
        // run this thread's share, then report
        p->task(p->ctx, arg->ith, p->n_threads);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
    free(arg);
    return NULL;
}

/* Physical cores: CPUs that are the first of their SMT sibling list; all online CPUs if that is unknown. */
static int32_t physical_cores(void) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int32_t cores = 0;
    for (long cpu = 0; cpu < online; cpu++) {
        char path[96];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/topology/thread_siblings_list", cpu);
        FILE *f = fopen(path, "r");
        if (!f) return online > 0 ? (int32_t)online : 1;
        long first = -1;
        if (fscanf(f, "%ld", &first) != 1) first = cpu;
        fclose(f);
        cores += first == cpu;
    }
    return cores > 0 ? cores : 1;
}

tl_pool *tl_pool_new(int32_t n_threads) {
    tl_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = n_threads > 0 ? n_threads : physical_cores();
    p->workers = calloc((size_t)p->n_threads, sizeof *p->workers);
    if (!p->workers) { free(p); return NULL; }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    for (int32_t i = 1; i < p->n_threads; i++) {
        worker_arg *arg = malloc(sizeof *arg);
        if (arg) *arg = (worker_arg){p, i};
        if (!arg || pthread_create(&p->workers[i], NULL, worker_main, arg) != 0) {
            free(arg);
            p->n_threads = i; /* run with the workers that did start */
            break;
        }
    }
    return p;
}

void tl_pool_free(tl_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->quit = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int32_t i = 1; i < p->n_threads; i++) pthread_join(p->workers[i], NULL);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p->workers);
    free(p);
}

int32_t tl_pool_size(const tl_pool *p) { return p->n_threads; }

void tl_pool_run(tl_pool *p, tl_task *task, void *ctx) {
    if (p->n_threads == 1) { task(ctx, 0, 1); return; }
    // publish the task under a new generation and wake sleepers
    p->task = task;
    p->ctx = ctx;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    pthread_mutex_lock(&p->lock);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    // do thread 0's share, then wait for the others
    task(ctx, 0, p->n_threads);
    while (atomic_load_explicit(&p->done, memory_order_acquire) < p->n_threads - 1) cpu_relax();
}

void tl_split(int64_t n, int64_t align, int32_t ith, int32_t nth, int64_t *begin, int64_t *end) {
    int64_t units = (n + align - 1) / align;
    int64_t b = units * ith / nth * align, e = units * (ith + 1) / nth * align;
    *begin = b < n ? b : n;
    *end = e < n ? e : n;
}
