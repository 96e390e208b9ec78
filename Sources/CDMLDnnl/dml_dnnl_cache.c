#include "dml_dnnl.h"
#if defined(__x86_64__) && defined(__linux__) && __has_include(<dnnl.h>)
#include "dnnl_internal.h"
#include <string.h>

static void release(dml_dnnl_entry *e) {
    if (e->primitive) dnnl_primitive_destroy(e->primitive);
    memset(e, 0, sizeof *e);
}

dnnl_primitive_attr_t dml_dnnl_user_scratchpad_attr(void) {
    dnnl_primitive_attr_t attr;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return NULL;
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    return attr;
}

int dml_dnnl_entry_from_pd(dml_dnnl_entry *e, dnnl_primitive_desc_t pd, const char **impl) {
    if (impl && dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, impl) != dnnl_success) *impl = NULL;
    e->scratch_bytes = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
    dnnl_status_t st = dnnl_primitive_create(&e->primitive, pd);
    dnnl_primitive_desc_destroy(pd);
    return st != dnnl_success;
}

int dml_dnnl_entry_finish(dml_dnnl_entry *e, const_dnnl_op_desc_t desc, const char **impl) {
    dnnl_primitive_attr_t attr = dml_dnnl_user_scratchpad_attr();
    if (!attr) return 1;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, desc, attr, dml_dnnl_engine(), NULL);
    dnnl_primitive_attr_destroy(attr);
    return st != dnnl_success || dml_dnnl_entry_from_pd(e, pd, impl);
}

int dml_dnnl_cache_init(dml_dnnl_cache *cache, dml_dnnl_builder build, const void *layer) {
    memset(cache, 0, sizeof *cache);
    pthread_mutex_init(&cache->lock, NULL);
    const char *impl = NULL;
    dml_dnnl_entry *first = &cache->entries[0];
    first->batch = 1;
    first->threads = dml_dnnl_threads();
    dml_dnnl_apply_threads();
    if (build(layer, first, &impl) || !impl || strstr(impl, "ref")) {
        release(first);
        return 1;
    }
    atomic_store(&cache->count, 1);
    return 0;
}

void dml_dnnl_cache_destroy(dml_dnnl_cache *cache) {
    int n = atomic_load(&cache->count);
    for (int i = 0; i < n; i++) release(&cache->entries[i]);
    pthread_mutex_destroy(&cache->lock);
}

// The cached entry for `batch`, made on first use; when the cache is full, a one-off entry built into `spare`
// (the caller releases it). NULL when oneDNN refuses the batch.
static dml_dnnl_entry *entry_for(dml_dnnl_cache *cache, dml_dnnl_builder build, const void *layer, int batch,
                                 dml_dnnl_entry *spare) {
    int n = atomic_load_explicit(&cache->count, memory_order_acquire), threads = dml_dnnl_threads();
    for (int i = 0; i < n; i++)
        if (cache->entries[i].batch == batch && cache->entries[i].threads == threads) return &cache->entries[i];
    pthread_mutex_lock(&cache->lock);
    dml_dnnl_entry *found = NULL;
    n = atomic_load_explicit(&cache->count, memory_order_relaxed);
    for (int i = 0; i < n && !found; i++)
        if (cache->entries[i].batch == batch && cache->entries[i].threads == threads) found = &cache->entries[i];
    if (!found) {
        dml_dnnl_entry *e = n < DML_DNNL_CACHED_BATCHES ? &cache->entries[n] : spare;
        e->batch = batch;
        e->threads = threads;
        dml_dnnl_apply_threads();
        if (build(layer, e, NULL) == 0) {
            found = e;
            if (e != spare) atomic_store_explicit(&cache->count, n + 1, memory_order_release);
        } else {
            release(e);
        }
    }
    pthread_mutex_unlock(&cache->lock);
    return found;
}

int dml_dnnl_cache_run(dml_dnnl_cache *cache, dml_dnnl_builder build, const void *layer, int batch, const float *source,
                       float *destination, int n_extra, const dnnl_exec_arg_t *extra) {
    enum { MAX_EXTRA = 8 };
    if (batch < 1 || n_extra < 0 || n_extra > MAX_EXTRA) return 1;
    dml_dnnl_entry spare = {0};
    dml_dnnl_entry *e = entry_for(cache, build, layer, batch, &spare);
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
    dnnl_exec_arg_t args[3 + MAX_EXTRA] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
    int nargs = 2;
    if (pad) args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, pad};
    for (int i = 0; i < n_extra; i++) args[nargs++] = extra[i];
    failed = dml_dnnl_execute(e->primitive, nargs, args);
done:
    if (src) dnnl_memory_destroy(src);
    if (dst) dnnl_memory_destroy(dst);
    if (pad) dnnl_memory_destroy(pad);
    if (e == &spare) release(&spare);
    return failed;
}
#endif
