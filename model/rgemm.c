/* The recurrent product of one time step, C (M, N) += A (M, K) · B (K, N)
 * (or C = bias + A · B), with B packed once for all the steps of a forward
 * or a backward pass.
 *
 * OpenBLAS packs its B operand again on every call; for a step's product
 * (M = the batch rows, B = W_hh) that packing and the small-M edge cost a
 * quarter of the product's time on the large model (perf: sgemm_itcopy 11 %
 * of the run). Here B is laid out once in panels of RG_NR columns, k-major
 * (panel p holds B[k][p·NR + c] at p·K·NR + k·NR + c, zero past N), and an
 * AVX-512 micro-kernel keeps a 12 × 32 block of C in registers while it
 * streams A's rows and a panel. Each element of C sums over k in order
 * within slices of RG_KC, each slice's sum added to C (the first to the
 * bias, when given).
 *
 * Compiled for AVX-512 only, chosen at run time (rgemm_available); on other
 * CPUs, or with SEQPAR_RGEMM=0 in the environment, the callers keep
 * OpenBLAS. */
#include "model.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang_analyzer__)
#define RG_AVX512 1
#include <immintrin.h>
#endif

enum {
    RG_MR = 12, /* rows of C a micro-kernel call keeps in registers */
    RG_KC = 256 /* the k of one pass over C */
};

size_t rgemm_packed_size(int K, int N)
{
    return (size_t)((N + RG_NR - 1) / RG_NR) * RG_NR * (size_t)K;
}

void rgemm_pack(float *dst, const float *B, int K, int N, int ldb, int trans)
{
    const int np = (N + RG_NR - 1) / RG_NR;
    for (int p = 0; p < np; p++) {
        float *panel = dst + (size_t)p * K * RG_NR;
        const int c0 = p * RG_NR, w = N - c0 < RG_NR ? N - c0 : RG_NR;
        for (int k = 0; k < K; k++) {
            float *row = panel + (size_t)k * RG_NR;
            if (trans)
                for (int c = 0; c < w; c++) row[c] = B[(size_t)(c0 + c) * ldb + k];
            else
                memcpy(row, B + (size_t)k * ldb + c0, (size_t)w * sizeof(float));
            for (int c = w; c < RG_NR; c++) row[c] = 0.0f;
        }
    }
}

#ifdef RG_AVX512
int rgemm_available(void)
{
    static int known = -1;
    if (known < 0) {
        /* SEQPAR_RGEMM=0 keeps OpenBLAS (the tests run both paths) */
        const char *env = getenv("SEQPAR_RGEMM");
        __builtin_cpu_init();
        known = !(env && strcmp(env, "0") == 0) && __builtin_cpu_supports("avx512f") &&
                __builtin_cpu_supports("fma");
    }
    return known;
}

int rgemm_suits(int threads, int M, int N, int K)
{
    const double kc = K < RG_KC ? K : RG_KC;
    return rgemm_available() && (threads == 1 || (double)M * N * K <= 16777216.0) &&
           (double)M * kc <= 65536.0;
}

#define RG_TARGET __attribute__((target("avx512f,fma"), always_inline)) static inline

/* MR rows (a constant after inlining) × 32 columns: C += A · panel, or with
 * bias (32 columns of it) C = bias + A · panel. Columns past w are computed
 * (the panel is zero there) but not stored. */
RG_TARGET void kernel(int MR, int K, const float *A, int lda, const float *P, const float *bias,
                      float *C, int ldc, int w)
{
    __m512 c0[RG_MR], c1[RG_MR];
    for (int r = 0; r < MR; r++) c0[r] = c1[r] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++) {
        const __m512 b0 = _mm512_loadu_ps(P + (size_t)k * RG_NR);
        const __m512 b1 = _mm512_loadu_ps(P + (size_t)k * RG_NR + 16);
        for (int r = 0; r < MR; r++) {
            const __m512 a = _mm512_set1_ps(A[(size_t)r * lda + k]);
            c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
            c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
        }
    }
    const __mmask16 m0 = w >= 16 ? 0xFFFF : (__mmask16)((1u << w) - 1);
    const __mmask16 m1 = w >= 32 ? 0xFFFF : w <= 16 ? 0 : (__mmask16)((1u << (w - 16)) - 1);
    for (int r = 0; r < MR; r++) {
        float *c = C + (size_t)r * ldc;
        const float *s = bias ? bias : c; /* what the products are added to */
        _mm512_mask_storeu_ps(c, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, s), c0[r]));
        _mm512_mask_storeu_ps(c + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, s + 16), c1[r]));
    }
}

/* One call per row count, so that each kernel's MR is a constant. */
#define RG_CASE(n)                                                                                 \
    case n:                                                                                        \
        kernel(n, K, A, lda, P, bias, C, ldc, w);                                                  \
        break;

__attribute__((target("avx512f,fma"))) static void block(int MR, int K, const float *A, int lda,
                                                         const float *P, const float *bias,
                                                         float *C, int ldc, int w)
{
    switch (MR) {
        RG_CASE(1)
        RG_CASE(2)
        RG_CASE(3)
        RG_CASE(4)
        RG_CASE(5)
        RG_CASE(6)
        RG_CASE(7)
        RG_CASE(8)
        RG_CASE(9)
        RG_CASE(10)
        RG_CASE(11)
        RG_CASE(12)
    default:
        break;
    }
}
#undef RG_CASE

__attribute__((target("avx512f,fma"))) void rgemm(int M, int N, int K, const float *A, int lda,
                                                  const float *Bp, const float *bias, float *C,
                                                  int ldc)
{
    const int np = (N + RG_NR - 1) / RG_NR;
    /* K in slices of RG_KC, then panel by panel: a slice of a panel (KC × 32
     * floats, 32 KiB) stays in L1 while every row block passes over it */
    for (int k0 = 0; k0 < K; k0 += RG_KC) {
        const int kc = K - k0 < RG_KC ? K - k0 : RG_KC;
        for (int p = 0; p < np; p++) {
            const float *P = Bp + ((size_t)p * K + k0) * RG_NR;
            const int c0 = p * RG_NR, w = N - c0 < RG_NR ? N - c0 : RG_NR;
            for (int i = 0; i < M; i += RG_MR) {
                const int mr = M - i < RG_MR ? M - i : RG_MR;
                /* the first slice starts from the bias, when there is one */
                block(mr, kc, A + (size_t)i * lda + k0, lda, P, bias && k0 == 0 ? bias + c0 : NULL,
                      C + (size_t)i * ldc + c0, ldc, w);
            }
        }
    }
}
#else
int rgemm_available(void)
{
    return 0;
}

int rgemm_suits(int threads, int M, int N, int K)
{
    (void)threads, (void)M, (void)N, (void)K;
    return 0;
}

void rgemm(int M, int N, int K, const float *A, int lda, const float *Bp, const float *bias,
           float *C, int ldc)
{
    (void)M, (void)N, (void)K, (void)A, (void)lda, (void)Bp, (void)bias, (void)C, (void)ldc;
}
#endif
