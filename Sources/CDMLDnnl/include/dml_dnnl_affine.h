// A per-channel affine map y = x * scale[c] + shift[c] with an optional ReLU (an unfolded BatchNorm, as DenseNet
// has before each conv) through oneDNN's batch normalization (x86-64 Linux with libdnnl): its JIT kernel with the
// statistics fixed to mean 0, variance 1, epsilon 0, so the result is exactly the affine map.
#ifndef DML_DNNL_AFFINE_H
#define DML_DNNL_AFFINE_H

#include "dml_dnnl.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dml_dnnl_affine dml_dnnl_affine;

/// Per sample `channels` x `positions` values, NCHW or (`channels_last`) NHWC. `scale` and `shift` are copied.
/// NULL when oneDNN is missing, refuses the shape or has only its reference loops for it.
dml_dnnl_affine *dml_dnnl_affine_create(int channels, int positions, int channels_last, const float *scale,
                                        const float *shift, int relu);

/// `batch` samples; `destination` may be `source`. 0 on success; nonzero means nothing usable was written.
/// Safe to call from several threads at once.
int dml_dnnl_affine_run(dml_dnnl_affine *affine, const float *source, float *destination, int batch);

void dml_dnnl_affine_destroy(dml_dnnl_affine *affine);

#ifdef __cplusplus
}
#endif

#endif
