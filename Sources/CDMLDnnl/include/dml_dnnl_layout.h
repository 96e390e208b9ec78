// NCHW <-> NHWC conversion of activations through oneDNN's JIT reorder (x86-64 Linux with libdnnl).
#ifndef DML_DNNL_LAYOUT_H
#define DML_DNNL_LAYOUT_H

#include "dml_dnnl.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dml_dnnl_layout dml_dnnl_layout;

/// Per sample [channels, height, width]: NCHW to NHWC (`to_channels_last`) or back. NULL when oneDNN is missing
/// or has only its reference loops for it.
dml_dnnl_layout *dml_dnnl_layout_create(int channels, int height, int width, int to_channels_last);

/// Converts `batch` samples (`destination` must not overlap `source`). 0 on success; nonzero means nothing usable
/// was written. Safe to call from several threads at once.
int dml_dnnl_layout_run(dml_dnnl_layout *layout, const float *source, float *destination, int batch);

void dml_dnnl_layout_destroy(dml_dnnl_layout *layout);

#ifdef __cplusplus
}
#endif

#endif
