#include "dml_dnnl_attention.h"
#if defined(__x86_64__) && defined(__linux__) && __has_include(<dnnl.h>)
#include "dml_parallel.h"
#include "dnnl_internal.h"
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

// Three primitives made once at create: scores = scale * q k^T, softmax over each score row (in place), and
// context = scores v. q, k, v are read in place from the packed projection through strided descriptors, and the
// context is written in place into its head's columns, so nothing is copied per head.
struct dml_dnnl_attention {
    int tokens, width, heads;
    dnnl_primitive_t scores, softmax, context;
    dnnl_memory_desc_t q_md, kt_md, s_md, v_md, c_md;
    size_t scratch_bytes;  // the largest scratchpad of the three
};

static size_t scratch_of(dnnl_primitive_desc_t pd) {
    return dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
}

// The primitive for an op descriptor with a user scratchpad (one primitive runs on several threads at once),
// an optional output scale, raising `*scratch` to its scratchpad size; NULL when oneDNN refuses it.
static dnnl_primitive_t make_primitive(const_dnnl_op_desc_t desc, float scale, size_t *scratch) {
    dnnl_primitive_attr_t attr = dml_dnnl_user_scratchpad_attr();
    if (!attr) return NULL;
    if (scale != 1.0f) dnnl_primitive_attr_set_output_scales(attr, 1, 0, &scale);
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t p = NULL;
    if (dnnl_primitive_desc_create(&pd, desc, attr, dml_dnnl_engine(), NULL) == dnnl_success) {
        size_t bytes = scratch_of(pd);
        if (bytes > *scratch) *scratch = bytes;
        if (dnnl_primitive_create(&p, pd) != dnnl_success) p = NULL;
        dnnl_primitive_desc_destroy(pd);
    }
    dnnl_primitive_attr_destroy(attr);
    return p;
}

// A matmul a[M,K] b[K,N] -> c[M,N] on these descriptors, scaled by `scale`.
static dnnl_primitive_t make_matmul(const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b, const dnnl_memory_desc_t *c,
                                    float scale, size_t *scratch) {
    dnnl_matmul_desc_t desc;
    if (dnnl_matmul_desc_init(&desc, a, b, NULL, c) != dnnl_success) return NULL;
    return make_primitive(&desc, scale, scratch);
}

// Softmax along each row of `md`, in place.
static dnnl_primitive_t make_softmax(const dnnl_memory_desc_t *md, size_t *scratch) {
    dnnl_softmax_desc_t desc;
    if (dnnl_softmax_forward_desc_init(&desc, dnnl_forward_inference, md, 1) != dnnl_success) return NULL;
    return make_primitive(&desc, 1.0f, scratch);
}

dml_dnnl_attention *dml_dnnl_attention_create(int tokens, int width, int heads) {
    if (!dml_dnnl_engine() || tokens < 1 || heads < 1 || width < heads || width % heads) return NULL;
    dml_dnnl_attention *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->tokens = tokens;
    a->width = width;
    a->heads = heads;
    dnnl_dim_t t = tokens, d = width, dh = width / heads;
    // q and v: [T, dh] rows 3D apart; k^T: [dh, T], column j is token j's key (row stride 3D); context rows D apart.
    int failed = dnnl_memory_desc_init_by_strides(&a->q_md, 2, (dnnl_dims_t){t, dh}, dnnl_f32, (dnnl_dims_t){3 * d, 1}) ||
                 dnnl_memory_desc_init_by_strides(&a->kt_md, 2, (dnnl_dims_t){dh, t}, dnnl_f32, (dnnl_dims_t){1, 3 * d}) ||
                 dnnl_memory_desc_init_by_tag(&a->s_md, 2, (dnnl_dims_t){t, t}, dnnl_f32, dnnl_ab) ||
                 dnnl_memory_desc_init_by_strides(&a->v_md, 2, (dnnl_dims_t){t, dh}, dnnl_f32, (dnnl_dims_t){3 * d, 1}) ||
                 dnnl_memory_desc_init_by_strides(&a->c_md, 2, (dnnl_dims_t){t, dh}, dnnl_f32, (dnnl_dims_t){d, 1});
    if (!failed) {
        a->scores = make_matmul(&a->q_md, &a->kt_md, &a->s_md, 1.0f / sqrtf((float)dh), &a->scratch_bytes);
        a->softmax = make_softmax(&a->s_md, &a->scratch_bytes);
        a->context = make_matmul(&a->s_md, &a->v_md, &a->c_md, 1.0f, &a->scratch_bytes);
    }
    if (failed || !a->scores || !a->softmax || !a->context) {
        dml_dnnl_attention_destroy(a);
        return NULL;
    }
    return a;
}

typedef struct {
    const dml_dnnl_attention *a;
    const float *qkv;
    float *context;
    atomic_int failed;
} job;

