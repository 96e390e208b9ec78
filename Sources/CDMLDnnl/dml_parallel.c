#include "dml_parallel.h"

#if defined(__x86_64__) && defined(__linux__) && __has_include(<dnnl.h>)
#include "dnnl_internal.h"

// libgomp's entry points (what `#pragma omp parallel` compiles to with GCC), declared here because the
// toolchain's clang emits LLVM's OpenMP runtime calls, not libgomp's, and may lack omp.h.
extern void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
extern int omp_get_thread_num(void);
extern int omp_get_num_threads(void);
extern int omp_get_max_threads(void);
extern int omp_in_parallel(void);

// libgomp is not built with ThreadSanitizer, so TSan cannot see that a team's threads start after the caller
// filled the job and that the caller resumes after they finished: state both orderings under TSan.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
void __tsan_acquire(void *address);
void __tsan_release(void *address);
#define HAPPENS_BEFORE(address) __tsan_release(address)
#define HAPPENS_AFTER(address) __tsan_acquire(address)
#endif
#endif
#ifndef HAPPENS_BEFORE
#define HAPPENS_BEFORE(address) ((void)(address))
#define HAPPENS_AFTER(address) ((void)(address))
#endif

typedef struct {
    long count;
    void (*body)(void *, long, long);
    void *context;
} job;

static void run_piece(void *data) {
    HAPPENS_AFTER(data);
    const job *j = data;
    long t = omp_get_thread_num(), n = omp_get_num_threads();
    long begin = j->count * t / n, end = j->count * (t + 1) / n;
    if (begin < end) j->body(j->context, begin, end);
    HAPPENS_BEFORE(data);
}

void dml_parallel_for(long count, long grain, void (*body)(void *, long, long), void *context) {
    if (count <= 0) return;
    dml_dnnl_apply_threads();
    long threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    long pieces = grain > 0 ? count / grain : count;
    if (threads > pieces) threads = pieces;
    if (threads <= 1) {
        body(context, 0, count);
        return;
    }
    job j = {count, body, context};
    HAPPENS_BEFORE(&j);
    GOMP_parallel(run_piece, &j, (unsigned)threads, 0);
    HAPPENS_AFTER(&j);
}

int dml_parallel_threads(void) {
    dml_dnnl_apply_threads();
    return omp_in_parallel() ? 1 : omp_get_max_threads();
}

#else
int dml_parallel_threads(void) { return 1; }

void dml_parallel_for(long count, long grain, void (*body)(void *, long, long), void *context) {
    (void)grain;
    if (count > 0) body(context, 0, count);
}
#endif
