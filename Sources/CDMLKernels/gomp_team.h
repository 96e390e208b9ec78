// libgomp's team for CDMLKernels' searches (flat and HNSW): the process's OpenMP runtime is FAISS's libgomp, so
// these kernels use its pool and thread setting (omp_set_num_threads, OMP_NUM_THREADS) instead of a second one.
// Internal header: C++ only, not part of the module's public interface.
#pragma once

#include <cstddef>

#if defined(__linux__)
// libgomp's entry points, declared here: the toolchain's clang emits LLVM's OpenMP runtime calls for `#pragma omp`,
// while FAISS (and so the process) uses libgomp. Elsewhere the work runs on the calling thread.
extern "C" {
void GOMP_parallel(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags);
int omp_get_thread_num(void);
int omp_get_num_threads(void);
int omp_get_max_threads(void);
int omp_in_parallel(void);
}
#define DML_GOMP 1
#endif

// libgomp is not built with ThreadSanitizer: under TSan, state the start and join orderings it guarantees.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
extern "C" void __tsan_acquire(void* address);
extern "C" void __tsan_release(void* address);
#define HAPPENS_BEFORE(address) __tsan_release(address)
#define HAPPENS_AFTER(address) __tsan_acquire(address)
#endif
#endif
#ifndef HAPPENS_BEFORE
#define HAPPENS_BEFORE(address) ((void)(address))
#define HAPPENS_AFTER(address) ((void)(address))
#endif

namespace dml_team {

// Threads a search may use: the calling thread's OpenMP setting, 1 inside a parallel region (no nesting).
inline size_t max_threads() {
#if DML_GOMP
    if (omp_in_parallel()) return 1;
    const int t = omp_get_max_threads();
    return t > 1 ? size_t(t) : 1;
#else
    return 1;
#endif
}

// Calls f(i) for i in 0..<items, one item per team thread (fewer threads than items: each takes several).
template <class F>
void parallel_items(size_t items, const F& f) {
#if DML_GOMP
    if (items > 1) {
        struct Context {
            const F* f;
            size_t items;
        } context{&f, items};
        HAPPENS_BEFORE(&context);
        GOMP_parallel(
            [](void* p) {
                HAPPENS_AFTER(p);
                const auto* c = static_cast<const Context*>(p);
                const size_t step = size_t(omp_get_num_threads());
                for (size_t i = size_t(omp_get_thread_num()); i < c->items; i += step) (*c->f)(i);
                HAPPENS_BEFORE(p);
            },
            &context, unsigned(items), 0);
        HAPPENS_AFTER(&context);
        return;
    }
#endif
    for (size_t i = 0; i < items; i++) f(i);
}

}  // namespace dml_team
