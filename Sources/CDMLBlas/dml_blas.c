#include "dml_blas.h"

#if defined(__APPLE__)
#define ACCELERATE_NEW_LAPACK 1
#include <Accelerate/Accelerate.h>
#define DML_BLAS_NAME "Accelerate"
#else
#include <cblas.h>
#define DML_BLAS_NAME "OpenBLAS"
// Declared weak so a BLAS without OpenBLAS's thread API still links; we check for NULL before calling.
extern void openblas_set_num_threads(int) __attribute__((weak));
extern int openblas_get_num_threads(void) __attribute__((weak));
#endif

void dml_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
               const float *a, int lda, const float *b, int ldb,
               float beta, float *c, int ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void dml_blas_set_threads(int threads) {
#if !defined(__APPLE__)
    if (openblas_set_num_threads && threads > 0) openblas_set_num_threads(threads);
#else
    (void)threads;
#endif
}

int dml_blas_threads(void) {
#if !defined(__APPLE__)
    if (openblas_get_num_threads) return openblas_get_num_threads();
#endif
    return 0;
}

const char *dml_blas_name(void) { return DML_BLAS_NAME; }
