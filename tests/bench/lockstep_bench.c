/* What synchronous data parallelism costs on this machine before any
 * gradient moves (run under mpirun, one OpenBLAS thread per rank):
 *   lockstep_bench [STEP_MS ...]        (default: 0.8 1.6 10 300)
 * Every rank repeats a fixed "step" of work (single-threaded sgemm, 64 × 512
 * × 512, as many products as take STEP_MS on rank 0 alone) in three ways,
 * taken in alternation, REPS times (env REPS, default 3):
 *   alone     rank 0 only, the other ranks wait at a barrier (Open MPI's
 *             waiting spins on the rank's own core, touching nothing of
 *             rank 0's);
 *   free      all ranks at once, no communication until the end (what
 *             independent processes reach: the cores' contention only);
 *   lockstep  all ranks at once, a 1-float allreduce after every step (a
 *             step ends when the slowest rank's does, as in data-parallel
 *             training; the allreduce itself is a few microseconds).
 * It prints the medians per step (STEP_MS is a target: the "alone" column is
 * what a step took) and the ratios: free ÷ alone (what two
 * processes lose to each other), lockstep ÷ free (what waiting for the
 * slowest rank loses at that step length) and lockstep ÷ alone, the
 * ceiling of a data-parallel trainer's weak scaling here. */
#include "blas_private.h" /* model.h, then CBLAS without <complex.h>'s I */
#include "bench.h"
#include "comm.h"

#include <stdio.h>
#include <stdlib.h>

enum { M = 64, N = 512, K = 512, MAXREPS = 15 };

static float *A, *B, *C;

static void work(int calls)
{
    for (int i = 0; i < calls; i++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N, 0.0f, C,
                    N);
}

/* seconds per step of one way (0 alone, 1 free, 2 lockstep), as a rate's
 * inverse: alone is rank 0's time, free the ranks' mean time, lockstep the
 * common time */
static double one_way(int way, int calls, int steps)
{
    const int rank = comm_rank(), W = comm_world();
    float sync[1] = {0};
    comm_barrier();
    double t0 = comm_time();
    if (way != 0 || rank == 0)
        for (int s = 0; s < steps; s++) {
            work(calls);
            if (way == 2) comm_allreduce_float(sync, 1);
        }
    double t[1] = {comm_time() - t0};
    comm_barrier();
    if (way == 0) {
        comm_allreduce_max_double(t, 1); /* the others' is zero work */
        return t[0] / steps;
    }
    comm_allreduce_double(t, 1);
    return t[0] / W / steps;
}

int main(int argc, char **argv)
{
    if (comm_init(&argc, &argv) != COMM_OK) return 1;
    openblas_set_num_threads(1);
    const int W = comm_world();
    double steps_ms[64] = {0.8, 1.6, 10, 300};
    const int nd = argc > 1 ? argc - 1 : 4;
    if (nd > 64) {
        if (comm_rank() == 0) fprintf(stderr, "lockstep_bench: at most 64 step lengths\n");
        comm_finalize();
        return 2;
    }
    for (int d = 0; d < nd && argc > 1; d++) {
        char *end;
        steps_ms[d] = strtod(argv[d + 1], &end);
        if (end == argv[d + 1] || *end || !(steps_ms[d] > 0 && steps_ms[d] <= 1e5)) {
            if (comm_rank() == 0)
                fprintf(stderr,
                        "lockstep_bench: step length '%s' is not a number of milliseconds "
                        "in (0, 100000]\n",
                        argv[d + 1]);
            comm_finalize();
            return 2;
        }
    }
    const char *r = getenv("REPS");
    int reps = r ? atoi(r) : 3;
    reps = reps < 1 ? 1 : reps > MAXREPS ? MAXREPS : reps;
    A = calloc((size_t)M * K, sizeof *A), B = calloc((size_t)K * N, sizeof *B);
    C = calloc((size_t)M * N, sizeof *C);
    if (!A || !B || !C) {
        fprintf(stderr, "lockstep_bench: rank %d: out of memory\n", comm_rank());
        comm_abort(1);
    }
    for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)K * N; i++) B[i] = (float)(i % 5) * 0.1f;
    /* one product's time, on rank 0 alone (the median of 7 timings) */
    work(50);
    double cal[7];
    for (int k = 0; k < 7; k++) cal[k] = one_way(0, 20, 10) / 20;
    const double per = bench_median(cal, 7);
    comm_printf0("lockstep over %d ranks, 1 OpenBLAS thread each (kernel %s), one %dx%dx%d "
                 "product %.3f ms alone; medians of %d\n",
                 W, openblas_get_corename(), M, N, K, per * 1e3, reps);
    comm_printf0("%9s %7s %7s %10s %10s %10s %11s %11s %11s\n", "step ms", "calls", "steps",
                 "alone ms", "free ms", "lock ms", "free/alone", "lock/free", "lock/alone");
    for (int d = 0; d < nd; d++) {
        const double ms = steps_ms[d];
        int calls = (int)(ms / 1e3 / per + 0.5);
        calls = calls < 1 ? 1 : calls;
        int steps = (int)(3.0 / (calls * per)); /* about 3 s per way and rep */
        steps = steps < 10 ? 10 : steps;
        double t[3][MAXREPS];
        for (int k = 0; k < reps; k++) /* the order rotates, so no way always goes first */
            for (int j = 0; j < 3; j++) {
                const int way = (k + j) % 3;
                t[way][k] = one_way(way, calls, steps);
            }
        const double a = bench_median(t[0], reps), f = bench_median(t[1], reps),
                     l = bench_median(t[2], reps);
        comm_printf0("%9.2f %7d %7d %10.3f %10.3f %10.3f %10.0f%% %10.0f%% %10.0f%%\n",
                     calls * per * 1e3, calls, steps, a * 1e3, f * 1e3, l * 1e3, 100 * a / f,
                     100 * f / l, 100 * a / l);
    }
    free(A), free(B), free(C);
    comm_finalize();
    return 0;
}
