/* In-process workers: n − 1 threads that run a function together with the
 * caller (worker 0) and return when all are done. A trainer's step runs its
 * replicas on them (--workers). The threads are made once. Between runs a
 * thread first spins on the run counter for up to POOL_SPIN_NS, then sleeps
 * on a condition variable: a step's runs follow each other within
 * microseconds, and waking a sleeping thread costs tens of microseconds on
 * a virtual machine (its idle CPU halts), which a step of a small model
 * (about a millisecond) would feel; the caller waits for the others the same
 * way. */
#include "comm.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#define POOL_SPIN_NS 200000L /* 0.2 ms, when the pool may spin */

struct comm_pool {
    int n;
    long spin_ns; /* POOL_SPIN_NS, or 0 */
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    atomic_ulong gen;   /* runs started */
    atomic_int pending; /* threads still running the current run */
    atomic_int quit;
    comm_pool_fn fn;
    void *ctx;
};

typedef struct {
    comm_pool *p;
    int w;
} pool_arg;

static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Spins until *v differs from `old` (1) or spin_ns pass (0). */
static int spin_ulong(atomic_ulong *v, unsigned long old, long spin_ns)
{
    if (spin_ns <= 0) return atomic_load_explicit(v, memory_order_acquire) != old;
    const long end = now_ns() + spin_ns;
    for (int i = 0;; i++) {
        if (atomic_load_explicit(v, memory_order_acquire) != old) return 1;
        if ((i & 63) == 63 && now_ns() > end) return 0;
        cpu_relax();
    }
}

static int spin_zero(atomic_int *v, long spin_ns)
{
    if (spin_ns <= 0) return atomic_load_explicit(v, memory_order_acquire) == 0;
    const long end = now_ns() + spin_ns;
    for (int i = 0;; i++) {
        if (atomic_load_explicit(v, memory_order_acquire) == 0) return 1;
        if ((i & 63) == 63 && now_ns() > end) return 0;
        cpu_relax();
    }
}

static void *pool_main(void *arg)
{
    pool_arg a = *(pool_arg *)arg;
    free(arg);
    comm_pool *p = a.p;
    unsigned long seen = 0;
    for (;;) {
        if (!spin_ulong(&p->gen, seen, p->spin_ns)) {
            pthread_mutex_lock(&p->mu);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->quit))
                pthread_cond_wait(&p->go, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) return NULL;
        seen = atomic_load(&p->gen);
        /* fn and ctx were stored before gen moved (release/acquire) */
        p->fn(p->ctx, a.w);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

int comm_pool_create(comm_pool **out, int n, int spin)
{
    *out = NULL;
    if (n < 1) return COMM_ERR;
    comm_pool *p = calloc(1, sizeof *p);
    if (!p) return COMM_ERR;
    p->n = n;
    p->spin_ns = spin ? POOL_SPIN_NS : 0;
    p->th = calloc((size_t)n, sizeof(pthread_t));
    if (!p->th || pthread_mutex_init(&p->mu, NULL)) {
        free(p->th);
        free(p);
        return COMM_ERR;
    }
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int w = 1; w < n; w++) {
        pool_arg *a = malloc(sizeof *a);
        if (a) a->p = p, a->w = w;
        if (!a || pthread_create(&p->th[w], NULL, pool_main, a)) {
            free(a);
            p->n = w; /* the threads made so far are joined */
            comm_pool_free(p);
            return COMM_ERR;
        }
    }
    *out = p;
    return COMM_OK;
}

int comm_pool_size(const comm_pool *p)
{
    return p ? p->n : 1;
}

void comm_pool_run(comm_pool *p, comm_pool_fn fn, void *ctx)
{
    if (!p || p->n == 1) {
        fn(ctx, 0);
        return;
    }
    p->fn = fn, p->ctx = ctx;
    atomic_store(&p->pending, p->n - 1);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_mutex_lock(&p->mu); /* for the threads that went to sleep */
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0);
    if (!spin_zero(&p->pending, p->spin_ns)) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->pending) > 0) pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}

void comm_pool_free(comm_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int w = 1; w < p->n; w++) pthread_join(p->th[w], NULL);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p->th);
    free(p);
}
