// A tiny C seam over the platform BLAS so Swift sees one API:
// Accelerate on Apple platforms, CBLAS (OpenBLAS) elsewhere, chosen at compile time.
#ifndef DML_BLAS_H
#define DML_BLAS_H

#ifdef __cplusplus
extern "C" {
#endif

/// Row-major single-precision GEMM: C = alpha * op(A) * op(B) + beta * C.
/// `trans_a` / `trans_b` are 0 (no transpose) or 1 (transpose).
void dml_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
               const float *a, int lda, const float *b, int ldb,
               float beta, float *c, int ldc);

/// Sets the number of BLAS worker threads (no-op where the BLAS has no such setting).
void dml_blas_set_threads(int threads);

/// The number of BLAS worker threads, or 0 when the BLAS does not say.
int dml_blas_threads(void);

/// A short name of the BLAS linked in ("OpenBLAS", "Accelerate", "CBLAS").
const char *dml_blas_name(void);

#ifdef __cplusplus
}
#endif

#endif
