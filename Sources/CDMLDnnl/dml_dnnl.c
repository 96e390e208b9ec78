#include "dml_dnnl.h"

#if defined(__x86_64__) && defined(__linux__) && __has_include(<dnnl.h>)
#define DML_HAVE_DNNL 1
#include "dnnl_internal.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Debian's oneDNN runs on OpenMP (libgomp); declared here because the toolchain's clang may lack omp.h.
extern void omp_set_num_threads(int);

enum { MAX_BATCH_SIZES = 8 };

// Primitives for one batch size: the conv, its weights in oneDNN's layout, and reorders for the activations
// when oneDNN picked a layout other than NCHW.
typedef struct {
    int batch, threads;
    dnnl_primitive_t conv, to_src, to_dst, from_dst;
    dnnl_memory_desc_t user_src, user_dst, src, dst, weights_md;
    dnnl_memory_t weights;
    void *weights_data;
    int owns_weights;  // 0 when another batch size's entry holds the same reordered weights
    size_t scratch_bytes, src_bytes, dst_bytes;
} entry;

struct dml_dnnl_conv {
    dml_dnnl_conv_shape s;
    const float *weight, *bias;
    dml_dnnl_activation activation;
    float alpha, beta;
    pthread_mutex_t lock;
    atomic_int count;
    entry entries[MAX_BATCH_SIZES];
    // The caller's weights (goihw), kept by `dml_dnnl_conv_pack` for a layer that may run Winograd: oneDNN
    // cannot reorder out of a Winograd layout, so later batch sizes reorder from this copy.
    float *plain_weights;
    // The most samples one Winograd call takes (0 until the first batch asks; `winograd_chunk_limit`).
    atomic_int winograd_samples;
};

static dnnl_engine_t engine;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static atomic_int threads;

static void make_engine(void) {
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) engine = NULL;
}

dnnl_engine_t dml_dnnl_engine(void) {
    pthread_once(&engine_once, make_engine);
    return engine;
}

int dml_dnnl_available(void) { return dml_dnnl_engine() != NULL; }

// This thread's own count while it runs its share of a batch split over threads (0: the process-wide one).
static _Thread_local int thread_threads;

void dml_dnnl_set_threads(int n) { atomic_store(&threads, n > 0 ? n : 0); }

void dml_dnnl_set_thread_threads(int n) { thread_threads = n > 0 ? n : 0; }

int dml_dnnl_threads(void) { return thread_threads > 0 ? thread_threads : atomic_load(&threads); }

void dml_dnnl_apply_threads(void) {
    int n = dml_dnnl_threads();
    if (n > 0) omp_set_num_threads(n);
}

