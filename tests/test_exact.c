/* comm/exact_sum: the deterministic mode's fixed-point sums. The same
 * addends summed in random groupings and orders give the same bits; the
 * result is within the documented bound of a long-double reference; every
 * way out of range is reported, never wrapped. */
#include <CUnit/CUnit.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "exact_sum.h"

enum { N = 257, K = 48 }; /* elements per addend; addends */

static uint64_t seed = 12345;

static uint64_t next(void) /* SplitMix64 */
{
    uint64_t z = (seed += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static double uniform(void)
{
    return (double)(next() >> 11) * 0x1p-53;
}

/* K addends of N elements spanning magnitudes 2^-30 .. 2^10 with both
 * signs, some exact zeros and cancelling pairs */
static void fill(float x[K][N])
{
    for (int k = 0; k < K; k++)
        for (int i = 0; i < N; i++) {
            double mag = ldexp(1.0, (int)(uniform() * 40) - 30) * (1 + uniform());
            x[k][i] = (float)(uniform() < 0.5 ? -mag : mag);
            if (i % 17 == 0) x[k][i] = 0.0f;
        }
    for (int i = 0; i < N; i += 5) x[K - 1][i] = -x[0][i]; /* cancels exactly */
}

static int global_scale(float x[K][N], int *s)
{
    int emax = EXACT_E_ZERO;
    for (int k = 0; k < K; k++) {
        int e;
        if (exact_exponent(x[k], N, &e, NULL) != EXACT_OK) return -1;
        emax = e > emax ? e : emax;
    }
    return exact_scale(emax, K, s);
}

static void shuffle(int *p, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(next() % (uint64_t)(i + 1)), t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
}

/* sums the addends in a random order, split into a random number of groups
 * (as ranks would hold them), each group summed into its own lanes, then the
 * groups' lanes added in another random order (as MPI_SUM would) */
static void grouped_sum(float x[K][N], int s, float *out)
{
    static int64_t part[K][N];
    int64_t total[N] = {0};
    int order[K], groups = 1 + (int)(next() % K), gorder[K];
    for (int k = 0; k < K; k++) order[k] = k;
    shuffle(order, K);
    memset(part, 0, sizeof part);
    for (int k = 0; k < K; k++)
        CU_ASSERT_EQUAL_FATAL(exact_add(part[k % groups], x[order[k]], N, s, K, NULL), EXACT_OK);
    for (int g = 0; g < groups; g++) gorder[g] = g;
    shuffle(gorder, groups);
    for (int g = 0; g < groups; g++)
        for (int i = 0; i < N; i++) total[i] += part[gorder[g]][i];
    CU_ASSERT_EQUAL(exact_to_float(out, total, N, s), EXACT_OK);
}

static void test_associative(void)
{
    static float x[K][N];
    float first[N], again[N];
    int s, float_differs = 0;
    fill(x);
    CU_ASSERT_EQUAL_FATAL(global_scale(x, &s), EXACT_OK);
    grouped_sum(x, s, first);
    for (int trial = 0; trial < 50; trial++) {
        grouped_sum(x, s, again);
        CU_ASSERT_EQUAL(memcmp(first, again, sizeof first), 0);
        /* the float sum in that order and in reverse: not associative, which
         * is why this exists (a sanity check on the inputs' difficulty) */
        for (int i = 0; i < N; i++) {
            float a = 0, b = 0;
            for (int k = 0; k < K; k++) a += x[k][i];
            for (int k = K - 1; k >= 0; k--) b += x[k][i];
            float_differs += a != b;
        }
    }
    CU_ASSERT(float_differs > 0);
}

static void test_bound(void)
{
    static float x[K][N];
    float got[N];
    int s, emax = EXACT_E_ZERO;
    fill(x);
    CU_ASSERT_EQUAL_FATAL(global_scale(x, &s), EXACT_OK);
    for (int k = 0; k < K; k++) {
        int e;
        exact_exponent(x[k], N, &e, NULL);
        emax = e > emax ? e : emax;
    }
    grouped_sum(x, s, got);
    /* the documented bound: K · 2^-(s+1) from the lanes, half an ulp of the
     * result from the conversion */
    long double lanes = (long double)K * ldexpl(1.0L, -(s + 1));
    for (int i = 0; i < N; i++) {
        long double ref = 0;
        for (int k = 0; k < K; k++) ref += x[k][i]; /* its error is far below the bound */
        long double ulp = got[i] == 0 ? ldexpl(1.0L, -149) : ldexpl(1.0L, ilogbf(got[i]) - 23);
        long double err = fabsl((long double)got[i] - ref);
        CU_ASSERT(err <= lanes + ulp / 2);
        if (!(err <= lanes + ulp / 2)) break;
    }
    /* and the bound is far below a float sum's: relative to the largest
     * element, 2^(e+log2 K−63) against the float sum's ~K · 2^(e−25) */
    CU_ASSERT(lanes < ldexpl(1.0L, emax - 40));
    /* exact cancellation gives exact zero */
    float z[2][N];
    int64_t acc[N] = {0};
    for (int i = 0; i < N; i++) z[0][i] = -(z[1][i] = x[3][i]);
    CU_ASSERT_EQUAL(exact_add(acc, z[0], N, s, K, NULL), EXACT_OK);
    CU_ASSERT_EQUAL(exact_add(acc, z[1], N, s, K, NULL), EXACT_OK);
    for (int i = 0; i < N; i++) CU_ASSERT_EQUAL(acc[i], 0);
}

static void test_exponent(void)
{
    float v[4] = {0.5f, -3.0f, 0.0f, 1e-3f};
    int e = 0;
    size_t at = 99;
    CU_ASSERT_EQUAL(exact_exponent(v, 4, &e, NULL), EXACT_OK);
    CU_ASSERT_EQUAL(e, 2); /* 3 < 2^2 */
    v[1] = -4.0f;
    exact_exponent(v, 4, &e, NULL);
    CU_ASSERT_EQUAL(e, 3); /* 4 = 2^2 is not < 2^2 */
    float zeros[3] = {0.0f, -0.0f, 0.0f};
    CU_ASSERT_EQUAL(exact_exponent(zeros, 3, &e, NULL), EXACT_OK);
    CU_ASSERT_EQUAL(e, EXACT_E_ZERO);
    int s = -1;
    CU_ASSERT_EQUAL(exact_scale(e, 8, &s), EXACT_OK);
    CU_ASSERT_EQUAL(s, 62 + 148 - 3); /* the smallest float's bound */
    /* zeros add as zeros; anything else at the zeros' scale is out of range */
    int64_t lanes[3] = {0};
    CU_ASSERT_EQUAL(exact_add(lanes, zeros, 3, s, 8, NULL), EXACT_OK);
    CU_ASSERT(lanes[0] == 0 && lanes[1] == 0 && lanes[2] == 0);
    float small = 1e-30f, tiniest = FLT_TRUE_MIN; /* below the bound: kept exactly */
    CU_ASSERT_EQUAL(exact_add(lanes, &small, 1, s, 8, NULL), EXACT_RANGE);
    CU_ASSERT_EQUAL(exact_add(lanes, &tiniest, 1, s, 8, NULL), EXACT_OK);
    CU_ASSERT_EQUAL(lanes[0], (int64_t)1 << (s - 149));
    v[2] = NAN;
    CU_ASSERT_EQUAL(exact_exponent(v, 4, &e, &at), EXACT_NONFINITE);
    CU_ASSERT_EQUAL(at, 2);
    v[2] = 0.0f;
    v[3] = -INFINITY;
    CU_ASSERT_EQUAL(exact_exponent(v, 4, &e, &at), EXACT_NONFINITE);
    CU_ASSERT_EQUAL(at, 3);
    /* the smallest and largest floats keep a usable scale */
    float tiny = FLT_TRUE_MIN, huge = FLT_MAX;
    int64_t acc = 0;
    float back;
    CU_ASSERT_EQUAL(exact_exponent(&tiny, 1, &e, NULL), EXACT_OK);
    CU_ASSERT_EQUAL(exact_scale(e, 1, &s), EXACT_OK);
    CU_ASSERT_EQUAL(exact_add(&acc, &tiny, 1, s, 1, NULL), EXACT_OK);
    exact_to_float(&back, &acc, 1, s);
    CU_ASSERT_EQUAL(back, tiny);
    acc = 0;
    CU_ASSERT_EQUAL(exact_exponent(&huge, 1, &e, NULL), EXACT_OK);
    CU_ASSERT_EQUAL(exact_scale(e, 1, &s), EXACT_OK);
    CU_ASSERT_EQUAL(exact_add(&acc, &huge, 1, s, 1, NULL), EXACT_OK);
    exact_to_float(&back, &acc, 1, s);
    CU_ASSERT_EQUAL(back, huge);
}

static void test_out_of_range(void)
{
    float x[5] = {1.0f, -2.0f, 0.25f, 3.0f, 0.5f};
    int64_t acc[5] = {0};
    int e, s;
    size_t at = 99;
    exact_exponent(x, 5, &e, NULL); /* 3 < 2^2 */
    CU_ASSERT_EQUAL(exact_scale(e, 4, &s), EXACT_OK);
    /* an addend beyond the bound the scale assumed (another rank's larger
     * gradient that this scale never saw): reported with its index */
    x[3] = 9.0f;
    CU_ASSERT_EQUAL(exact_add(acc, x, 5, s, 4, &at), EXACT_RANGE);
    CU_ASSERT_EQUAL(at, 3);
    x[3] = NAN;
    CU_ASSERT_EQUAL(exact_add(acc, x, 5, s, 4, &at), EXACT_RANGE);
    x[3] = 3.0f;
    for (int i = 0; i < 5; i++) CU_ASSERT_EQUAL(acc[i], 0); /* nothing added */
    /* the bound itself is in range: exactly `count` maximal addends fit */
    float big = ldexpf(1.0f, e) * (1 - FLT_EPSILON / 2);
    int64_t lane = 0;
    for (int k = 0; k < 4; k++) CU_ASSERT_EQUAL(exact_add(&lane, &big, 1, s, 4, NULL), EXACT_OK);
    float back;
    CU_ASSERT_EQUAL(exact_to_float(&back, &lane, 1, s), EXACT_OK);
    CU_ASSERT_EQUAL(back, 4 * big);
    /* more addends than the scale's count: the lane leaves ±2^62, reported */
    for (int k = 0; k < 4; k++) exact_add(&lane, &big, 1, s, 4, NULL);
    CU_ASSERT_EQUAL(exact_to_float(&back, &lane, 1, s), EXACT_RANGE);
    /* counts the representation cannot serve */
    CU_ASSERT_EQUAL(exact_scale(0, 0, &s), EXACT_COUNT);
    CU_ASSERT_EQUAL(exact_scale(0, (1L << 40) + 1, &s), EXACT_COUNT);
    CU_ASSERT_EQUAL(exact_add(acc, x, 5, s, 0, NULL), EXACT_COUNT);
}

/* the lanes are llrint(x · 2^s) in double (round to nearest, ties to
 * even), the integer shifts notwithstanding: random floats at random
 * scales, ties, subnormals, both signs */
static void test_rounding(void)
{
    int mismatches = 0, ties = 0;
    for (int t = 0; t < 200000; t++) {
        const int s = (int)(next() % 220) - 60;
        uint32_t b = (uint32_t)next();
        float x;
        memcpy(&x, &b, sizeof x);
        if (!isfinite(x)) continue;
        if (t % 4 == 0) /* an exact tie at this scale: (2k + 1) / 2 · 2^-s */
            x = (float)ldexp((double)(2 * (int)(next() % 1000) + 1) / 2, -s) * (t % 8 ? 1 : -1);
        const double v = ldexp((double)x, s);
        if (!(fabs(v) <= 0x1p40)) continue; /* beyond a lane's bound for 4 addends */
        ties += v - floor(v) == 0.5;
        int64_t lane = 0;
        if (exact_add(&lane, &x, 1, s, 4, NULL) != EXACT_OK || lane != llrint(v)) mismatches++;
    }
    CU_ASSERT_EQUAL(mismatches, 0);
    CU_ASSERT(ties > 1000);
}

static void test_doubles(void)
{
    /* a loss sum: doubles in any order give the same bits */
    double v[64];
    int64_t a = 0, b = 0;
    for (int i = 0; i < 64; i++) v[i] = (uniform() - 0.3) * ldexp(1.0, (int)(uniform() * 20));
    int s;
    CU_ASSERT_EQUAL(exact_scale(21, 64, &s), EXACT_OK);
    for (int i = 0; i < 64; i++) CU_ASSERT_EQUAL(exact_add_double(&a, v[i], s, 64), EXACT_OK);
    for (int i = 63; i >= 0; i--) CU_ASSERT_EQUAL(exact_add_double(&b, v[i], s, 64), EXACT_OK);
    CU_ASSERT_EQUAL(a, b);
    long double ref = 0;
    for (int i = 0; i < 64; i++) ref += v[i];
    CU_ASSERT(fabsl((long double)exact_to_double(a, s) - ref) <=
              64 * ldexpl(1.0L, -(s + 1)) + fabsl(ref) * 0x1p-53L);
    CU_ASSERT_EQUAL(exact_add_double(&a, ldexp(1.0, 22), s, 64), EXACT_RANGE);
    CU_ASSERT_EQUAL(exact_add_double(&a, INFINITY, s, 64), EXACT_NONFINITE);
}

void register_suites(void)
{
    CU_pSuite s = CU_add_suite("exact sums", NULL, NULL);
    CU_add_test(s, "any grouping and order gives the same bits", test_associative);
    CU_add_test(s, "within the documented bound; cancellation exact", test_bound);
    CU_add_test(s, "exponent bound, zeros, non-finite, float extremes", test_exponent);
    CU_add_test(s, "out of range is reported, never wrapped", test_out_of_range);
    CU_add_test(s, "lanes round to nearest, ties to even", test_rounding);
    CU_add_test(s, "doubles (loss sums)", test_doubles);
}
