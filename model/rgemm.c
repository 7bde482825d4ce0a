/* seqpar's own single-threaded sgemm for the products OpenBLAS serves badly:
 * a time step's recurrent product, C (M, N) += A (M, K) · B (K, N) (or
 * C = bias + A · B), with B packed once for all the steps of a forward or a
 * backward pass (rgemm); and a small layer's products with B read where it
 * lies, row-major (rgemm_nn; rgemm_tn for A stored transposed, as dY in a
 * weight gradient dW += dY^T · X).
 *
 * OpenBLAS packs its B operand again on every call; for a step's product
 * (M = the batch rows, B = W_hh) that packing and the small-M edge cost a
 * quarter of the product's time on the large model (perf: sgemm_itcopy 11 %
 * of the run), and on the book's model (hidden 32) its per-call packing and
 * small-matrix paths cost more than the arithmetic. Here B is laid out once
 * in panels of RG_NR columns, k-major (panel p holds B[k][p·NR + c] at
 * p·K·NR + k·NR + c, zero past N), or read in place 32 columns at a time;
 * an AVX-512 micro-kernel keeps a 12 × 32 block of C in registers while it
 * streams A's rows and a panel. Each element of C sums over k in order
 * within slices of RG_KC (B in place) or RG_KCP (B packed: a step's whole
 * K, so C is read and written once; 3-5 % faster than slices of 256 at the
 * large model's 64 × 1536 × 512 and 64 × 512 × 1536, though the panel's
 * slice then streams from L2), each slice's sum added to C (the first to
 * the bias, when given); rows are taken in chunks of RG_MC, which changes
 * no sum.
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
    RG_MR = 12,    /* rows of C a micro-kernel call keeps in registers */
    RG_KC = 256,   /* the k of one pass over C, B read in place */
    RG_KCP = 2048, /* the same, B packed: a step's K whole (one pass over C) */
    RG_MC = 192    /* rows of A (a multiple of RG_MR) kept in L2 while the panels pass */
};

size_t rgemm_packed_size(int K, int N)
{
    return (size_t)((N + RG_NR - 1) / RG_NR) * RG_NR * (size_t)K;
}

static void pack_generic(float *dst, const float *B, int K, int N, int ldb, int trans)
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
    const double kc = K < RG_KC ? K : RG_KC, macs = (double)M * N * K;
    return rgemm_available() && (macs <= RG_SMALL || (threads == 1 && (double)M * kc <= 65536.0));
}

/* Masks for a panel's w (1..32) columns: its first and second 16. */
__attribute__((target("avx512f"), always_inline)) static inline void
panel_masks(int w, __mmask16 *m0, __mmask16 *m1)
{
    *m0 = w >= 16 ? 0xFFFF : (__mmask16)((1u << w) - 1);
    *m1 = w >= 32 ? 0xFFFF : w <= 16 ? 0 : (__mmask16)((1u << (w - 16)) - 1);
}

/* The AVX-512 packing: a row of B (K, N) goes to its panels 32 columns at a
 * time; a transposed B is gathered 16 columns at a time (one gather reads
 * 16 stored rows at one k). */
__attribute__((target("avx512f"))) static void pack_avx512(float *dst, const float *B, int K, int N,
                                                           int ldb, int trans)
{
    const int np = (N + RG_NR - 1) / RG_NR;
    if (!trans) {
        for (int k = 0; k < K; k++) {
            const float *row = B + (size_t)k * ldb;
            for (int p = 0; p < np; p++) {
                const int c0 = p * RG_NR, w = N - c0 < RG_NR ? N - c0 : RG_NR;
                __mmask16 m0, m1;
                panel_masks(w, &m0, &m1);
                float *o = dst + ((size_t)p * K + k) * RG_NR;
                _mm512_storeu_ps(o, _mm512_maskz_loadu_ps(m0, row + c0));
                _mm512_storeu_ps(o + 16, _mm512_maskz_loadu_ps(m1, row + c0 + 16));
            }
        }
        return;
    }
    const __m512i idx =
        _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                           _mm512_set1_epi32(ldb));
    for (int p = 0; p < np; p++) {
        const int c0 = p * RG_NR, w = N - c0 < RG_NR ? N - c0 : RG_NR;
        __mmask16 m0, m1;
        panel_masks(w, &m0, &m1);
        const float *b0 = B + (size_t)c0 * ldb, *b1 = m1 ? b0 + (size_t)16 * ldb : b0;
        float *o = dst + (size_t)p * K * RG_NR;
        for (int k = 0; k < K; k++, o += RG_NR) {
            _mm512_storeu_ps(o, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m0, idx, b0 + k, 4));
            _mm512_storeu_ps(o + 16,
                             _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m1, idx, b1 + k, 4));
        }
    }
}

void rgemm_pack(float *dst, const float *B, int K, int N, int ldb, int trans)
{
    if (rgemm_available() && (double)N * ldb < 2147483647.0)
        pack_avx512(dst, B, K, N, ldb, trans);
    else
        pack_generic(dst, B, K, N, ldb, trans);
}

#define RG_TARGET __attribute__((target("avx512f,fma"), always_inline)) static inline

/* MR rows (a constant after inlining) × 32 columns: C += A · panel, or with
 * bias (32 columns of it) C = bias + A · panel. The panel's row k is at
 * P + k·ldp; only its first w columns are stored, and with msk only they
 * are read (an unpacked B's last panel; a packed one is zero past N). */