dml_dnnl_conv *dml_dnnl_conv_create(const dml_dnnl_conv_shape *shape, const float *weight, const float *bias,
                                    dml_dnnl_activation activation, float alpha, float beta) {
    if (!dml_dnnl_available() || shape->groups < 1) return NULL;
    dml_dnnl_conv *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->s = *shape;
    c->weight = weight;
    c->bias = bias;
    c->activation = activation;
    c->alpha = alpha;
    c->beta = beta;
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

dnnl_alg_kind_t dml_dnnl_eltwise_kind(dml_dnnl_activation a) {
    switch (a) {
    case DML_DNNL_RELU: return dnnl_eltwise_relu;
    case DML_DNNL_CLIP: return dnnl_eltwise_clip_v2;
    case DML_DNNL_HARDSWISH: return dnnl_eltwise_hardswish;
    case DML_DNNL_GELU_ERF: return dnnl_eltwise_gelu_erf;
    case DML_DNNL_GELU_TANH: return dnnl_eltwise_gelu_tanh;
    case DML_DNNL_LOGISTIC: return dnnl_eltwise_logistic;
    case DML_DNNL_TANH: return dnnl_eltwise_tanh;
    default: return dnnl_alg_kind_undef;
    }
}

// Winograd F(2x2 / 4x4, 3x3) does 2.25-4x fewer multiplies than a direct 3x3 conv; oneDNN 2.6 has it on
// AVX-512 only. Measured on an AVX-512 Xeon (1 and 2 threads, reorders from and to NHWC included): 0.43-0.78x of
// the direct kernel's time with 64+ input and output channels, and slower at batch 1 on small maps (under 64
// output pixels; 512 channels at 7x7: 1.2x). With 32 channels that Xeon measured no gain, but on an AMD EPYC
// (Zen 4) end to end at 1 thread: DenseNet-121's 128 -> 32 convs b1 53.6 -> 44.9 ms, small-cnn's 32 -> 64 b16
// 10.0 -> 7.0 ms, Inception-v3 level (bench/RESULTS.md), so 32+ channels take it. Its weights are 16/9
// (batch 1) to 4x (batch 16) the direct ones, plus a scratchpad of the transformed batch: layers past 128 x 256
// channels stay direct, which keeps ResNet-50's peak memory at +13% for the same speed (256 x 256 layers too:
// +50%, no faster end to end). DMLKIT_WINOGRAD=off turns it off (an A/B switch).
static int winograd_shape(const dml_dnnl_conv_shape *s) {
    return s->groups == 1 && s->kernel_h == 3 && s->kernel_w == 3 && s->stride_h == 1 && s->stride_w == 1 &&
           s->dilation_h == 1 && s->dilation_w == 1 && s->in_channels >= 32 && s->out_channels >= 32 &&
           (long)s->in_channels * s->out_channels <= 128L * 256L;
}

// oneDNN's effective ISA has AVX-512 core (its ISA values are bit masks; ONEDNN_MAX_CPU_ISA lowers it) and
// DMLKIT_WINOGRAD is not off. Elsewhere no layer keeps a plain weight copy or splits its batch for nothing.
static int winograd_allowed(void) {
    static atomic_int cached = -1;
    int v = atomic_load(&cached);
    if (v < 0) {
        const char *setting = getenv("DMLKIT_WINOGRAD");
        v = !(setting && (!strcmp(setting, "off") || !strcmp(setting, "0"))) &&
            (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core;
        atomic_store(&cached, v);
    }
    return v;
}

static int use_winograd(const dml_dnnl_conv_shape *s, int batch) {
    return winograd_allowed() && winograd_shape(s) && (long)batch * s->out_height * s->out_width >= 64;
}

static void release(entry *e) {
    if (e->conv) dnnl_primitive_destroy(e->conv);
    if (e->to_src) dnnl_primitive_destroy(e->to_src);
    if (e->to_dst) dnnl_primitive_destroy(e->to_dst);
    if (e->from_dst) dnnl_primitive_destroy(e->from_dst);
    if (e->owns_weights) {
        if (e->weights) dnnl_memory_destroy(e->weights);
        free(e->weights_data);
    }
    memset(e, 0, sizeof *e);
}

static int make_reorder(dnnl_primitive_t *out, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to) {
    dnnl_primitive_desc_t pd;
    if (dnnl_reorder_primitive_desc_create(&pd, from, dml_dnnl_engine(), to, dml_dnnl_engine(), NULL) != dnnl_success) return 1;
    dnnl_status_t st = dnnl_primitive_create(out, pd);
    dnnl_primitive_desc_destroy(pd);
    return st != dnnl_success;
}

// Each thread's work buffer (scratchpad + activations in oneDNN's layout), grown to the largest layer it ran
// and kept: a fresh large malloc per call faults its pages in every time. Freed when the thread exits.
static pthread_key_t arena_key;
static pthread_once_t arena_once = PTHREAD_ONCE_INIT;
static _Thread_local void *arena_data;
static _Thread_local size_t arena_size;

static void make_arena_key(void) { pthread_key_create(&arena_key, free); }

void *dml_dnnl_arena(size_t bytes) {
    if (bytes <= arena_size) return arena_data;
    pthread_once(&arena_once, make_arena_key);
    void *grown = NULL;
    if (posix_memalign(&grown, 64, bytes)) return NULL;
    free(arena_data);
    arena_data = grown;
    arena_size = bytes;
    pthread_setspecific(arena_key, grown);
    return grown;
}

// Runs `p` with `args` on a fresh stream (streams are cheap on CPU and not shared between threads).
int dml_dnnl_execute(dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args) {
    dnnl_stream_t stream;
    if (dnnl_stream_create(&stream, dml_dnnl_engine(), dnnl_stream_default_flags) != dnnl_success) return 1;
    dnnl_status_t st = dnnl_primitive_execute(p, stream, nargs, args);
    if (st == dnnl_success) st = dnnl_stream_wait(stream);
    dnnl_stream_destroy(stream);
    return st != dnnl_success;
}

// The conv's primitive descriptor for these activation descriptors; NULL when oneDNN refuses them.
static dnnl_primitive_desc_t conv_pd(const dml_dnnl_conv *c, dnnl_alg_kind_t algorithm, const dnnl_memory_desc_t *src,
                                     const dnnl_memory_desc_t *dst) {
    const dml_dnnl_conv_shape *s = &c->s;
    int g = s->groups;
    dnnl_dims_t w_dims = {g, s->out_channels / g, s->in_channels / g, s->kernel_h, s->kernel_w};
    dnnl_dims_t b_dims = {s->out_channels};
    dnnl_dims_t strides = {s->stride_h, s->stride_w};
    dnnl_dims_t dilates = {s->dilation_h - 1, s->dilation_w - 1};  // oneDNN counts dilation from 0
    dnnl_dims_t pads = {s->pad_h, s->pad_w};
    // The bottom/right padding that makes oneDNN's output size equal ours (PyTorch drops the remainder).
    dnnl_dims_t pads_r = {
        (s->out_height - 1) * s->stride_h + (s->kernel_h - 1) * s->dilation_h + 1 - s->height - s->pad_h,
        (s->out_width - 1) * s->stride_w + (s->kernel_w - 1) * s->dilation_w + 1 - s->width - s->pad_w};
    dnnl_memory_desc_t w_any, b_md;
    if (dnnl_memory_desc_init_by_tag(&w_any, 5, w_dims, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&b_md, 1, b_dims, dnnl_f32, dnnl_x) != dnnl_success)
        return NULL;
    dnnl_convolution_desc_t desc;
    if (dnnl_dilated_convolution_forward_desc_init(&desc, dnnl_forward_inference, algorithm, src, &w_any,
                                                   c->bias ? &b_md : NULL, dst, strides, dilates, pads,
                                                   pads_r) != dnnl_success)
        return NULL;
    // The scratchpad is ours, allocated per call, so one primitive can run on several threads at once.
    dnnl_primitive_attr_t attr = dml_dnnl_user_scratchpad_attr();
    if (!attr) return NULL;
    dnnl_alg_kind_t kind = dml_dnnl_eltwise_kind(c->activation);
    if (kind != dnnl_alg_kind_undef || s->accumulate) {
        dnnl_post_ops_t ops;
        dnnl_post_ops_create(&ops);
        if (s->accumulate) dnnl_post_ops_append_sum(ops, 1.0f);  // residual first, then the activation
        if (kind != dnnl_alg_kind_undef) dnnl_post_ops_append_eltwise(ops, 1.0f, kind, c->alpha, c->beta);
        dnnl_primitive_attr_set_post_ops(attr, ops);
        dnnl_post_ops_destroy(ops);
    }
    dnnl_primitive_desc_t pd = NULL;
    if (dnnl_primitive_desc_create(&pd, &desc, attr, dml_dnnl_engine(), NULL) != dnnl_success) pd = NULL;
    dnnl_primitive_attr_destroy(attr);
    return pd;
}

static const char *impl_name(dnnl_primitive_desc_t pd) {
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl) return "";
    return impl;
}

// Whether oneDNN picked one of its optimised kernels rather than the reference loops or its im2col GEMM.
static int is_fast(dnnl_primitive_desc_t pd) {
    const char *impl = impl_name(pd);
    return *impl && !strstr(impl, "ref") && !strstr(impl, "gemm:");
}

// Its scratchpad plus the source and destination copies in its blocked layout, per call: past this the work
// buffer it grows would raise the peak memory more than the speed is worth (Inception-v3's 80 -> 192 conv at
// 71x71: 32 MB for 4 samples, +17% peak RSS). A large batch runs in calls whose copies stay within half of it
// and whose scratchpad fits beside them (`samples_per_call`); a sample that alone needs more runs direct.
enum { WINOGRAD_WORK_BYTES = 16 << 20, WINOGRAD_COPY_BYTES = WINOGRAD_WORK_BYTES / 2, MAX_WINOGRAD_SAMPLES = 64 };

// The Winograd conv for these layouts when oneDNN has a JIT kernel for it (its own blocked layouts) within the
// work buffer bound; else NULL.
static dnnl_primitive_desc_t winograd_pd(const dml_dnnl_conv *c, const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *dst) {
    dnnl_primitive_desc_t pd = conv_pd(c, dnnl_convolution_winograd, src, dst);
    size_t work = pd ? dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0)) +
                       dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0)) +
                       dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0))
                     : 0;
    if (pd && !(strstr(impl_name(pd), "wino") && is_fast(pd) && work <= WINOGRAD_WORK_BYTES)) {
        dnnl_primitive_desc_destroy(pd);
        pd = NULL;
    }
    return pd;
}

