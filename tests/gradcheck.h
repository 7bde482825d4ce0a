/* Central finite-difference gradient checks shared by the CUnit suites.
 *
 * Tolerance, and why: the forward passes run in float32 (the loss is summed in
 * double). A central difference with step h has truncation error O(h²·f''')
 * and rounding error about ε_f32·|terms|/h. With h = 1e-2, values O(1) and
 * losses summing O(10²) terms, the first is ~1e-5 and the second ~1e-4, so an
 * element passes when |analytic − numeric| ≤ 2e-3 + 2e-2·|numeric|. A wrong
 * backward (a missing term, a wrong gate, a transposed product) is off by
 * O(|gradient|) ~ 1e-1 and fails by orders of magnitude; the suites also
 * print the worst relative difference they saw. */
#ifndef SEQPAR_TESTS_GRADCHECK_H
#define SEQPAR_TESTS_GRADCHECK_H

#include <math.h>
#include <stdio.h>
#include <stddef.h>

#include "rng.h"

#define GC_STEP 1e-2
#define GC_ATOL 2e-3
#define GC_RTOL 2e-2

typedef double (*gc_loss_fn)(void *ctx);

/* Checks the analytic gradient `grad` (n) of loss(ctx) with respect to the n
 * values at `x`. Returns the number of elements outside tolerance and reports
 * the worst |a − n| / max(|n|, 1e-2) in *worst. Checks at most `max_check`
 * elements, spread evenly (0 = all). */
static inline int gc_check(const char *what, float *x, const float *grad, size_t n, gc_loss_fn f,
                           void *ctx, size_t max_check, double *worst)
{
    int bad = 0;
    double w = 0.0;
    size_t stride = (max_check && n > max_check) ? n / max_check : 1;
    for (size_t i = 0; i < n; i += stride) {
        float keep = x[i];
        x[i] = keep + (float)GC_STEP;
        double lp = f(ctx);
        x[i] = keep - (float)GC_STEP;
        double lm = f(ctx);
        x[i] = keep;
        double num = (lp - lm) / (2.0 * GC_STEP);
        double diff = fabs(num - (double)grad[i]);
        double rel = diff / fmax(fabs(num), 1e-2);
        if (rel > w) w = rel;
        if (diff > GC_ATOL + GC_RTOL * fabs(num)) {
            if (bad < 5)
                fprintf(stderr, "  %s[%zu]: analytic %.6g numeric %.6g\n", what, i, grad[i], num);
            bad++;
        }
    }
    if (worst && w > *worst) *worst = w;
    return bad;
}

/* Deterministic test values in [-scale, scale). */
static inline void gc_fill(float *x, size_t n, float scale, uint64_t key)
{
    for (size_t i = 0; i < n; i++) x[i] = scale * (2.0f * rng_uniform(key, 99, i, 0, 0) - 1.0f);
}

/* Σ w·y in double: a loss whose gradient with respect to y is w. */
static inline double gc_dot(const float *w, const float *y, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)w[i] * y[i];
    return s;
}

#endif