RG_TARGET void kernel(int MR, int at, int msk, int K, const float *A, int lda, const float *P,
                      int ldp, const float *bias, float *C, int ldc, int w)
{
    __mmask16 m0, m1;
    panel_masks(w, &m0, &m1);
    __m512 c0[RG_MR], c1[RG_MR];
    for (int r = 0; r < MR; r++) {
        c0[r] = c1[r] = _mm512_setzero_ps();
        _mm_prefetch((const char *)(C + (size_t)r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(C + (size_t)r * ldc + 16), _MM_HINT_T0);
    }
    for (int k = 0; k < K; k++) {
        const float *pk = P + (size_t)k * ldp;
        const __m512 b0 = msk ? _mm512_maskz_loadu_ps(m0, pk) : _mm512_loadu_ps(pk);
        const __m512 b1 = msk ? _mm512_maskz_loadu_ps(m1, pk + 16) : _mm512_loadu_ps(pk + 16);
        for (int r = 0; r < MR; r++) {
            const __m512 a = _mm512_set1_ps(at ? A[(size_t)k * lda + r] : A[(size_t)r * lda + k]);
            c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
            c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
        }
    }
    for (int r = 0; r < MR; r++) {
        float *c = C + (size_t)r * ldc;
        const float *s = bias ? bias : c; /* what the products are added to */
        _mm512_mask_storeu_ps(c, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, s), c0[r]));
        _mm512_mask_storeu_ps(c + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, s + 16), c1[r]));
    }
}

/* One call per row count, layout of A and masking, so that each kernel's
 * MR, addressing and loads are constants. */
#define RG_CASE(n)                                                                                 \
    case n:                                                                                        \
        if (at && msk)                                                                             \
            kernel(n, 1, 1, K, A, lda, P, ldp, bias, C, ldc, w);                                   \
        else if (at)                                                                               \
            kernel(n, 1, 0, K, A, lda, P, ldp, bias, C, ldc, w);                                   \
        else if (msk)                                                                              \
            kernel(n, 0, 1, K, A, lda, P, ldp, bias, C, ldc, w);                                   \
        else                                                                                       \
            kernel(n, 0, 0, K, A, lda, P, ldp, bias, C, ldc, w);                                   \
        break;

__attribute__((target("avx512f,fma"))) static void block(int MR, int at, int msk, int K,
                                                         const float *A, int lda, const float *P,
                                                         int ldp, const float *bias, float *C,
                                                         int ldc, int w)
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

/* A (M, K) at stride lda, or with at its transpose stored (K, M); B packed
 * (ldb 0) or row-major (K, N) at stride ldb. Within a k slice, rows in
 * chunks of RG_MC (their A stays in L2 while every panel passes), panel by
 * panel (a slice of a panel, KC × 32 floats, stays in L1 or L2 while the
 * chunk's row blocks pass over it). */
__attribute__((target("avx512f,fma"))) static void product(int M, int N, int K, const float *A,
                                                           int lda, int at, const float *B, int ldb,
                                                           const float *bias, float *C, int ldc)
{
    const int np = (N + RG_NR - 1) / RG_NR, ldp = ldb ? ldb : RG_NR;
    const int KC = ldb ? RG_KC : RG_KCP;
    for (int k0 = 0; k0 < K; k0 += KC) {
        const int kc = K - k0 < KC ? K - k0 : KC;
        for (int i0 = 0; i0 < M; i0 += RG_MC) {
            const int i1 = M - i0 < RG_MC ? M : i0 + RG_MC;
            for (int p = 0; p < np; p++) {
                const int c0 = p * RG_NR, w = N - c0 < RG_NR ? N - c0 : RG_NR;
                const float *P = ldb ? B + (size_t)k0 * ldb + c0 : B + ((size_t)p * K + k0) * RG_NR;
                for (int i = i0; i < i1; i += RG_MR) {
                    const int mr = i1 - i < RG_MR ? i1 - i : RG_MR;
                    const float *a = at ? A + (size_t)k0 * lda + i : A + (size_t)i * lda + k0;
                    /* the first slice starts from the bias, when there is one */
                    block(mr, at, ldb && w < RG_NR, kc, a, lda, P, ldp,
                          bias && k0 == 0 ? bias + c0 : NULL, C + (size_t)i * ldc + c0, ldc, w);
                }
            }
        }
    }
}

void rgemm(int M, int N, int K, const float *A, int lda, const float *Bp, const float *bias,
           float *C, int ldc)
{
    product(M, N, K, A, lda, 0, Bp, 0, bias, C, ldc);
}

void rgemm_nn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
              int ldc)
{
    product(M, N, K, A, lda, 0, B, ldb, NULL, C, ldc);
}

void rgemm_tn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
              int ldc)
{
    product(M, N, K, A, lda, 1, B, ldb, NULL, C, ldc);
}
#else
void rgemm_pack(float *dst, const float *B, int K, int N, int ldb, int trans)
{
    pack_generic(dst, B, K, N, ldb, trans);
}

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

void rgemm_nn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
              int ldc)
{
    (void)M, (void)N, (void)K, (void)A, (void)lda, (void)B, (void)ldb, (void)C, (void)ldc;
}

void rgemm_tn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
              int ldc)
{
    (void)M, (void)N, (void)K, (void)A, (void)lda, (void)B, (void)ldb, (void)C, (void)ldc;
}
#endif