// Creates the primitives for one batch size and reorders the weights into the layout oneDNN chose (or shares
// the weights of an earlier batch size's entry `shared`, when oneDNN chose the same layout).
static int build(const dml_dnnl_conv *c, int batch, entry *e, const entry *earlier, int n_earlier) {
    const dml_dnnl_conv_shape *s = &c->s;
    int g = s->groups;
    dnnl_dims_t src_dims = {batch, s->in_channels, s->height, s->width};
    dnnl_dims_t dst_dims = {batch, s->out_channels, s->out_height, s->out_width};
    dnnl_dims_t w_dims = {g, s->out_channels / g, s->in_channels / g, s->kernel_h, s->kernel_w};
    dnnl_memory_desc_t src_any, dst_any, w_user;
    e->batch = batch;
    e->threads = dml_dnnl_threads();
    dml_dnnl_apply_threads();
    if (dnnl_memory_desc_init_by_tag(&e->user_src, 4, src_dims, dnnl_f32, s->source_channels_last ? dnnl_nhwc : dnnl_nchw) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&e->user_dst, 4, dst_dims, dnnl_f32, s->destination_channels_last ? dnnl_nhwc : dnnl_nchw) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&src_any, 4, src_dims, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&dst_any, 4, dst_dims, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&w_user, 5, w_dims, dnnl_f32, dnnl_goihw) != dnnl_success)
        return 1;
    // The caller's layouts as they are when oneDNN has a fast kernel for them (no reorders); else the layouts
    // oneDNN prefers, with reorders around the conv.
    dnnl_primitive_desc_t pd = use_winograd(s, batch) ? winograd_pd(c, &src_any, &dst_any) : NULL;
    if (!pd) pd = conv_pd(c, dnnl_convolution_direct, &e->user_src, &e->user_dst);
    if (pd && !is_fast(pd)) {
        dnnl_primitive_desc_destroy(pd);
        pd = NULL;
    }
    if (!pd) pd = conv_pd(c, dnnl_convolution_direct, &src_any, &dst_any);
    if (!pd) return 1;
    e->src = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    e->dst = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    e->weights_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    e->scratch_bytes = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
    e->src_bytes = dnnl_memory_desc_equal(&e->src, &e->user_src) ? 0 : dnnl_memory_desc_get_size(&e->src);
    e->dst_bytes = dnnl_memory_desc_equal(&e->dst, &e->user_dst) ? 0 : dnnl_memory_desc_get_size(&e->dst);
    dnnl_status_t st = dnnl_primitive_create(&e->conv, pd);
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success) return 1;
    if (e->src_bytes && make_reorder(&e->to_src, &e->user_src, &e->src)) return 1;
    if (e->dst_bytes && make_reorder(&e->from_dst, &e->dst, &e->user_dst)) return 1;
    if (e->dst_bytes && s->accumulate && make_reorder(&e->to_dst, &e->user_dst, &e->dst)) return 1;
    for (int i = 0; i < n_earlier; i++) {
        if (dnnl_memory_desc_equal(&earlier[i].weights_md, &e->weights_md)) {
            e->weights = earlier[i].weights;
            e->weights_data = earlier[i].weights_data;
            e->owns_weights = 0;
            return 0;
        }
    }
    // Weights into oneDNN's layout, once.
    e->owns_weights = 1;
    size_t w_bytes = dnnl_memory_desc_get_size(&e->weights_md);
    if (posix_memalign(&e->weights_data, 64, w_bytes ? w_bytes : 64)) { e->weights_data = NULL; return 1; }
    if (dnnl_memory_create(&e->weights, &e->weights_md, dml_dnnl_engine(), e->weights_data) != dnnl_success) return 1;
    // From the caller's weights, or once they are detached, from the plain copy pack kept or else from the first
    // batch size's packed copy.
    const dnnl_memory_desc_t *from_md = &w_user;
    void *from_data = c->weight ? (void *)c->weight : c->plain_weights;
    if (!from_data) {
        if (n_earlier < 1 || !earlier[0].owns_weights) return 1;
        from_md = &earlier[0].weights_md;
        from_data = earlier[0].weights_data;
    }
    dnnl_memory_t user_w;
    if (dnnl_memory_create(&user_w, from_md, dml_dnnl_engine(), from_data) != dnnl_success) return 1;
    dnnl_primitive_t reorder;
    int failed = make_reorder(&reorder, from_md, &e->weights_md);
    if (!failed) {
        dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, user_w}, {DNNL_ARG_TO, e->weights}};
        failed = dml_dnnl_execute(reorder, 2, args);
        dnnl_primitive_destroy(reorder);
    }
    dnnl_memory_destroy(user_w);
    return failed;
}

