/* Exact, order-independent sums of float vectors (the deterministic mode's
 * arithmetic, issue 27).
 *
 * A tensor's addends (one per micro-shard, wherever it was computed) are
 * written in fixed point with one scale s shared by every addend of that
 * tensor on every rank: q = round(x · 2^s) in an int64 lane, rounded to
 * nearest, ties to even. Integer addition is associative and, within range,
 * exact, so the lanes' sum is the same integer whatever the grouping: on one
 * rank or many, and in any MPI_SUM tree. The float result is that integer
 * times 2^-s, rounded once.
 *
 * The scale comes from a bound on the magnitudes: e with |x| < 2^e for every
 * element of every addend (the maximum of exact_exponent over all addends:
 * a max is order-independent too), and the number of addends `count`:
 *     s = 62 − e − ceil(log2 count),
 * so one addend's lane is at most 2^62 / count in magnitude and any sum of
 * at most `count` addends stays within ±2^62: no int64 overflow by
 * construction. An addend larger than the bound it was scaled for (a caller's
 * error) is detected by exact_add and reported, never wrapped silently.
 *
 * Error bound, per element, against the real sum of the float addends:
 * each addend's rounding is at most 2^-(s+1), so the integer sum is within
 * count · 2^-(s+1) = count · 2^(e + ceil(log2 count) − 63) of the real sum,
 * then the conversion to float adds at most half an ulp of the result. For
 * 1024 addends that is 2^(e−43): about 1e-13 of the tensor's largest
 * element, where a float sum of 1024 addends carries up to ~1024 · 2^(e−25)
 * of rounding. Elements more than about 2^(62 − 2·log2 count) below the
 * tensor's largest are represented only to that absolute precision (they are
 * below the float noise of the largest element anyway). */
#ifndef SEQPAR_EXACT_SUM_H
#define SEQPAR_EXACT_SUM_H

#include <stddef.h>
#include <stdint.h>

enum {
    EXACT_OK = 0,
    EXACT_NONFINITE = -1, /* an input element is NaN or infinite */
    EXACT_RANGE = -2,     /* an addend exceeds the bound its scale assumed */
    EXACT_COUNT = -3      /* count < 1, or too many addends for 62 bits */
};

/* The exponent of all zeros: any e works for them; exact_scale treats it
 * as the smallest. */
#define EXACT_E_ZERO (-1000)

/* Sets *e to the smallest integer with |x[i]| < 2^e for every i (frexp's
 * exponent of the largest magnitude), EXACT_E_ZERO when every element is
 * zero. EXACT_NONFINITE (and *at, if not NULL, the first such index) when
 * an element is NaN or infinite. */
int exact_exponent(const float *x, size_t n, int *e, size_t *at);

/* The scale for at most `count` addends bounded by 2^e; EXACT_COUNT when
 * count < 1 or count > 2^40 (s would leave too few bits). */
int exact_scale(int e, long count, int *s);

/* acc[i] += round(x[i] · 2^s), i < n. EXACT_RANGE (*at, if not NULL, the
 * first offending index) when an element's lane would exceed 2^62 / count:
 * x was larger than the bound e that gave s. Elements are added in chunks
 * of 2048; the chunk holding the offender is taken back out, earlier chunks
 * stay added, so acc is whole again only for n <= 2048: discard it. */
int exact_add(int64_t *acc, const float *x, size_t n, int s, long count, size_t *at);

/* out[i] = acc[i] · 2^-s, rounded to the nearest float once. EXACT_RANGE
 * when a lane is beyond ±2^62 (more addends were summed than the scale's
 * count allowed). */
int exact_to_float(float *out, const int64_t *acc, size_t n, int s);

/* A double (a loss sum, a norm's square) as one lane at a fixed scale, for
 * scalars whose magnitude is bounded by 2^e: the same contract as exact_add
 * and exact_to_float for one element. */
int exact_add_double(int64_t *acc, double x, int s, long count);
double exact_to_double(int64_t acc, int s);

#endif
