#include "dml_dnnl_pool.h"
#if defined(__x86_64__) && defined(__linux__) && __has_include(<dnnl.h>)
#include "dnnl_internal.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

// Batch sizes cached per layer; beyond this a one-off primitive is made per call.
enum { MAX_BATCH_SIZES = 8 };

typedef struct {
    int batch;
    dnnl_primitive_t primitive;
    dnnl_memory_desc_t src, dst;
    size_t scratch_bytes;
} entry;

struct dml_dnnl_pool {
    dml_dnnl_pool_shape s;
    pthread_mutex_t lock;
    atomic_int count;
    entry entries[MAX_BATCH_SIZES];
};

static void release(entry *e) {
    if (e->primitive) dnnl_primitive_destroy(e->primitive);
    memset(e, 0, sizeof *e);
}

// The primitive for `batch` samples in the caller's layout; `impl`, when given, receives oneDNN's kernel name.
static int build(const dml_dnnl_pool_shape *s, int batch, entry *e, const char **impl) {
    dnnl_format_tag_t tag = s->channels_last ? dnnl_nhwc : dnnl_nchw;
    dnnl_dims_t src_dims = {batch, s->channels, s->height, s->width};
    dnnl_dims_t dst_dims = {batch, s->channels, s->out_height, s->out_width};
    dnnl_dims_t strides = {s->stride_h, s->stride_w}, kernel = {s->kernel_h, s->kernel_w};
    dnnl_dims_t dilation = {s->dilation_h - 1, s->dilation_w - 1};  // oneDNN counts dilation from 0
    dnnl_dims_t pad_l = {s->pad_top, s->pad_left}, pad_r = {s->pad_bottom, s->pad_right};
    dnnl_alg_kind_t alg = s->kind == DML_DNNL_POOL_MAX ? dnnl_pooling_max
                          : s->kind == DML_DNNL_POOL_AVG_INCLUDE_PAD ? dnnl_pooling_avg_include_padding
                                                                     : dnnl_pooling_avg_exclude_padding;
    e->batch = batch;
    dnnl_pooling_v2_desc_t desc;
    if (dnnl_memory_desc_init_by_tag(&e->src, 4, src_dims, dnnl_f32, tag) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&e->dst, 4, dst_dims, dnnl_f32, tag) != dnnl_success ||
        dnnl_pooling_v2_forward_desc_init(&desc, dnnl_forward_inference, alg, &e->src, &e->dst, strides, kernel,
                                          dilation, pad_l, pad_r) != dnnl_success)
        return 1;
    dnnl_primitive_attr_t attr;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return 1;
    // The scratchpad is the calling thread's work buffer, so one primitive can run on several threads at once.
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &desc, attr, dml_dnnl_engine(), NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) return 1;
    if (impl && (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, impl) != dnnl_success || !*impl)) *impl = "";
    e->scratch_bytes = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
    st = dnnl_primitive_create(&e->primitive, pd);
    dnnl_primitive_desc_destroy(pd);
    return st != dnnl_success;
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
    pthread_mutex_init(&p->lock, NULL);
    // Batch 1 now: it tells whether oneDNN has a JIT kernel for this geometry, and is the first cached entry.
    const char *impl = NULL;
    if (build(&p->s, 1, &p->entries[0], &impl) || strstr(impl, "ref")) {
        release(&p->entries[0]);
        dml_dnnl_pool_destroy(p);
        return NULL;
    }
    atomic_store(&p->count, 1);
    return p;
}

// The cached entry for `batch`, made on first use; when the cache is full, a one-off entry built into `spare`
// (the caller releases it). NULL when oneDNN refuses the batch.
static entry *entry_for(dml_dnnl_pool *p, int batch, entry *spare) {
    int n = atomic_load_explicit(&p->count, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (p->entries[i].batch == batch) return &p->entries[i];
    pthread_mutex_lock(&p->lock);
    entry *found = NULL;
    n = atomic_load_explicit(&p->count, memory_order_relaxed);
    for (int i = 0; i < n && !found; i++)
        if (p->entries[i].batch == batch) found = &p->entries[i];
    if (!found) {
        entry *e = n < MAX_BATCH_SIZES ? &p->entries[n] : spare;
        if (build(&p->s, batch, e, NULL) == 0) {
            found = e;
            if (e != spare) atomic_store_explicit(&p->count, n + 1, memory_order_release);
        } else {
            release(e);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return found;
}

int dml_dnnl_pool_run(dml_dnnl_pool *p, const float *source, float *destination, int batch) {
    if (!p || batch < 1) return 1;
    entry spare = {0};
    entry *e = entry_for(p, batch, &spare);
    if (!e) return 1;
    dml_dnnl_apply_threads();
    dnnl_engine_t engine = dml_dnnl_engine();
    dnnl_memory_t src = NULL, dst = NULL, pad = NULL;
    int failed = 1;
    void *scratch = e->scratch_bytes ? dml_dnnl_arena(e->scratch_bytes) : NULL;
    if (e->scratch_bytes && !scratch) goto done;
    dnnl_memory_desc_t s_md;
    dnnl_memory_desc_init_by_tag(&s_md, 1, (dnnl_dims_t){(dnnl_dim_t)e->scratch_bytes}, dnnl_u8, dnnl_x);
    if (dnnl_memory_create(&src, &e->src, engine, (void *)source) != dnnl_success ||
        dnnl_memory_create(&dst, &e->dst, engine, destination) != dnnl_success ||
        (scratch && dnnl_memory_create(&pad, &s_md, engine, scratch) != dnnl_success))
        goto done;
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}, {DNNL_ARG_SCRATCHPAD, pad}};
    failed = dml_dnnl_execute(e->primitive, pad ? 3 : 2, args);
done:
    if (src) dnnl_memory_destroy(src);
    if (dst) dnnl_memory_destroy(dst);
    if (pad) dnnl_memory_destroy(pad);
    if (e == &spare) release(&spare);
    return failed;
}

void dml_dnnl_pool_destroy(dml_dnnl_pool *p) {
    if (!p) return;
    int n = atomic_load(&p->count);
    for (int i = 0; i < n; i++) release(&p->entries[i]);
    pthread_mutex_destroy(&p->lock);
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
