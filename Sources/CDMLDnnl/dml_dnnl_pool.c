#include "dml_dnnl_pool.h"
#if defined(__x86_64__) && defined(__linux__) && __has_include(<dnnl.h>)
#include "dnnl_internal.h"
#include <stdlib.h>

struct dml_dnnl_pool {
    dml_dnnl_pool_shape s;
    dml_dnnl_cache cache;
};

static int build(const void *layer, dml_dnnl_entry *e, const char **impl) {
    const dml_dnnl_pool_shape *s = layer;
    dnnl_format_tag_t tag = s->channels_last ? dnnl_nhwc : dnnl_nchw;
    dnnl_dims_t src_dims = {e->batch, s->channels, s->height, s->width};
    dnnl_dims_t dst_dims = {e->batch, s->channels, s->out_height, s->out_width};
    dnnl_dims_t strides = {s->stride_h, s->stride_w}, kernel = {s->kernel_h, s->kernel_w};
    dnnl_dims_t dilation = {s->dilation_h - 1, s->dilation_w - 1};  // oneDNN counts dilation from 0
    dnnl_dims_t pad_l = {s->pad_top, s->pad_left}, pad_r = {s->pad_bottom, s->pad_right};
    dnnl_alg_kind_t alg = s->kind == DML_DNNL_POOL_MAX ? dnnl_pooling_max
                          : s->kind == DML_DNNL_POOL_AVG_INCLUDE_PAD ? dnnl_pooling_avg_include_padding
                                                                     : dnnl_pooling_avg_exclude_padding;
    dnnl_pooling_v2_desc_t desc;
    if (dnnl_memory_desc_init_by_tag(&e->src, 4, src_dims, dnnl_f32, tag) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&e->dst, 4, dst_dims, dnnl_f32, tag) != dnnl_success ||
        dnnl_pooling_v2_forward_desc_init(&desc, dnnl_forward_inference, alg, &e->src, &e->dst, strides, kernel,
                                          dilation, pad_l, pad_r) != dnnl_success)
        return 1;
    return dml_dnnl_entry_finish(e, &desc, impl);
}

dml_dnnl_pool *dml_dnnl_pool_create(const dml_dnnl_pool_shape *shape) {
    const dml_dnnl_pool_shape *s = shape;
    if (!dml_dnnl_available() || s->channels < 1 || s->height < 1 || s->width < 1 || s->out_height < 1 ||
        s->out_width < 1 || s->kernel_h < 1 || s->kernel_w < 1 || s->stride_h < 1 || s->stride_w < 1 ||
        s->dilation_h < 1 || s->dilation_w < 1)
        return NULL;
    dml_dnnl_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->s = *shape;
    // Batch 1 now: it tells whether oneDNN has a JIT kernel for this geometry (else the caller's loops run).
    if (dml_dnnl_cache_init(&p->cache, build, &p->s)) {
        dml_dnnl_pool_destroy(p);
        return NULL;
    }
    return p;
}

int dml_dnnl_pool_run(dml_dnnl_pool *p, const float *source, float *destination, int batch) {
    return !p || dml_dnnl_cache_run(&p->cache, build, &p->s, batch, source, destination, 0, NULL);
}

void dml_dnnl_pool_destroy(dml_dnnl_pool *p) {
    if (!p) return;
    dml_dnnl_cache_destroy(&p->cache);
    free(p);
}

#else
// No oneDNN here: every pooling layer keeps the runtime's own loops.
dml_dnnl_pool *dml_dnnl_pool_create(const dml_dnnl_pool_shape *shape) {
    (void)shape;
    return 0;
}
int dml_dnnl_pool_run(dml_dnnl_pool *pool, const float *source, float *destination, int batch) {
    (void)pool; (void)source; (void)destination; (void)batch;
    return 1;
}
void dml_dnnl_pool_destroy(dml_dnnl_pool *pool) { (void)pool; }
#endif
