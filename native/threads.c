/* threads.c - persistent workers that spin briefly for the next task, then sleep on a condition variable.
 *
 * A task is published as a job (task, arg) and one atomic word `next` = generation << 32 | n_chunks << 16 |
 * next unclaimed chunk. Every thread, the caller included, claims a chunk by a compare-and-swap on that word,
 * checking the generation and the chunk index against the count carried in the same word; only after a claim
 * succeeds does it read the job. A claimed chunk keeps its generation current (the caller waits for it), so
 * the job cannot change under it, and a worker that wakes late finds a newer generation and claims nothing:
 * it never runs a chunk of one task with another's fields, nor counts a chunk of a finished task as done.
 * Callers from several threads take turns (the pool runs one task at a time). Running a task allocates
 * nothing. */
#define _DEFAULT_SOURCE /* madvise */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#endif
#include "threads.h"

enum { SPIN_ROUNDS = 20000 };        /* ~0.1-0.5 ms of polling before a worker sleeps or the caller yields */
enum { MAX_ROUND_CHUNKS = 0xffff };  /* chunks per published round: the count field of `next` is 16 bits */

struct tl_pool {
    int32_t n_threads;
    pthread_t *workers;
    pthread_mutex_t lock;      /* guards the sleep/wake of workers and `quit` */
    pthread_cond_t wake;
    pthread_mutex_t caller;    /* one tl_pool_run at a time */
    atomic_uint generation;    /* bumped once per round; workers wait for it to change */
    atomic_uint_fast64_t next; /* generation << 32 | n_chunks << 16 | next unclaimed chunk */
    atomic_int done;           /* chunks of the current round finished */
    int quit;
    /* the current round's job: written by the caller before `next` is published, read only under a claim */
    tl_task *task;
    void *arg;
    int32_t first; /* the round's chunk 0 is the task's chunk `first` */
};

typedef struct { tl_pool *pool; int32_t thread; } worker_arg;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static inline uint64_t next_word(uint32_t gen, uint32_t n_chunks, uint32_t chunk) {
    return (uint64_t)gen << 32 | (uint64_t)n_chunks << 16 | chunk;
}

/* Claims and runs chunks of generation gen until none are left (or a newer round replaced it). */
static void run_chunks(tl_pool *p, uint32_t gen, int32_t thread) {
    uint64_t v = atomic_load_explicit(&p->next, memory_order_acquire);
    for (;;) {
        uint32_t chunk = v & 0xffffu, n_chunks = (v >> 16) & 0xffffu;
        if ((uint32_t)(v >> 32) != gen || chunk >= n_chunks) return;
        if (!atomic_compare_exchange_weak_explicit(&p->next, &v, v + 1, memory_order_acq_rel, memory_order_acquire))
            continue; /* v was reloaded */
        // claimed: the round stays current until this chunk is counted, so its job is stable and visible
        p->task(p->arg, p->first + (int32_t)chunk, thread);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
        v = atomic_load_explicit(&p->next, memory_order_acquire);
    }
}

static void *worker_main(void *arg_) {
    worker_arg *arg = arg_;
    tl_pool *p = arg->pool;
    uint32_t seen = 0;
    for (;;) {
        // wait for a new generation: spin first (the steps of a forward pass come back to back), then sleep
        int spins = 0;
        while (atomic_load_explicit(&p->generation, memory_order_acquire) == seen && spins++ < SPIN_ROUNDS) cpu_relax();
        pthread_mutex_lock(&p->lock);
        while (atomic_load(&p->generation) == seen && !p->quit) pthread_cond_wait(&p->wake, &p->lock);
        int quit = p->quit;
        pthread_mutex_unlock(&p->lock);
        if (quit) break;
        seen = atomic_load_explicit(&p->generation, memory_order_acquire);
        run_chunks(p, seen, arg->thread);
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
    pthread_mutex_init(&p->caller, NULL);
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
    pthread_mutex_destroy(&p->caller);
    pthread_mutex_destroy(&p->lock);
    free(p->workers);
    free(p);
}

int32_t tl_pool_size(const tl_pool *p) { return p->n_threads; }

/* One round: chunks [first, first + n_chunks) of the task, run by all threads; returns when all are done. */
static void run_round(tl_pool *p, tl_task *task, void *arg, int32_t first, int32_t n_chunks) {
    // publish the job, then the word that lets threads claim it, under a new generation; wake sleepers
    uint32_t gen = atomic_load_explicit(&p->generation, memory_order_relaxed) + 1;
    p->task = task;
    p->arg = arg;
    p->first = first;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_store_explicit(&p->next, next_word(gen, (uint32_t)n_chunks, 0), memory_order_release);
    pthread_mutex_lock(&p->lock);
    atomic_store_explicit(&p->generation, gen, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    // work like any thread, then wait for chunks others still hold (yielding if their thread was preempted)
    run_chunks(p, gen, 0);
    for (int spins = 0; atomic_load_explicit(&p->done, memory_order_acquire) < n_chunks; spins++) {
        if (spins < SPIN_ROUNDS) cpu_relax();
        else sched_yield();
    }
}

void tl_pool_run(tl_pool *p, tl_task *task, void *arg, int32_t n_chunks) {
    if (p->n_threads == 1 || n_chunks == 1) {
        for (int32_t c = 0; c < n_chunks; c++) task(arg, c, 0);
        return;
    }
    pthread_mutex_lock(&p->caller);
    for (int32_t first = 0; first < n_chunks; first += MAX_ROUND_CHUNKS)
        run_round(p, task, arg, first, n_chunks - first < MAX_ROUND_CHUNKS ? n_chunks - first : MAX_ROUND_CHUNKS);
    pthread_mutex_unlock(&p->caller);
}

void tl_split(int64_t n, int64_t align, int32_t i, int32_t parts, int64_t *begin, int64_t *end) {
    int64_t units = (n + align - 1) / align;
    int64_t b = units * i / parts * align, e = units * (i + 1) / parts * align;
    *begin = b < n ? b : n;
    *end = e < n ? e : n;
}

void *tl_alloc_huge(size_t bytes) {
    size_t huge = 2 << 20, rounded = (bytes + huge - 1) / huge * huge;
    void *p = aligned_alloc(huge, rounded ? rounded : huge);
#if defined(MADV_HUGEPAGE)
    if (p) madvise(p, rounded, MADV_HUGEPAGE);
#endif
    return p;
}
