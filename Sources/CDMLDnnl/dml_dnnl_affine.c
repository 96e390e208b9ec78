#include "dml_dnnl_affine.h"
#if defined(__x86_64__) && defined(__linux__) && __has_include(<dnnl.h>)
#include "dnnl_internal.h"
#include <stdlib.h>

enum { SCALE, SHIFT, MEAN, VARIANCE, PARAMETERS };

struct dml_dnnl_affine {
    int channels, positions, channels_last, relu;
    float *values[PARAMETERS];  // scale, shift, zeros, ones: `channels` each
    dnnl_memory_t memories[PARAMETERS];
    dml_dnnl_cache cache;
};

static int build(const void *layer, dml_dnnl_entry *e, const char **impl) {
    const struct dml_dnnl_affine *a = layer;
    // Positions as one image row: the same bytes in either layout.
    dnnl_dims_t dims = {e->batch, a->channels, 1, a->positions};
    if (dnnl_memory_desc_init_by_tag(&e->src, 4, dims, dnnl_f32, a->channels_last ? dnnl_nhwc : dnnl_nchw) != dnnl_success)
        return 1;
    e->dst = e->src;
    unsigned flags = dnnl_use_global_stats | dnnl_use_scale | dnnl_use_shift | (a->relu ? dnnl_fuse_norm_relu : 0);
    dnnl_batch_normalization_desc_t desc;
    if (dnnl_batch_normalization_forward_desc_init(&desc, dnnl_forward_inference, &e->src, 0.0f, flags) != dnnl_success)
        return 1;
    return dml_dnnl_entry_finish(e, &desc, impl);
}

dml_dnnl_affine *dml_dnnl_affine_create(int channels, int positions, int channels_last, const float *scale,
                                        const float *shift, int relu) {
    if (!dml_dnnl_available() || channels < 1 || positions < 1 || !scale || !shift) return NULL;
    dml_dnnl_affine *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->channels = channels;
    a->positions = positions;
    a->channels_last = channels_last;
    a->relu = relu;
    dnnl_memory_desc_t md;
    dnnl_memory_desc_init_by_tag(&md, 1, (dnnl_dims_t){channels}, dnnl_f32, dnnl_x);
    for (int i = 0; i < PARAMETERS; i++) {
        a->values[i] = malloc(sizeof(float) * (size_t)channels);
        if (!a->values[i] || dnnl_memory_create(&a->memories[i], &md, dml_dnnl_engine(), a->values[i]) != dnnl_success) {
            dml_dnnl_affine_destroy(a);
            return NULL;
        }
        for (int c = 0; c < channels; c++)
            a->values[i][c] = i == SCALE ? scale[c] : i == SHIFT ? shift[c] : i == MEAN ? 0.0f : 1.0f;
    }
    if (dml_dnnl_cache_init(&a->cache, build, a)) {
        dml_dnnl_affine_destroy(a);
        return NULL;
    }
    return a;
}

int dml_dnnl_affine_run(dml_dnnl_affine *a, const float *source, float *destination, int batch) {
    if (!a) return 1;
    dnnl_exec_arg_t extra[] = {{DNNL_ARG_SCALE, a->memories[SCALE]}, {DNNL_ARG_SHIFT, a->memories[SHIFT]},
                               {DNNL_ARG_MEAN, a->memories[MEAN]}, {DNNL_ARG_VARIANCE, a->memories[VARIANCE]}};
    return dml_dnnl_cache_run(&a->cache, build, a, batch, source, destination, 4, extra);
}

void dml_dnnl_affine_destroy(dml_dnnl_affine *a) {
    if (!a) return;
    dml_dnnl_cache_destroy(&a->cache);
    for (int i = 0; i < PARAMETERS; i++) {
        if (a->memories[i]) dnnl_memory_destroy(a->memories[i]);
        free(a->values[i]);
    }
    free(a);
}

#else
// No oneDNN here: the runtime's own loop runs.
dml_dnnl_affine *dml_dnnl_affine_create(int channels, int positions, int channels_last, const float *scale,
                                        const float *shift, int relu) {
    (void)channels; (void)positions; (void)channels_last; (void)scale; (void)shift; (void)relu;
    return 0;
}
int dml_dnnl_affine_run(dml_dnnl_affine *affine, const float *source, float *destination, int batch) {
    (void)affine; (void)source; (void)destination; (void)batch;
    return 1;
}
void dml_dnnl_affine_destroy(dml_dnnl_affine *affine) { (void)affine; }
#endif