// The cached entry for `batch`, made on first use. When the cache is full, a one-off entry is built into
// `spare` (the caller releases it). NULL when oneDNN refuses the batch.
static entry *entry_for(dml_dnnl_conv *c, int batch, entry *spare) {
    int n = atomic_load_explicit(&c->count, memory_order_acquire), threads = dml_dnnl_threads();
    for (int i = 0; i < n; i++)
        if (c->entries[i].batch == batch && c->entries[i].threads == threads) return &c->entries[i];
    pthread_mutex_lock(&c->lock);
    entry *found = NULL;
    n = atomic_load_explicit(&c->count, memory_order_relaxed);
    for (int i = 0; i < n && !found; i++)
        if (c->entries[i].batch == batch && c->entries[i].threads == threads) found = &c->entries[i];
    if (!found) {
        entry *e = n < MAX_BATCH_SIZES ? &c->entries[n] : spare;
        if (build(c, batch, e, c->entries, n) == 0) {
            found = e;
            if (e != spare) atomic_store_explicit(&c->count, n + 1, memory_order_release);
        } else {
            release(e);
        }
    }
    pthread_mutex_unlock(&c->lock);
    return found;
}

static int run_batch(dml_dnnl_conv *c, const float *source, float *destination, int batch) {
    entry spare = {0};
    entry *e = entry_for(c, batch, &spare);
    if (!e) return 1;
    dml_dnnl_apply_threads();
    dnnl_memory_t user_src = NULL, user_dst = NULL, src = NULL, dst = NULL, bias = NULL, pad = NULL;
    int failed = 1;
    // One block: scratchpad, then the source and destination in oneDNN's layout, each 64-byte aligned.
    size_t scratch_size = (e->scratch_bytes + 63) / 64 * 64, src_size = (e->src_bytes + 63) / 64 * 64;
    size_t total = scratch_size + src_size + e->dst_bytes;
    void *block = dml_dnnl_arena(total);
    if (total && !block) goto done;
    void *scratch = block, *src_tmp = (char *)block + scratch_size, *dst_tmp = (char *)block + scratch_size + src_size;
    dnnl_dims_t b_dims = {c->s.out_channels};
    dnnl_memory_desc_t b_md;
    dnnl_memory_desc_init_by_tag(&b_md, 1, b_dims, dnnl_f32, dnnl_x);
    dnnl_memory_desc_t s_md;
    dnnl_memory_desc_init_by_tag(&s_md, 1, (dnnl_dims_t){(dnnl_dim_t)e->scratch_bytes}, dnnl_u8, dnnl_x);
    if (dnnl_memory_create(&user_src, &e->user_src, dml_dnnl_engine(), (void *)source) != dnnl_success ||
        dnnl_memory_create(&user_dst, &e->user_dst, dml_dnnl_engine(), destination) != dnnl_success ||
        (e->src_bytes && dnnl_memory_create(&src, &e->src, dml_dnnl_engine(), src_tmp) != dnnl_success) ||
        (e->dst_bytes && dnnl_memory_create(&dst, &e->dst, dml_dnnl_engine(), dst_tmp) != dnnl_success) ||
        (c->bias && dnnl_memory_create(&bias, &b_md, dml_dnnl_engine(), (void *)c->bias) != dnnl_success) ||
        (e->scratch_bytes && dnnl_memory_create(&pad, &s_md, dml_dnnl_engine(), scratch) != dnnl_success))
        goto done;
    if (e->src_bytes) {
        dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, user_src}, {DNNL_ARG_TO, src}};
        if (dml_dnnl_execute(e->to_src, 2, args)) goto done;
    }
    if (e->to_dst) {  // the residual the sum post-op adds to, in oneDNN's layout
        dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, user_dst}, {DNNL_ARG_TO, dst}};
        if (dml_dnnl_execute(e->to_dst, 2, args)) goto done;
    }
    dnnl_exec_arg_t args[5];
    int nargs = 0;
    args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, e->src_bytes ? src : user_src};
    args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, e->weights};
    args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DST, e->dst_bytes ? dst : user_dst};
    if (bias) args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, bias};
    if (pad) args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, pad};
    if (dml_dnnl_execute(e->conv, nargs, args)) goto done;
    if (e->dst_bytes) {
        dnnl_exec_arg_t back[] = {{DNNL_ARG_FROM, dst}, {DNNL_ARG_TO, user_dst}};
        if (dml_dnnl_execute(e->from_dst, 2, back)) goto done;
    }
    failed = 0;
