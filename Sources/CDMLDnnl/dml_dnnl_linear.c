#include "dml_dnnl_linear.h"
#if defined(__x86_64__) && defined(__linux__) && __has_include(<dnnl.h>)
#include "dnnl_internal.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

// Row counts cached per layer (a caption batch's token count varies; beyond this the caller's GEMM runs).
enum { MAX_ROW_COUNTS = 128, MAX_PACKINGS = 8 };

// The weights in one oneDNN layout; shared by every row count whose primitive wants that layout.
typedef struct {
    dnnl_memory_desc_t md;
    dnnl_memory_t memory;
    void *data;
} packing;

// The primitive for one row count: a matmul, or a 1x1 convolution over the rows as one NHWC image row
// (oneDNN 2.6 has no brgemm matmul below AVX-512; its AVX2 matmul is a plain GEMM that packs the weights on
// every call, while its AVX2 1x1 convolution keeps them packed: measured 1.3-1.9x faster at 64-200 rows).
typedef struct {
    int rows, threads;
    dnnl_primitive_t primitive;
    dnnl_memory_desc_t src, dst, bias;
    int packing;
    size_t scratch_bytes;
} entry;

struct dml_dnnl_linear {
    int in_features, out_features;
    const float *weight, *bias;
    dml_dnnl_activation activation;
    float alpha, beta;
    pthread_mutex_t lock;
    atomic_int count;
    int packings;
    packing packed[MAX_PACKINGS];
    entry entries[MAX_ROW_COUNTS];
};

dml_dnnl_linear *dml_dnnl_linear_create(int in_features, int out_features, const float *weight, const float *bias,
                                        dml_dnnl_activation activation, float alpha, float beta) {
    if (!dml_dnnl_engine() || in_features < 1 || out_features < 1 || !weight) return NULL;
    dml_dnnl_linear *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->in_features = in_features;
    l->out_features = out_features;
    l->weight = weight;
    l->bias = bias;
    l->activation = activation;
    l->alpha = alpha;
    l->beta = beta;
    pthread_mutex_init(&l->lock, NULL);
    return l;
}

// The index of the weights packed as `md`, reordered from the caller's weights described by `user_md` on first
// sight of the layout; -1 on failure.
static int packing_for(dml_dnnl_linear *l, const dnnl_memory_desc_t *md, const dnnl_memory_desc_t *user_md) {
    for (int i = 0; i < l->packings; i++)
        if (dnnl_memory_desc_equal(&l->packed[i].md, md)) return i;
    if (l->packings == MAX_PACKINGS) return -1;
    dnnl_engine_t engine = dml_dnnl_engine();
    packing *p = &l->packed[l->packings];
    size_t bytes = dnnl_memory_desc_get_size(md);
    if (posix_memalign(&p->data, 64, bytes ? bytes : 64)) { p->data = NULL; return -1; }
    p->md = *md;
    dnnl_memory_t user = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t reorder = NULL;
    int failed = dnnl_memory_create(&p->memory, md, engine, p->data) != dnnl_success ||
                 dnnl_memory_create(&user, user_md, engine, (void *)l->weight) != dnnl_success ||
                 dnnl_reorder_primitive_desc_create(&pd, user_md, engine, md, engine, NULL) != dnnl_success ||
                 dnnl_primitive_create(&reorder, pd) != dnnl_success;
    if (!failed) {
        dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, p->memory}};
        failed = dml_dnnl_execute(reorder, 2, args);
    }
    if (reorder) dnnl_primitive_destroy(reorder);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (user) dnnl_memory_destroy(user);
    if (failed) {
        if (p->memory) dnnl_memory_destroy(p->memory);
        free(p->data);
        memset(p, 0, sizeof *p);
        return -1;
    }
    return l->packings++;
}

// The primitive descriptor for an op descriptor with what both kinds share: a user scratchpad (so one primitive
// can run on several threads at once) and the fused activation. NULL when oneDNN refuses it.
static dnnl_primitive_desc_t pd_for(const dml_dnnl_linear *l, const_dnnl_op_desc_t desc) {
    dnnl_primitive_attr_t attr = dml_dnnl_user_scratchpad_attr();
    if (!attr) return NULL;
    dnnl_alg_kind_t kind = dml_dnnl_eltwise_kind(l->activation);
    if (kind != dnnl_alg_kind_undef) {
        dnnl_post_ops_t ops;
        dnnl_post_ops_create(&ops);
        dnnl_post_ops_append_eltwise(ops, 1.0f, kind, l->alpha, l->beta);
        dnnl_primitive_attr_set_post_ops(attr, ops);
        dnnl_post_ops_destroy(ops);
    }
    dnnl_primitive_desc_t pd = NULL;
    if (dnnl_primitive_desc_create(&pd, desc, attr, dml_dnnl_engine(), NULL) != dnnl_success) pd = NULL;
    dnnl_primitive_attr_destroy(attr);
    return pd;
}

