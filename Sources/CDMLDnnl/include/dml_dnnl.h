// Convolution through oneDNN's C API where it is available (x86-64 Linux with libdnnl): the runtime's fast
// conv backend. Activations are NCHW or NHWC (channels-last) at the boundary, as the caller says; oneDNN keeps
// weights in the layout it picks.
#ifndef DML_DNNL_H
#define DML_DNNL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Activations oneDNN can fuse as a post-op (`alpha`/`beta` as in oneDNN's eltwise: leaky slope, clip bounds).
typedef enum {
    DML_DNNL_NONE = 0, DML_DNNL_RELU, DML_DNNL_CLIP, DML_DNNL_HARDSWISH, DML_DNNL_GELU_ERF,
    DML_DNNL_GELU_TANH, DML_DNNL_LOGISTIC, DML_DNNL_TANH
} dml_dnnl_activation;

/// One conv layer's geometry (per sample: input [in_channels, height, width]).
typedef struct {
    int in_channels, height, width, out_channels, out_height, out_width;
    int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups;
    /// 1 when the source / destination are NHWC (channels last) rather than NCHW.
    int source_channels_last, destination_channels_last;
    /// 1 when the convolution is added to what the destination already holds (a residual sum fused as oneDNN's
    /// sum post-op, before the activation).
    int accumulate;
} dml_dnnl_conv_shape;

typedef struct dml_dnnl_conv dml_dnnl_conv;

/// 1 when this build has oneDNN and it made a CPU engine.
int dml_dnnl_available(void);

/// A conv layer over `weight` ([out, in / groups, kh, kw]) and `bias` (may be NULL). Both must outlive the
/// handle (primitives for each batch size, with weights reordered, are made on first use and kept). `weight` may
/// be NULL: `dml_dnnl_conv_pack` then gives the weights once, and nothing runs before it.
/// NULL when oneDNN is missing or refuses the shape.
dml_dnnl_conv *dml_dnnl_conv_create(const dml_dnnl_conv_shape *shape, const float *weight, const float *bias,
                                    dml_dnnl_activation activation, float alpha, float beta);

/// Computes `batch` samples in the layouts the shape names. 0 on success; nonzero means nothing usable was written
/// (the caller falls back to its own convolution). Safe to call from several threads at once.
int dml_dnnl_conv_run(dml_dnnl_conv *conv, const float *source, float *destination, int batch);

/// Makes (and caches) the primitives for `batch` now, reordering the weights, so a later run reads the
/// caller's weight buffer no more when its layout is shared. 0 when oneDNN took the batch.
int dml_dnnl_conv_prepare(dml_dnnl_conv *conv, int batch);

/// Reorders `weight` ([out, in / groups, kh, kw]) into oneDNN's layout for batch 1 now (at load) and keeps only
/// that packed copy: the handle does not read `weight` after this returns (later batch sizes reorder from the
/// packed copy), so the caller may free it. For handles created without weights. 0 on success.
int dml_dnnl_conv_pack(dml_dnnl_conv *conv, const float *weight);

/// oneDNN's name for the kernel that runs `batch` samples (e.g. "brgconv:avx512_core", "jit_wino_4x3:avx512_core";
/// the first call's when a Winograd layer splits the batch), making the primitives if needed, into `name`
/// (NUL-terminated, cut to `capacity`). 0 on success.
int dml_dnnl_conv_kernel(dml_dnnl_conv *conv, int batch, char *name, size_t capacity);

/// 1 once the weights are packed (a lock-free check for the run path).
int dml_dnnl_conv_is_packed(dml_dnnl_conv *conv);

void dml_dnnl_conv_destroy(dml_dnnl_conv *conv);

/// OpenMP threads for oneDNN calls (applied on each calling thread before it runs a primitive); 0 leaves
/// the OpenMP default.
void dml_dnnl_set_threads(int threads);

/// Overrides `dml_dnnl_set_threads`' count on the calling thread only (0 ends the override): a thread that runs
/// its own share of a batch runs its primitives single-threaded.
void dml_dnnl_set_thread_threads(int threads);

/// The calling thread's count: its override, else `dml_dnnl_set_threads`' count (0: the OpenMP default). Part of every cached primitive's key: oneDNN splits a
/// primitive's work for the count it sees when the primitive is made, so a new count makes new primitives.
int dml_dnnl_threads(void);

#ifdef __cplusplus
}
#endif

#endif