done:
    if (user_src) dnnl_memory_destroy(user_src);
    if (user_dst) dnnl_memory_destroy(user_dst);
    if (src) dnnl_memory_destroy(src);
    if (dst) dnnl_memory_destroy(dst);
    if (bias) dnnl_memory_destroy(bias);
    if (pad) dnnl_memory_destroy(pad);
    if (e == &spare) release(&spare);
    return failed;
}

// Whether a Winograd primitive for `batch` samples exists within the work bound (`winograd_pd`).
static int winograd_fits(const dml_dnnl_conv *c, int batch) {
    const dml_dnnl_conv_shape *s = &c->s;
    dnnl_dims_t src_dims = {batch, s->in_channels, s->height, s->width};
    dnnl_dims_t dst_dims = {batch, s->out_channels, s->out_height, s->out_width};
    dnnl_memory_desc_t src_any, dst_any;
    if (dnnl_memory_desc_init_by_tag(&src_any, 4, src_dims, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&dst_any, 4, dst_dims, dnnl_f32, dnnl_format_tag_any) != dnnl_success)
        return 0;
    dml_dnnl_apply_threads();
    dnnl_primitive_desc_t pd = winograd_pd(c, &src_any, &dst_any);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return pd != NULL;
}

// The most samples per Winograd call: as many as keep the blocked copies within WINOGRAD_COPY_BYTES, halved
// while the scratchpad on top of them would pass WINOGRAD_WORK_BYTES. The scratchpad has a large part that does
// not grow with the batch (small-cnn's 64 -> 128 at 16x16: 7.9 MB at 1 sample, 14.6 MB at 16), so on small maps
// the copy bound alone let the whole batch exceed the work bound and the layer ran direct (2.2x slower there).
// Found once per layer, on the first multi-sample call.
static int winograd_chunk_limit(dml_dnnl_conv *c) {
    int known = atomic_load(&c->winograd_samples);
    if (known > 0) return known;
    const dml_dnnl_conv_shape *s = &c->s;
    size_t per_sample = sizeof(float) * ((size_t)(s->in_channels + 15) / 16 * 16 * s->height * s->width +
                                         (size_t)(s->out_channels + 15) / 16 * 16 * s->out_height * s->out_width);
    size_t most = WINOGRAD_COPY_BYTES / per_sample;
    if (most > MAX_WINOGRAD_SAMPLES) most = MAX_WINOGRAD_SAMPLES;
    int limit = most < 1 ? 1 : (int)most;
    while (limit > 1 && !winograd_fits(c, limit)) limit /= 2;
    atomic_store(&c->winograd_samples, limit);  // threads racing here find the same value
    return limit;
}

