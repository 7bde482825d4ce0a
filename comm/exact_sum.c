/* Exact, order-independent fixed-point sums: see exact_sum.h for the
 * representation, the scale and the error bound.
 *
 * Compiled with -fno-math-errno (comm/CMakeLists.txt) so that llrint is the
 * processor's conversion under the default rounding mode (to nearest, ties
 * to even) rather than a library call; nothing here reads errno. */
#include "exact_sum.h"

#include <math.h>

enum { CHUNK = 2048 }; /* elements checked, then added, while in cache */

/* ceil(log2 count) for count >= 1 */
static int log2_ceil(long count)
{
    int c = 0;
    while ((1L << c) < count) c++;
    return c;
}

int exact_exponent(const float *x, size_t n, int *e, size_t *at)
{
    float m = 0.0f, probe = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        m = a > m ? a : m;
        probe += x[i] * 0.0f; /* NaN as soon as one element is NaN or infinite */
    }
    if (probe != 0.0f) {
        for (size_t i = 0; i < n; i++)
            if (!isfinite(x[i])) {
                if (at) *at = i;
                return EXACT_NONFINITE;
            }
    }
    if (m == 0.0f) {
        *e = EXACT_E_ZERO;
        return EXACT_OK;
    }
    (void)frexpf(m, e); /* m = f · 2^e, 0.5 <= f < 1: m < 2^e */
    return EXACT_OK;
}

int exact_scale(int e, long count, int *s)
{
    if (count < 1 || count > (1L << 40)) return EXACT_COUNT;
    /* all zeros: every lane is 0 whatever the scale; 0 keeps 2^-s finite */
    *s = e == EXACT_E_ZERO ? 0 : 62 - e - log2_ceil(count);
    return EXACT_OK;
}

int exact_add(int64_t *acc, const float *x, size_t n, int s, long count, size_t *at)
{
    if (count < 1 || count > (1L << 40)) return EXACT_COUNT;
    const double scale = ldexp(1.0, s), lim = ldexp(1.0, 62 - log2_ceil(count));
    for (size_t lo = 0; lo < n; lo += CHUNK) {
        size_t hi = n - lo < CHUNK ? n : lo + CHUNK;
        int out = 0;
        for (size_t i = lo; i < hi; i++) out |= !(fabs((double)x[i] * scale) <= lim); /* or NaN */
        if (out) {
            for (size_t i = lo; i < hi; i++)
                if (!(fabs((double)x[i] * scale) <= lim)) {
                    if (at) *at = i;
                    break;
                }
            return EXACT_RANGE;
        }
        for (size_t i = lo; i < hi; i++) acc[i] += (int64_t)llrint((double)x[i] * scale);
    }
    return EXACT_OK;
}

int exact_to_float(float *out, const int64_t *acc, size_t n, int s)
{
    const int64_t lim = (int64_t)1 << 62;
    const double inv = ldexp(1.0, -s);
    int rc = EXACT_OK;
    for (size_t i = 0; i < n; i++) {
        if (acc[i] > lim || acc[i] < -lim) rc = EXACT_RANGE;
        /* (float) of the integer is the one rounding; scaling a 24-bit
         * significand by a power of two in double is exact, and so is its
         * conversion back unless the result falls below float's normal range */
        out[i] = (float)((double)(float)acc[i] * inv);
    }
    return rc;
}

int exact_add_double(int64_t *acc, double x, int s, long count)
{
    if (count < 1 || count > (1L << 40)) return EXACT_COUNT;
    double v = x * ldexp(1.0, s);
    if (!(fabs(v) <= ldexp(1.0, 62 - log2_ceil(count))))
        return isfinite(x) ? EXACT_RANGE : EXACT_NONFINITE;
    *acc += (int64_t)llrint(v);
    return EXACT_OK;
}

double exact_to_double(int64_t acc, int s)
{
    return (double)acc * ldexp(1.0, -s);
}
