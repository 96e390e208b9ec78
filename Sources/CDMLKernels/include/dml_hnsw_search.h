/*
 * k-NN search over an HNSW graph held in FAISS 1.7.3's layout (faiss::HNSW's arrays, read in place) with the
 * vectors stored row-major (IndexHNSWFlat's storage). The same algorithm and results as FAISS's
 * `IndexHNSW::search` with `upper_beam` 1 and a bounded queue (its defaults): greedy descent through the upper
 * levels, then the ef-bounded best-first search on level 0 with the same queue, the same stopping rule and the
 * same distances, bitwise (the distance table's `l2sqr` / `inner_product`). What differs is how it gets there:
 * each expanded node's unvisited neighbours are gathered first and their distances computed four rows at a time
 * with the next rows prefetched (`l2sqr_by_id`), and the visited tables are kept between calls.
 * Threads: libgomp's team (omp_get_max_threads()), queries claimed one at a time.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "dml_flat_search.h"

#ifdef __cplusplus
extern "C" {
#endif

/// FAISS 1.7.3's faiss::HNSW fields the search reads.
typedef struct DMLHNSWGraph {
    /// hnsw.neighbors: every node's links, level 0 first, -1 ends a node's list early.
    const int32_t *neighbors;
    size_t neighbors_count;
    /// hnsw.offsets: ntotal + 1 entries; node i's links start at offsets[i].
    const size_t *offsets;
    size_t ntotal;
    /// hnsw.cum_nneighbor_per_level: level l's links of a node are [cum[l], cum[l + 1]) after its offset.
    const int32_t *cum_neighbors;
    size_t cum_neighbors_count;
    int32_t entry_point;
    int32_t max_level;
} DMLHNSWGraph;

/// The k nearest stored rows of each of `nq` queries (FAISS's IndexHNSW::search results: L2 squared distances
/// ascending or inner products descending, ties by lower row; -1 and +inf / -inf where fewer than k are found).
/// `ef_search`: the queue bound (max(ef_search, k) entries) and the stopping rule's count; `check_relative_distance`
/// as FAISS's flag of that name. Labels are row positions. Returns 0; -1 for bad arguments or a graph that does not
/// hold together (offsets or levels out of range), -2 when memory runs out.
int dml_hnsw_search(const DMLHNSWGraph *graph, const float *base, size_t d, DMLFlatMetric metric, int ef_search,
                    int check_relative_distance, const float *queries, size_t nq, size_t k, float *distances,
                    int64_t *labels);

#ifdef __cplusplus
}
#endif
