/* Element-wise exp, sigmoid and tanh for the cells and the softmax (private to
 * model/), written so that a loop over them vectorises: no calls, no branches,
 * only arithmetic, conversions, bit casts and selects.
 *
 * glibc's expf/tanhf are scalar calls; on the book's model they were 40 % of
 * the training time (perf). These are within a few float ulps of the exact
 * functions (test_layers checks them against double precision over the whole
 * range), NaN in gives NaN out, and ±inf saturate.
 *
 * They are plain IEEE float arithmetic without contraction (ISO C mode, so no
 * fused multiply-add unless written), so every vector width computes the
 * same bits: ranks on machines with different instruction sets stay
 * identical. VM_CLONES compiles a function for AVX-512, AVX2 and the baseline
 * and picks one at load time (GCC/clang function multi-versioning), so one
 * binary is fast everywhere. */
#ifndef SEQPAR_MODEL_VMATH_H
#define SEQPAR_MODEL_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang_analyzer__) &&                    \
    !defined(SEQPAR_NO_CLONES)
#define VM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VM_CLONES
#endif

/* e^x: x = k·ln2 + r with |r| ≤ ln2/2 (Cody–Waite split of ln2), e^r by a
 * degree-6 polynomial fitted to relative error (3.6e-9 before rounding),
 * 2^k built in the exponent bits. x is clamped to ±87 first, where e^x is
 * still a normal float. */
static inline float vm_expf(float x)
{
    float c = x > -87.0f ? x : -87.0f; /* NaN goes to -87 here, and back out below */
    c = c < 87.0f ? c : 87.0f;
    float k = c * 1.44269504f + 12582912.0f; /* 1.5·2^23: rounds to an integer */
    k -= 12582912.0f;
    float r = c - k * 0.693359375f;
    r = r + k * 2.12194440e-4f;
    float p = 1.37514074e-3f;
    p = p * r + 8.36891588e-3f;
    p = p * r + 4.16695327e-2f;
    p = p * r + 1.66665182e-1f;
    p = p * r + 4.99999881e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)k + 127) * 8388608; /* (k + 127) << 23, k in [-126, 126] */
    float s;
    memcpy(&s, &bits, sizeof s);
    float y = p * s;
    return x == x ? y : x;
}

static inline float vm_sigmoidf(float x)
{
    return 1.0f / (1.0f + vm_expf(-x));
}

/* tanh: an odd polynomial (fitted, 1.1e-9 relative before rounding) below
 * |x| = 0.55, where 1 − 2/(e^{2|x|} + 1) would cancel; that form above, with
 * |x| clamped to 10 (where it is 1 in float). */
static inline float vm_tanhf(float x)
{
    float a = fabsf(x);
    float ac = a < 10.0f ? a : 10.0f;
    float big = 1.0f - 2.0f / (vm_expf(2.0f * ac) + 1.0f);
    float x2 = x * x;
    float p = -6.26436807e-3f;
    p = p * x2 + 2.10641362e-2f;
    p = p * x2 - 5.38502969e-2f;
    p = p * x2 + 1.33325651e-1f;
    p = p * x2 - 3.33333164e-1f;
    float small = x + x * x2 * p;
    float t = a < 0.55f ? small : copysignf(big, x);
    return x == x ? t : x;
}

#endif
