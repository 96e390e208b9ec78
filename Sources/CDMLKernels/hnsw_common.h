// What DMLKit's HNSW search and insertion share (internal header, C++ only): FAISS's HNSW distance over a row-major
// base and the greedy step of FAISS's greedy_update_nearest.
#pragma once

#include "dml_flat_search.h"
#include "dml_kernels.h"

#include <cstddef>
#include <cstdint>

namespace dml_hnsw {

// FAISS's distance for HNSW: L2 squared, or the negated inner product (its NegativeDistanceComputer), bitwise the
// distance table's one-row kernels also when computed for several rows at once.
struct Distance {
    const float* base;
    size_t d;
    bool l2;
    const DMLDistanceKernels* kernels;

    Distance(const float* base, size_t d, DMLFlatMetric metric)
        : base(base), d(d), l2(metric == DML_FLAT_L2), kernels(dml_distance_kernels()) {}

    const float* row(int32_t v) const { return base + size_t(v) * d; }

    float operator()(const float* q, int32_t v) const {
        return l2 ? kernels->l2sqr(q, row(v), d) : -kernels->inner_product(q, row(v), d);
    }

    void many(const float* q, const int32_t* ids, size_t n, float* out) const {
        if (n == 0) return;
        if (l2) {
            kernels->l2sqr_by_id(out, q, base, d, ids, n);
        } else {
            kernels->inner_products_by_id(out, q, base, d, ids, n);
            for (size_t i = 0; i < n; i++) out[i] = -out[i];
        }
    }
};

// faiss greedy_update_nearest on one level: move to the nearest link until none is nearer. `gather(v, ids)`
// writes v's valid links on that level into `ids` and returns their count; `dis` has room for as many.
template <class Gather>
void greedy_update_nearest(const Distance& distance, const float* q, const Gather& gather, int32_t* ids, float* dis,
                           int32_t& nearest, float& d_nearest) {
    for (;;) {
        const int32_t previous = nearest;
        const size_t n = gather(nearest, ids);
        distance.many(q, ids, n, dis);
        for (size_t j = 0; j < n; j++) {
            if (dis[j] < d_nearest) {
                nearest = ids[j];
                d_nearest = dis[j];
            }
        }
        if (nearest == previous) return;
    }
}

}  // namespace dml_hnsw
