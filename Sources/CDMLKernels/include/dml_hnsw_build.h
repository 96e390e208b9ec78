/*
 * HNSW insertion into a graph held in FAISS 1.7.3's layout (faiss::HNSW's arrays, written in place), the vectors
 * stored row-major (IndexHNSWFlat's storage). The same algorithm as FAISS's `IndexHNSW::add` after its
 * allocations: the new vertices bucketed by level and shuffled as FAISS does (its second generator, seed 789),
 * the greedy descent, the efConstruction-bounded neighbour search per level, the neighbour-list heuristic, the
 * links both ways with the shrink on overflow and the entry point update, with the same heaps and tie rules, so
 * that on one thread the graph is FAISS's, entry for entry. Distances come from the kernel table (`l2sqr` /
 * `inner_product`, bitwise), several rows against one vector at a time through `l2sqr_by_id` /
 * `inner_products_by_id` wherever FAISS computes several against one.
 * Threads: libgomp's team (omp_get_max_threads()); a level's vertices are split in FAISS's static chunks, with
 * one lock per vertex (FAISS's protocol). The graph then depends on timing, as FAISS's does.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "dml_flat_search.h"

#ifdef __cplusplus
extern "C" {
#endif

/// FAISS 1.7.3's faiss::HNSW fields the insertion reads and writes. Every array is already sized for all
/// `ntotal` vertices (what FAISS's `prepare_level_tab` does): the new vertices' levels drawn, their offsets
/// appended and their links set to -1.
typedef struct DMLHNSWBuildGraph {
    /// hnsw.neighbors (written): every node's links, level 0 first, -1 ends a node's list early.
    int32_t *neighbors;
    size_t neighbors_count;
    /// hnsw.offsets: ntotal + 1 entries; node i's links are [offsets[i], offsets[i + 1]).
    const size_t *offsets;
    size_t ntotal;
    /// hnsw.levels: ntotal entries, a node's level + 1 (only the new vertices' are read).
    const int32_t *levels;
    /// hnsw.cum_nneighbor_per_level: level l's links of a node are [cum[l], cum[l + 1]) after its offset.
    const int32_t *cum_neighbors;
    size_t cum_neighbors_count;
    /// hnsw.entry_point and hnsw.max_level (read and updated): -1 and any level for an empty graph.
    int32_t entry_point;
    int32_t max_level;
    /// hnsw.efConstruction.
    int ef_construction;
} DMLHNSWBuildGraph;

/// Links vertices n0 ..< n0 + n (rows of `base`, which holds all `ntotal` rows) into the graph that holds
/// vertices 0 ..< n0. FAISS's distance: L2 squared, or the negated inner product. Returns 0; -1 for bad arguments
/// or a graph that does not hold together (levels, offsets or the entry point out of range), then nothing is
/// written; -2 when memory runs out (also before anything is written).
int dml_hnsw_add(DMLHNSWBuildGraph *graph, const float *base, size_t d, DMLFlatMetric metric, size_t n0, size_t n);

#ifdef __cplusplus
}
#endif
