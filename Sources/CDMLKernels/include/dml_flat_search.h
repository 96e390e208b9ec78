/*
 * Exact k-nearest-neighbour search over a row-major float base (FAISS's IndexFlat semantics, L2 and inner product).
 *
 * Batches go through a register-blocked GEMM tile (base rows x a panel of packed queries) whose scores are compared
 * in SIMD against each query's current k-th best while the tile is still in registers; only candidates that beat it
 * enter that query's heap. No nq x n distance matrix is formed. One query at a time uses the distance table's
 * `l2sqr_ny` / `inner_products_ny` rows instead. Threads: libgomp's team (omp_get_max_threads()), each taking
 * chunks of base rows with its own heaps, merged at the end (the queries are split where those heaps would be large).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Metric values match faiss::MetricType.
typedef enum { DML_FLAT_INNER_PRODUCT = 0, DML_FLAT_L2 = 1 } DMLFlatMetric;

/// k nearest base rows of each of `nq` queries (row-major, nq x d) among `n` base rows (row-major, n x d).
/// `distances` and `labels` receive nq x k entries per query in order: L2 squared distances ascending, inner
/// products descending; ties (equal float scores) keep the lower row first. Where fewer than k rows qualify, the
/// rest is label -1 with distance +inf (L2) or -inf (inner product). Labels are row positions.
/// A row or query holding NaN gives NaN scores, which never qualify: a NaN query returns only -1 / +-inf.
/// L2 batches are computed as |x|^2 + |y|^2 - 2<x,y> (clamped at 0), like FAISS's BLAS path.
/// `base_norms` (L2 only, may be NULL): |y_i|^2 of each base row, computed here when NULL.
/// `allowed` (may be NULL): n entries, nonzero where the row may be returned (a filter; NULL: every row).
/// Returns 0; -1 for bad arguments (NULL buffers with non-zero sizes, d == 0, k == 0, nq * k overflowing);
/// -2 when memory runs out.
int dml_flat_search(const float *base, size_t n, size_t d, const float *base_norms, const uint8_t *allowed,
                    const float *queries, size_t nq, size_t k, DMLFlatMetric metric, float *distances,
                    int64_t *labels);

/// The same on one kernel path ("avx512", "avx2", "scalar"); -1 when the CPU lacks it (tests and benches).
/// `rows_below`: batches of fewer queries than this use the one-query rows path (0: the built-in choice).
int dml_flat_search_on(const char *path, size_t rows_below, const float *base, size_t n, size_t d,
                       const float *base_norms, const uint8_t *allowed, const float *queries, size_t nq, size_t k,
                       DMLFlatMetric metric, float *distances, int64_t *labels);

#ifdef __cplusplus
}
#endif
