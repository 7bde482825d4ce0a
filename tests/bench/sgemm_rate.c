/* sgemm rate of this machine's OpenBLAS at one shape:
 *   sgemm_rate M N K [THREADS [nn|nt|rg]]
 * times C (M×N) = A (M×K) · B (K×N), B stored as (K, N) (nn, the default) or
 * as its transpose (N, K) (nt, as W_hh is stored), or with seqpar's own
 * recurrent product (rg: B packed once, then rgemm; one thread), and prints
 * the best and median GFLOP/s of repeated calls and the kernel OpenBLAS
 * chose. The benchmark harness uses it for the sgemm rate at a model's
 * dominant shape. */
#include "blas_private.h" /* model.h, then CBLAS without <complex.h>'s I */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: sgemm_rate M N K [THREADS [nn|nt|rg]]\n");
        return 2;
    }
    const int M = atoi(argv[1]), N = atoi(argv[2]), K = atoi(argv[3]);
    const int threads = argc > 4 ? atoi(argv[4]) : 1;
    const char *layout = argc > 5 ? argv[5] : "nn";
    if (M < 1 || N < 1 || K < 1 || threads < 1) {
        fprintf(stderr, "sgemm_rate: sizes and threads must be >= 1\n");
        return 2;
    }
    const int rg = strcmp(layout, "rg") == 0;
    if (strcmp(layout, "nn") != 0 && strcmp(layout, "nt") != 0 && !rg) {
        fprintf(stderr, "sgemm_rate: layout '%s': expected nn, nt or rg\n", layout);
        return 2;
    }
    if (rg && !rgemm_available()) {
        fprintf(stderr, "sgemm_rate: rg needs AVX-512 (and SEQPAR_RGEMM unset)\n");
        return 2;
    }
    const enum CBLAS_TRANSPOSE tb = layout[1] == 't' ? CblasTrans : CblasNoTrans;
    const int ldb = tb == CblasTrans ? K : N;
    openblas_set_num_threads(threads);
    float *A = malloc(sizeof(float) * (size_t)M * K), *B = malloc(sizeof(float) * (size_t)K * N);
    float *C = malloc(sizeof(float) * (size_t)M * N);
    if (!A || !B || !C) return 1;
    for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (float)(i % 7) * 0.01f;
    for (size_t i = 0; i < (size_t)K * N; i++) B[i] = (float)(i % 5) * 0.01f;
    const double flop = 2.0 * M * N * K;
    int reps = (int)(2e10 / flop) + 3;
    if (reps > 200) reps = 200;
    double *rate = malloc(sizeof(double) * (size_t)reps);
    if (!rate) return 1;
    /* 64-byte aligned, as a direction's packed W_hh */
    float *P =
        rg ? aligned_alloc(64, (sizeof(float) * rgemm_packed_size(K, N) + 63) / 64 * 64) : NULL;
    if (rg && !P) return 1;
    if (rg) rgemm_pack(P, B, K, N, N, 0);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, tb, M, N, K, 1.0f, A, K, B, ldb, 0.0f, C, N);
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (rg)
            rgemm(M, N, K, A, K, P, NULL, C, N); /* C += A·B: the same work */
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, tb, M, N, K, 1.0f, A, K, B, ldb, 0.0f, C, N);
        rate[r] = flop / (now() - t0) / 1e9;
    }
    const double med = bench_median(rate, reps); /* sorted: the best is last */
    printf("sgemm %s M=%d N=%d K=%d threads=%d kernel=%s best_gflops=%.1f median_gflops=%.1f\n",
           layout, M, N, K, rg ? 1 : threads, openblas_get_corename(), rate[reps - 1], med);
    free(A), free(B), free(C), free(P), free(rate);
    return 0;
}