// Samples per call for a Winograd layer: its blocked copies of the source and destination and its scratchpad
// grow with the batch, so a large batch runs in even chunks of at most `winograd_chunk_limit` (samples are
// contiguous in NCHW and NHWC alike). Other layers take the batch whole.
static int samples_per_call(dml_dnnl_conv *c, int batch) {
    if (batch == 1 || !winograd_allowed() || !winograd_shape(&c->s)) return batch;
    size_t most = (size_t)winograd_chunk_limit(c);
    if ((size_t)batch <= most) return batch;
    size_t calls = (batch + most - 1) / most;
    return (int)((batch + calls - 1) / calls);
}

int dml_dnnl_conv_run(dml_dnnl_conv *c, const float *source, float *destination, int batch) {
    if (!c || batch < 1) return 1;
    int chunk = samples_per_call(c, batch);
    size_t in_size = (size_t)c->s.in_channels * c->s.height * c->s.width;
    size_t out_size = (size_t)c->s.out_channels * c->s.out_height * c->s.out_width;
    for (int n = 0; n < batch; n += chunk) {
        int count = batch - n < chunk ? batch - n : chunk;
        if (run_batch(c, source + n * in_size, destination + n * out_size, count)) return 1;
    }
    return 0;
}

static int prepare_batch(dml_dnnl_conv *c, int batch) {
    entry spare = {0};
    entry *e = entry_for(c, batch, &spare);
    if (e == &spare) release(&spare);
    return e == NULL;
}