static const char *impl_of(dnnl_primitive_desc_t pd) {
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl) return "";
    return impl;
}

// The matmul for `e->rows` rows (weights "any"); fills the entry's descriptors. NULL when oneDNN refuses it.
static dnnl_primitive_desc_t matmul_pd(const dml_dnnl_linear *l, entry *e, dnnl_memory_desc_t *user_weights) {
    dnnl_dims_t src_dims = {e->rows, l->in_features}, w_dims = {l->in_features, l->out_features};
    dnnl_dims_t dst_dims = {e->rows, l->out_features}, b_dims = {1, l->out_features};
    dnnl_memory_desc_t w_any;
    // PyTorch's [N, K] row-major is oneDNN's [K, N] weights with the "ba" tag.
    if (dnnl_memory_desc_init_by_tag(&e->src, 2, src_dims, dnnl_f32, dnnl_ab) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&e->dst, 2, dst_dims, dnnl_f32, dnnl_ab) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&w_any, 2, w_dims, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(user_weights, 2, w_dims, dnnl_f32, dnnl_ba) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&e->bias, 2, b_dims, dnnl_f32, dnnl_ab) != dnnl_success)
        return NULL;
    dnnl_matmul_desc_t desc;
    if (dnnl_matmul_desc_init(&desc, &e->src, &w_any, l->bias ? &e->bias : NULL, &e->dst) != dnnl_success) return NULL;
    return pd_for(l, &desc);
}

// The rows as a 1 x rows NHWC image through a 1x1 convolution (the same row-major buffers; PyTorch's [N, K]
// weights are OIHW with 1x1 kernels). NULL when oneDNN refuses it.
static dnnl_primitive_desc_t conv1x1_pd(const dml_dnnl_linear *l, entry *e, dnnl_memory_desc_t *user_weights) {
    dnnl_dims_t src_dims = {1, l->in_features, 1, e->rows}, dst_dims = {1, l->out_features, 1, e->rows};
    dnnl_dims_t w_dims = {l->out_features, l->in_features, 1, 1}, b_dims = {l->out_features};
    dnnl_dims_t ones = {1, 1}, zeros = {0, 0};
    dnnl_memory_desc_t w_any;
    if (dnnl_memory_desc_init_by_tag(&e->src, 4, src_dims, dnnl_f32, dnnl_nhwc) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&e->dst, 4, dst_dims, dnnl_f32, dnnl_nhwc) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&w_any, 4, w_dims, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(user_weights, 4, w_dims, dnnl_f32, dnnl_oihw) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&e->bias, 1, b_dims, dnnl_f32, dnnl_x) != dnnl_success)
        return NULL;
    dnnl_convolution_desc_t desc;
    if (dnnl_convolution_forward_desc_init(&desc, dnnl_forward_inference, dnnl_convolution_direct, &e->src, &w_any,
                                           l->bias ? &e->bias : NULL, &e->dst, ones, zeros, zeros) != dnnl_success)
        return NULL;
    return pd_for(l, &desc);
}

// Creates the primitive for `rows` rows: oneDNN's brgemm matmul where it has one, else its jit 1x1 convolution
// where that takes the shape, else whatever matmul it offers. Called under the lock.
static int build(dml_dnnl_linear *l, int rows, entry *e) {
    e->rows = rows;
    e->threads = dml_dnnl_threads();
    dml_dnnl_apply_threads();
    dnnl_memory_desc_t user_weights;
    dnnl_primitive_desc_t pd = matmul_pd(l, e, &user_weights);
    if (!pd || !strstr(impl_of(pd), "brg")) {
        entry conv = *e;
        dnnl_memory_desc_t conv_weights;
        dnnl_primitive_desc_t conv_pd = conv1x1_pd(l, &conv, &conv_weights);
        if (conv_pd && strstr(impl_of(conv_pd), "jit_1x1")) {
            if (pd) dnnl_primitive_desc_destroy(pd);
            pd = conv_pd;
            *e = conv;
            user_weights = conv_weights;
        } else if (conv_pd) {
            dnnl_primitive_desc_destroy(conv_pd);
        }
    }
    if (!pd) return 1;
    e->packing = packing_for(l, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), &user_weights);
    e->scratch_bytes = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
    dnnl_status_t st = e->packing < 0 ? dnnl_runtime_error : dnnl_primitive_create(&e->primitive, pd);
    dnnl_primitive_desc_destroy(pd);
    return st != dnnl_success;
}

