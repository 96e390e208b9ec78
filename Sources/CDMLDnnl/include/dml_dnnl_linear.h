// Fully connected layers through oneDNN (x86-64 Linux with libdnnl): y[M,N] = x[M,K] W[N,K]^T + b, with the
// weights reordered once into oneDNN's layout and shared by every row count M. Its brgemm matmul where the CPU
// has one (AVX-512), else its 1x1 convolution over the rows (AVX2), which keeps the weights packed.
#ifndef DML_DNNL_LINEAR_H
#define DML_DNNL_LINEAR_H

#include "dml_dnnl.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dml_dnnl_linear dml_dnnl_linear;

/// A linear layer over `weight` ([out_features, in_features], row-major, as PyTorch stores it) and `bias`
/// (out_features values, may be NULL), with an optional fused activation (`alpha`/`beta` as for the conv).
/// Both buffers must outlive the handle: a primitive per row count is made on first use, and the weights are
/// reordered into its layout only when no earlier row count already packed them in that layout (in practice
/// one or two copies per layer). NULL when oneDNN is missing or refuses the shape.
dml_dnnl_linear *dml_dnnl_linear_create(int in_features, int out_features, const float *weight, const float *bias,
                                        dml_dnnl_activation activation, float alpha, float beta);

/// Computes `rows` rows, row-major `[rows, in_features]` -> `[rows, out_features]`. 0 on success; nonzero means
/// nothing usable was written (the caller falls back to its own GEMM). Safe to call from several threads at once.
int dml_dnnl_linear_run(dml_dnnl_linear *linear, const float *source, float *destination, int rows);

/// Makes (and caches) the primitive for `rows` now, packing the weights, so that later runs with any row count
/// whose primitive shares that layout never read the caller's weight buffer again. 0 when oneDNN took it.
int dml_dnnl_linear_prepare(dml_dnnl_linear *linear, int rows);

void dml_dnnl_linear_destroy(dml_dnnl_linear *linear);

#ifdef __cplusplus
}
#endif

#endif
