/* Exact, order-independent fixed-point sums: see exact_sum.h for the
 * representation, the scale and the error bound.
 *
 * The loops work on the floats' bits with integer arithmetic only (maxima of
 * magnitudes, shifts of significands, rounding to nearest-even by hand), so
 * they vectorise and every instruction set computes the same bits; EX_CLONES
 * compiles them for AVX-512 (with its 64-bit integer conversions), AVX2 and
 * the baseline, chosen at load time. */
#include "exact_sum.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang_analyzer__) &&                    \
    !defined(SEQPAR_NO_CLONES)
#define EX_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define EX_CLONES
#endif

enum { CHUNK = 2048 }; /* elements checked, then added, while in cache */

/* ceil(log2 count) for count >= 1 */
static int log2_ceil(long count)
{
    int c = 0;
    while ((1L << c) < count) c++;
    return c;
}

static inline uint32_t bits_of(float x)
{
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    return b;
}

/* The largest magnitude's bits: for non-negative floats the order of the
 * bits is the order of the values, and NaN and ±inf sort above every finite
 * one (exponent field 255). */
EX_CLONES static uint32_t max_magnitude_bits(const float *x, size_t n)
{
    uint32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, x + i, sizeof b);
        b &= 0x7fffffffu;
        m = b > m ? b : m;
    }
    return m;
}

int exact_exponent(const float *x, size_t n, int *e, size_t *at)
{
    const uint32_t m = max_magnitude_bits(x, n);
    if (m >= 0x7f800000u) {
        for (size_t i = 0; i < n; i++)
            if (!isfinite(x[i])) {
                if (at) *at = i;
                break;
            }
        return EXACT_NONFINITE;
    }
    if (m == 0) {
        *e = EXACT_E_ZERO;
        return EXACT_OK;
    }
    float v;
    memcpy(&v, &m, sizeof v);
    (void)frexpf(v, e); /* v = f · 2^e, 0.5 <= f < 1: v < 2^e */
    return EXACT_OK;
}

int exact_scale(int e, long count, int *s)
{
    if (count < 1 || count > (1L << 40)) return EXACT_COUNT;
    /* all zeros: the scale for a bound of 2^-148, so that an addend that is
     * not zero after all is either out of range or (the smallest
     * subnormal) held exactly: never lost */
    *s = 62 - (e == EXACT_E_ZERO ? -148 : e) - log2_ceil(count);
    return EXACT_OK;
}

/* x · 2^s rounded to the nearest integer, ties to even, from the bits:
 * x = ±sig · 2^(E − 150) with sig the 24-bit significand (E the exponent
 * field; subnormals: sig without the implicit bit, E = 1), shifted left or
 * right (then rounded by hand). *out is set when the result would reach 2^62
 * (the caller's bound is lower) or x is not finite. */
static inline int64_t lane_of(uint32_t b, int64_t s, int64_t *out)
{
    /* branch-free, all in 64 bits, no booleans mixed into integer
     * arithmetic and no constant shifted by a variable (GCC 12 vectorises
     * none of those) */
    const int64_t B = (int64_t)b, E = (B >> 23) & 0xff, has = E ? 1 : 0;
    const int64_t sig = (B & 0x7fffff) | (has << 23);
    const int64_t sh = (E | (1 - has)) - 150 + s;
    const int64_t up = sh > 0 ? (sh < 62 ? sh : 62) : 0;
    const int64_t dn = sh < 0 ? (-sh < 26 ? -sh : 26) : 0; /* >= 25: the result is 0 */
    /* sig · 2^up below 2^62, or out (zeros never are) */
    const int64_t over = sh > 62 && sig ? 1 : 0, wide = (sig >> (62 - up)) ? 1 : 0;
    *out |= over | wide | (E == 255 ? 1 : 0);
    const uint64_t u = (uint64_t)sig, q0 = (u << up) >> dn;
    /* to nearest, ties to even: r the bits shifted out (0 when up > 0), hi
     * whether they reach half, lo what is left above half (unsigned: an
     * out-of-range lane's garbage is defined, and reported) */
    const uint64_t r = u - ((q0 << dn) >> up), t = r << 1, hi = t >> dn, lo = t - (hi << dn);
    const uint64_t q = q0 + (hi & ((lo ? 1 : 0) | (q0 & 1)));
    const uint64_t neg = (uint64_t)0 - (uint64_t)(B >> 31); /* all ones for a negative x */
    return (int64_t)((q ^ neg) - neg);
}

/* Adds the lanes; 1 when an element was out of range, and then takes them
 * back out (in unsigned arithmetic, so both ways are exact modulo 2^64 and
 * acc is as it was). */
EX_CLONES static int add_chunk(int64_t *restrict acc, const float *restrict x, size_t n, int s,
                               int64_t lim)
{
    int64_t out = 0;
    uint64_t *a = (uint64_t *)acc;
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, x + i, sizeof b);
        int64_t o = 0;
        const int64_t q = lane_of(b, s, &o);
        out |= o | (q > lim) | (q < -lim);
        a[i] += (uint64_t)q;
    }
    if (!out) return 0;
    for (size_t i = 0; i < n; i++) {
        int64_t ignored = 0;
        a[i] -= (uint64_t)lane_of(bits_of(x[i]), s, &ignored);
    }
    return 1;
}

int exact_add(int64_t *acc, const float *x, size_t n, int s, long count, size_t *at)
{
    if (count < 1 || count > (1L << 40)) return EXACT_COUNT;
    const int64_t lim = (int64_t)1 << (62 - log2_ceil(count));
    for (size_t lo = 0; lo < n; lo += CHUNK) {
        const size_t len = n - lo < CHUNK ? n - lo : CHUNK;
        if (!add_chunk(acc + lo, x + lo, len, s, lim)) continue;
        for (size_t i = lo; i < lo + len; i++) {
            int64_t out = 0;
            const int64_t q = lane_of(bits_of(x[i]), s, &out);
            if (out || q > lim || q < -lim) {
                if (at) *at = i;
                break;
            }
        }
        return EXACT_RANGE;
    }
    return EXACT_OK;
}

EX_CLONES static int to_float(float *restrict out, const int64_t *restrict acc, size_t n,
                              double inv)
{
    const int64_t lim = (int64_t)1 << 62;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        bad |= (acc[i] > lim) | (acc[i] < -lim);
        /* (float) of the integer is the one rounding; scaling a 24-bit
         * significand by a power of two in double is exact, and so is its
         * conversion back unless the result falls below float's normal range */
        out[i] = (float)((double)(float)acc[i] * inv);
    }
    return bad;
}

int exact_to_float(float *out, const int64_t *acc, size_t n, int s)
{
    return to_float(out, acc, n, ldexp(1.0, -s)) ? EXACT_RANGE : EXACT_OK;
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