static entry *entry_for(dml_dnnl_linear *l, int rows) {
    int n = atomic_load_explicit(&l->count, memory_order_acquire), threads = dml_dnnl_threads();
    for (int i = 0; i < n; i++)
        if (l->entries[i].rows == rows && l->entries[i].threads == threads) return &l->entries[i];
    pthread_mutex_lock(&l->lock);
    entry *found = NULL;
    n = atomic_load_explicit(&l->count, memory_order_relaxed);
    for (int i = 0; i < n && !found; i++)
        if (l->entries[i].rows == rows && l->entries[i].threads == threads) found = &l->entries[i];
    if (!found && n < MAX_ROW_COUNTS) {
        entry *e = &l->entries[n];
        if (build(l, rows, e) == 0) {
            found = e;
            atomic_store_explicit(&l->count, n + 1, memory_order_release);
        } else {
            if (e->primitive) dnnl_primitive_destroy(e->primitive);
            memset(e, 0, sizeof *e);
        }
    }
    pthread_mutex_unlock(&l->lock);
    return found;
}

int dml_dnnl_linear_run(dml_dnnl_linear *l, const float *source, float *destination, int rows) {
    if (!l || rows < 1) return 1;
    entry *e = entry_for(l, rows);
    if (!e) return 1;
    dml_dnnl_apply_threads();
    dnnl_engine_t engine = dml_dnnl_engine();
    dnnl_memory_t src = NULL, dst = NULL, bias = NULL, pad = NULL;
    int failed = 1;
    void *scratch = dml_dnnl_arena(e->scratch_bytes);
    if (e->scratch_bytes && !scratch) return 1;
    dnnl_memory_desc_t s_md;
    dnnl_memory_desc_init_by_tag(&s_md, 1, (dnnl_dims_t){(dnnl_dim_t)e->scratch_bytes}, dnnl_u8, dnnl_x);
    if (dnnl_memory_create(&src, &e->src, engine, (void *)source) != dnnl_success ||
        dnnl_memory_create(&dst, &e->dst, engine, destination) != dnnl_success ||
        (l->bias && dnnl_memory_create(&bias, &e->bias, engine, (void *)l->bias) != dnnl_success) ||
        (e->scratch_bytes && dnnl_memory_create(&pad, &s_md, engine, scratch) != dnnl_success))
        goto done;
    dnnl_exec_arg_t args[5];
    int nargs = 0;
    args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, src};
    args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, l->packed[e->packing].memory};
    args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DST, dst};
    if (bias) args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, bias};
    if (pad) args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, pad};
    failed = dml_dnnl_execute(e->primitive, nargs, args);
done:
    if (src) dnnl_memory_destroy(src);
    if (dst) dnnl_memory_destroy(dst);
    if (bias) dnnl_memory_destroy(bias);
    if (pad) dnnl_memory_destroy(pad);
    return failed;
}

int dml_dnnl_linear_prepare(dml_dnnl_linear *l, int rows) { return l && rows >= 1 && entry_for(l, rows) ? 0 : 1; }

void dml_dnnl_linear_destroy(dml_dnnl_linear *l) {
    if (!l) return;
    int n = atomic_load(&l->count);
    for (int i = 0; i < n; i++) dnnl_primitive_destroy(l->entries[i].primitive);
    for (int i = 0; i < l->packings; i++) {
        dnnl_memory_destroy(l->packed[i].memory);
        free(l->packed[i].data);
    }
    pthread_mutex_destroy(&l->lock);
    free(l);
}

#else
// No oneDNN here: no handle is ever made and callers keep their own GEMM.
dml_dnnl_linear *dml_dnnl_linear_create(int in_features, int out_features, const float *weight, const float *bias,
                                        dml_dnnl_activation activation, float alpha, float beta) {
    (void)in_features; (void)out_features; (void)weight; (void)bias; (void)activation; (void)alpha; (void)beta;
    return 0;
}
int dml_dnnl_linear_run(dml_dnnl_linear *linear, const float *source, float *destination, int rows) {
    (void)linear; (void)source; (void)destination; (void)rows;
    return 1;
}
int dml_dnnl_linear_prepare(dml_dnnl_linear *linear, int rows) {
    (void)linear; (void)rows;
    return 1;
}
void dml_dnnl_linear_destroy(dml_dnnl_linear *linear) { (void)linear; }
#endif
