/* Allreduce bandwidth on this machine, through comm/ (run under mpirun):
 *   1. one MPI allreduce of a float buffer, 4 KiB .. 64 MiB;
 *   2. a 40 MB gradient (the large translation model's size) in buckets of
 *      64 KiB .. 40 MB through comm_reducer, as the trainer reduces it.
 * Prints the median time of several repetitions and the bus bandwidth
 * 2 (W-1)/W · bytes / time (what a ring allreduce moves per rank). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "comm.h"

int main(int argc, char **argv)
{
    if (comm_init(&argc, &argv) != COMM_OK) return 1;
    const int W = comm_world();
    const size_t big = 10u << 20; /* floats: 40 MiB */
    float *x = calloc(big + 16, sizeof(float));
    if (!x) return 1;
    const double bus = W > 1 ? 2.0 * (W - 1) / W : 1.0;
    comm_printf0("allreduce over %d ranks\n%12s %12s %12s\n", W, "bytes", "median ms", "bus GB/s");
    for (size_t bytes = 4096; bytes <= ((size_t)64 << 20); bytes *= 2) {
        size_t n = bytes / sizeof(float);
        if (n > big) break;
        int reps = bytes < (1u << 20) ? 200 : 20;
        double t[200];
        for (int r = 0; r < reps; r++) {
            comm_barrier();
            double t0 = comm_time();
            comm_allreduce_float(x, n);
            t[r] = comm_time() - t0;
        }
        comm_allreduce_max_double(t, (size_t)reps);
        double m = bench_median(t, reps);
        comm_printf0("%12zu %12.3f %12.2f\n", bytes, m * 1e3, bus * (double)bytes / m / 1e9);
    }
    /* the 40 MB gradient as 64 tensors, reduced in buckets */
    enum { NT = 64 };
    size_t off[NT], size[NT];
    for (int i = 0; i < NT; i++) off[i] = (big / NT) * (size_t)i, size[i] = big / NT;
    comm_printf0("\n40 MiB gradient in buckets (after backward, blocking)\n%12s %8s %12s %12s\n",
                 "bucket KiB", "buckets", "median ms", "bus GB/s");
    const int kbs[] = {64, 256, 512, 1024, 2048, 4096, 8192, 16384, 0};
    for (size_t k = 0; k < sizeof kbs / sizeof *kbs; k++) {
        comm_reducer *r;
        if (comm_reducer_create(&r, x, big, off, size, NT, 16, (size_t)kbs[k] * 1024, 0) != COMM_OK)
            return 1;
        double t[10];
        for (int rep = 0; rep < 10; rep++) {
            comm_barrier();
            double t0 = comm_time();
            comm_reducer_begin(r);
            comm_reducer_finish(r);
            t[rep] = comm_time() - t0;
        }
        comm_allreduce_max_double(t, 10);
        double m = bench_median(t, 10);
        char label[32];
        snprintf(label, sizeof label, kbs[k] ? "%d" : "one", kbs[k]);
        comm_printf0("%12s %8d %12.2f %12.2f\n", label, comm_reducer_buckets(r), m * 1e3,
                     bus * (double)(big * sizeof(float)) / m / 1e9);
        comm_reducer_free(r);
    }
    free(x);
    comm_finalize();
    return 0;
}
