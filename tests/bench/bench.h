/* What the benchmark drivers share. */
#ifndef SEQPAR_BENCH_H
#define SEQPAR_BENCH_H

#include <stdlib.h>

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sorts t[0..n) ascending and returns t[n / 2], its median (the upper of the
 * middle two when n is even). */
static inline double bench_median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, bench_cmp_double);
    return t[n / 2];
}

#endif
