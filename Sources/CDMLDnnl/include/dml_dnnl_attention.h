// The per-head part of multi-head self-attention through oneDNN (x86-64 Linux with libdnnl):
// softmax(q k^T / sqrt(head width)) v for every sample and head, on the runtime's OpenMP threads.
#ifndef DML_DNNL_ATTENTION_H
#define DML_DNNL_ATTENTION_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dml_dnnl_attention dml_dnnl_attention;

/// Attention of `heads` heads over `tokens` tokens of `width` features (head width = width / heads).
/// NULL when oneDNN is missing, the shape is invalid, or oneDNN refuses it.
dml_dnnl_attention *dml_dnnl_attention_create(int tokens, int width, int heads);

/// For `batch` samples: `qkv` holds per sample `[tokens, 3 * width]` row-major (q | k | v, head h in columns
/// h * head width ..< (h + 1) * head width of each third); writes each head's result into its columns of
/// `context`, per sample `[tokens, width]`. Samples and heads are split over the threads. 0 on success; nonzero
/// means nothing usable was written (the caller runs its own loops). Safe to call from several threads at once.
int dml_dnnl_attention_run(dml_dnnl_attention *attention, const float *qkv, float *context, int batch);

void dml_dnnl_attention_destroy(dml_dnnl_attention *attention);

#ifdef __cplusplus
}
#endif

#endif
