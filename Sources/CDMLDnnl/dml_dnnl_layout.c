#include "dml_dnnl_layout.h"
#if defined(__x86_64__) && defined(__linux__) && __has_include(<dnnl.h>)
#include "dnnl_internal.h"
#include <stdlib.h>

struct dml_dnnl_layout {
    int channels, height, width, to_channels_last;
    dml_dnnl_cache cache;
};

static int build(const void *layer, dml_dnnl_entry *e, const char **impl) {
    const struct dml_dnnl_layout *l = layer;
    dnnl_dims_t dims = {e->batch, l->channels, l->height, l->width};
    if (dnnl_memory_desc_init_by_tag(&e->src, 4, dims, dnnl_f32, l->to_channels_last ? dnnl_nchw : dnnl_nhwc) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&e->dst, 4, dims, dnnl_f32, l->to_channels_last ? dnnl_nhwc : dnnl_nchw) != dnnl_success)
        return 1;
    dnnl_primitive_attr_t attr = dml_dnnl_user_scratchpad_attr();
    if (!attr) return 1;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_engine_t engine = dml_dnnl_engine();
    dnnl_status_t st = dnnl_reorder_primitive_desc_create(&pd, &e->src, engine, &e->dst, engine, attr);
    dnnl_primitive_attr_destroy(attr);
    return st != dnnl_success || dml_dnnl_entry_from_pd(e, pd, impl);
}

dml_dnnl_layout *dml_dnnl_layout_create(int channels, int height, int width, int to_channels_last) {
    if (!dml_dnnl_available() || channels < 1 || height < 1 || width < 1) return NULL;
    dml_dnnl_layout *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->channels = channels;
    l->height = height;
    l->width = width;
    l->to_channels_last = to_channels_last;
    if (dml_dnnl_cache_init(&l->cache, build, l)) {
        dml_dnnl_layout_destroy(l);
        return NULL;
    }
    return l;
}

int dml_dnnl_layout_run(dml_dnnl_layout *l, const float *source, float *destination, int batch) {
    if (!l) return 1;
    // oneDNN's FROM/TO reorder arguments are its SRC/DST.
    return dml_dnnl_cache_run(&l->cache, build, l, batch, source, destination, 0, NULL);
}

void dml_dnnl_layout_destroy(dml_dnnl_layout *l) {
    if (!l) return;
    dml_dnnl_cache_destroy(&l->cache);
    free(l);
}

#else
// No oneDNN here: the runtime's own transpose runs.
dml_dnnl_layout *dml_dnnl_layout_create(int channels, int height, int width, int to_channels_last) {
    (void)channels; (void)height; (void)width; (void)to_channels_last;
    return 0;
}
int dml_dnnl_layout_run(dml_dnnl_layout *layout, const float *source, float *destination, int batch) {
    (void)layout; (void)source; (void)destination; (void)batch;
    return 1;
}
void dml_dnnl_layout_destroy(dml_dnnl_layout *layout) { (void)layout; }
#endif