int dml_dnnl_conv_prepare(dml_dnnl_conv *c, int batch) {
    if (!c || batch < 1) return 1;
    // The call sizes `dml_dnnl_conv_run` uses for this batch: its chunk and the last, shorter one.
    int chunk = samples_per_call(c, batch), last = batch - (batch - 1) / chunk * chunk;
    return prepare_batch(c, chunk) || (last != chunk && prepare_batch(c, last));
}

int dml_dnnl_conv_pack(dml_dnnl_conv *c, const float *weight) {
    if (!c || !weight) return 1;
    pthread_mutex_lock(&c->lock);
    c->weight = weight;
    pthread_mutex_unlock(&c->lock);
    entry spare = {0};
    entry *e = entry_for(c, 1, &spare);
    if (e == &spare) release(&spare);
    pthread_mutex_lock(&c->lock);
    int packed = atomic_load(&c->count) > 0 && c->entries[0].owns_weights;
    if (packed && winograd_allowed() && winograd_shape(&c->s) && !c->plain_weights) {
        size_t bytes = (size_t)c->s.out_channels * c->s.in_channels * c->s.kernel_h * c->s.kernel_w * sizeof(float);
        c->plain_weights = malloc(bytes);
        if (c->plain_weights) memcpy(c->plain_weights, weight, bytes);
        else packed = 0;
    }
    c->weight = NULL;
    pthread_mutex_unlock(&c->lock);
    return !(e && packed);
}

int dml_dnnl_conv_kernel(dml_dnnl_conv *c, int batch, char *name, size_t capacity) {
    if (!c || batch < 1 || !name || capacity < 1) return 1;
    entry spare = {0};
    entry *e = entry_for(c, samples_per_call(c, batch), &spare);
    const_dnnl_primitive_desc_t pd = NULL;
    if (e && dnnl_primitive_get_primitive_desc(e->conv, &pd) == dnnl_success && pd) {
        snprintf(name, capacity, "%s", impl_name((dnnl_primitive_desc_t)pd));
    }
    if (e == &spare) release(&spare);
    return pd == NULL;
}

int dml_dnnl_conv_is_packed(dml_dnnl_conv *c) {
    return c && atomic_load_explicit(&c->count, memory_order_acquire) > 0 && c->entries[0].owns_weights;
}

void dml_dnnl_conv_destroy(dml_dnnl_conv *c) {
    if (!c) return;
    int n = atomic_load(&c->count);
    for (int i = 0; i < n; i++) release(&c->entries[i]);
    free(c->plain_weights);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

#else
// No oneDNN here: every call reports it unavailable and the runtime keeps its own convolution.
int dml_dnnl_available(void) { return 0; }
dml_dnnl_conv *dml_dnnl_conv_create(const dml_dnnl_conv_shape *shape, const float *weight, const float *bias,
                                    dml_dnnl_activation activation, float alpha, float beta) {
    (void)shape; (void)weight; (void)bias; (void)activation; (void)alpha; (void)beta;
    return 0;
}
int dml_dnnl_conv_run(dml_dnnl_conv *conv, const float *source, float *destination, int batch) {
    (void)conv; (void)source; (void)destination; (void)batch;
    return 1;
}
int dml_dnnl_conv_prepare(dml_dnnl_conv *conv, int batch) {
    (void)conv; (void)batch;
    return 1;
}
int dml_dnnl_conv_pack(dml_dnnl_conv *conv, const float *weight) {
    (void)conv; (void)weight;
    return 1;
}
int dml_dnnl_conv_is_packed(dml_dnnl_conv *conv) {
    (void)conv;
    return 0;
}
int dml_dnnl_conv_kernel(dml_dnnl_conv *conv, int batch, char *name, size_t capacity) {
    (void)conv; (void)batch; (void)name; (void)capacity;
    return 1;
}
void dml_dnnl_conv_destroy(dml_dnnl_conv *conv) { (void)conv; }
void dml_dnnl_set_threads(int threads) { (void)threads; }
void dml_dnnl_set_thread_threads(int threads) { (void)threads; }
int dml_dnnl_threads(void) { return 0; }
#endif
