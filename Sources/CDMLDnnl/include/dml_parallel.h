// Data-parallel loops for the runtime's own ops on the same OpenMP threads oneDNN uses, so the two never
// oversubscribe the cores (no second pool spinning beside libgomp's).
#ifndef DML_PARALLEL_H
#define DML_PARALLEL_H

#ifdef __cplusplus
extern "C" {
#endif

/// Calls `body(context, begin, end)` on disjoint contiguous pieces covering [0, count), in parallel on the
/// OpenMP threads (the count `dml_dnnl_set_threads` set, else OpenMP's default), each piece at least `grain`
/// long; on the calling thread alone when there is one thread, the range is short, or this build has no OpenMP.
/// Returns when every piece is done.
void dml_parallel_for(long count, long grain, void (*body)(void *context, long begin, long end), void *context);

/// How many threads a `dml_parallel_for` called here now would run on at most (1 inside a parallel loop).
int dml_parallel_threads(void);

#ifdef __cplusplus
}
#endif

#endif
