// 2-D max and average pooling through oneDNN (x86-64 Linux with libdnnl): its JIT kernels, NCHW or NHWC as the
// caller's activations are. The runtime's own loops stay the fallback where oneDNN is missing or would only run
// its reference code.
#ifndef DML_DNNL_POOL_H
#define DML_DNNL_POOL_H

#include "dml_dnnl.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { DML_DNNL_POOL_MAX = 0, DML_DNNL_POOL_AVG_INCLUDE_PAD, DML_DNNL_POOL_AVG_EXCLUDE_PAD } dml_dnnl_pool_kind;

/// One pooling layer's geometry (per sample: input [channels, height, width]). The bottom/right padding is what
/// makes oneDNN's output size the caller's (ceil mode); dilation counts from 1 as PyTorch's does.
typedef struct {
    int channels, height, width, out_height, out_width;
    int kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, pad_bottom, pad_right, dilation_h, dilation_w;
    dml_dnnl_pool_kind kind;
    /// 1 when the source and destination are NHWC (channels last) rather than NCHW.
    int channels_last;
} dml_dnnl_pool_shape;

typedef struct dml_dnnl_pool dml_dnnl_pool;

/// NULL when oneDNN is missing, refuses the geometry, or has only its reference loops for it (then the caller's
/// own loops are as fast).
dml_dnnl_pool *dml_dnnl_pool_create(const dml_dnnl_pool_shape *shape);

/// Pools `batch` samples. 0 on success; nonzero means nothing usable was written (the caller falls back to its
/// own loops). Safe to call from several threads at once.
int dml_dnnl_pool_run(dml_dnnl_pool *pool, const float *source, float *destination, int batch);

void dml_dnnl_pool_destroy(dml_dnnl_pool *pool);

#ifdef __cplusplus
}
#endif

#endif
