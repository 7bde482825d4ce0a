/* CBLAS as the model uses it. OpenBLAS's cblas.h pulls in <complex.h>,
 * whose macro `I` (the imaginary unit) would shadow the input-size letter I of
 * our shape legend; we use no complex arithmetic, so it is undefined here. */
#ifndef SEQPAR_MODEL_BLAS_PRIVATE_H
#define SEQPAR_MODEL_BLAS_PRIVATE_H
#include "model.h"

#include <cblas.h>
#undef I

/* The products a layer's backward accumulates, on seqpar's rgemm (rg: the
 * caller's rule chose it) or on OpenBLAS:
 * C (M, N) += A^T · B, A stored (K, M) (a weight gradient dW += dY^T · X), */
static inline void gemm_tn_acc(int rg, int M, int N, int K, const float *A, int lda, const float *B,
                               int ldb, float *C, int ldc)
{
    if (rg)
        rgemm_tn(M, N, K, A, lda, B, ldb, C, ldc);
    else
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb, 1.0f, C,
                    ldc);
}

/* and C (M, N) += A · B (an input gradient dX += dY · W). */
static inline void gemm_nn_acc(int rg, int M, int N, int K, const float *A, int lda, const float *B,
                               int ldb, float *C, int ldc)
{
    if (rg)
        rgemm_nn(M, N, K, A, lda, B, ldb, C, ldc);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb, 1.0f,
                    C, ldc);
}
#endif