// One thread's share of the (sample, head) pairs: its scores and scratchpad live in its arena, and its memory
// objects are made once and pointed at each pair's data.
static void run_pairs(void *context, long begin, long end) {
    job *j = context;
    const dml_dnnl_attention *a = j->a;
    size_t t = a->tokens, d = a->width, dh = d / a->heads;
    size_t score_bytes = (t * t * sizeof(float) + 63) & ~(size_t)63;
    char *arena = dml_dnnl_arena(score_bytes + a->scratch_bytes + 64);
    if (!arena) { atomic_store(&j->failed, 1); return; }
    float *scores = (float *)arena;
    void *scratch = arena + score_bytes;
    dnnl_engine_t engine = dml_dnnl_engine();
    dnnl_memory_desc_t pad_md;
    dnnl_memory_desc_init_by_tag(&pad_md, 1, (dnnl_dims_t){(dnnl_dim_t)(a->scratch_bytes ? a->scratch_bytes : 1)}, dnnl_u8, dnnl_x);
    dnnl_memory_t q = NULL, kt = NULL, s = NULL, v = NULL, c = NULL, pad = NULL;
    dnnl_stream_t stream = NULL;
    int failed = dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) ||
                 dnnl_memory_create(&q, &a->q_md, engine, DNNL_MEMORY_NONE) ||
                 dnnl_memory_create(&kt, &a->kt_md, engine, DNNL_MEMORY_NONE) ||
                 dnnl_memory_create(&s, &a->s_md, engine, scores) ||
                 dnnl_memory_create(&v, &a->v_md, engine, DNNL_MEMORY_NONE) ||
                 dnnl_memory_create(&c, &a->c_md, engine, DNNL_MEMORY_NONE) ||
                 dnnl_memory_create(&pad, &pad_md, engine, scratch);
    for (long i = begin; i < end && !failed; i++) {
        size_t sample = (size_t)i / a->heads, head = (size_t)i % a->heads;
        const float *base = j->qkv + sample * t * 3 * d + head * dh;
        failed = dnnl_memory_set_data_handle(q, (void *)base) || dnnl_memory_set_data_handle(kt, (void *)(base + d)) ||
                 dnnl_memory_set_data_handle(v, (void *)(base + 2 * d)) ||
                 dnnl_memory_set_data_handle(c, j->context + sample * t * d + head * dh);
        if (failed) break;
        dnnl_exec_arg_t scores_args[] = {{DNNL_ARG_SRC, q}, {DNNL_ARG_WEIGHTS, kt}, {DNNL_ARG_DST, s}, {DNNL_ARG_SCRATCHPAD, pad}};
        dnnl_exec_arg_t softmax_args[] = {{DNNL_ARG_SRC, s}, {DNNL_ARG_DST, s}, {DNNL_ARG_SCRATCHPAD, pad}};
        dnnl_exec_arg_t context_args[] = {{DNNL_ARG_SRC, s}, {DNNL_ARG_WEIGHTS, v}, {DNNL_ARG_DST, c}, {DNNL_ARG_SCRATCHPAD, pad}};
        failed = dnnl_primitive_execute(a->scores, stream, 4, scores_args) ||
                 dnnl_primitive_execute(a->softmax, stream, 3, softmax_args) ||
                 dnnl_primitive_execute(a->context, stream, 4, context_args) || dnnl_stream_wait(stream);
    }
    if (stream) dnnl_stream_destroy(stream);
    dnnl_memory_t all[] = {q, kt, s, v, c, pad};
    for (int m = 0; m < 6; m++)
        if (all[m]) dnnl_memory_destroy(all[m]);
    if (failed) atomic_store(&j->failed, 1);
}

int dml_dnnl_attention_run(dml_dnnl_attention *a, const float *qkv, float *context, int batch) {
    if (!a || batch < 1 || !qkv || !context) return 1;
    job j = {a, qkv, context, 0};
    // Each pair runs single-threaded inside its piece (oneDNN does not nest inside an OpenMP region).
    dml_parallel_for((long)batch * a->heads, 1, run_pairs, &j);
    return atomic_load(&j.failed);
}

void dml_dnnl_attention_destroy(dml_dnnl_attention *a) {
    if (!a) return;
    if (a->scores) dnnl_primitive_destroy(a->scores);
    if (a->softmax) dnnl_primitive_destroy(a->softmax);
    if (a->context) dnnl_primitive_destroy(a->context);
    free(a);
}

#else
// No oneDNN here: no handle is ever made and the caller keeps its own loops.
dml_dnnl_attention *dml_dnnl_attention_create(int tokens, int width, int heads) {
    (void)tokens; (void)width; (void)heads;
    return 0;
}
int dml_dnnl_attention_run(dml_dnnl_attention *attention, const float *qkv, float *context, int batch) {
    (void)attention; (void)qkv; (void)context; (void)batch;
    return 1;
}
void dml_dnnl_attention_destroy(dml_dnnl_attention *attention) { (void)attention; }
#endif
