/* CBLAS as the model uses it. OpenBLAS's cblas.h pulls in <complex.h>,
 * whose macro `I` (the imaginary unit) would shadow the input-size letter I of
 * our shape legend; we use no complex arithmetic, so it is undefined here. */
#ifndef SEQPAR_MODEL_BLAS_PRIVATE_H
#define SEQPAR_MODEL_BLAS_PRIVATE_H
#include <cblas.h>
#undef I
#endif
