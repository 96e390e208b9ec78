// HNSW k-NN search over FAISS 1.7.3's graph arrays (see include/dml_hnsw_search.h).
//
// FAISS's search spends its time in one virtual distance call per neighbour, each a cache miss on a scattered row,
// and allocates and clears a visited table of ntotal bytes per call and thread. Here an expanded node's unvisited
// neighbours are gathered first (their visited bytes prefetched), their rows' distances computed four at a time
// with the next four rows prefetched, and the visited tables live in a pool kept between calls. The queue (FAISS's
// MinimaxHeap), the result heap and the order of every push are FAISS's, so the results are the same.

#include "dml_hnsw_search.h"
#include "gomp_team.h"
#include "hnsw_common.h"

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

namespace {

// (value, id) max-heaps with FAISS's steps and tie rule (faiss::heap_push / heap_pop / heap_replace_top with
// CMax::cmp2: a larger id is "larger" on equal values), 1-based as there.
inline bool above(float a, float b, int32_t ia, int32_t ib) { return a > b || (a == b && ia > ib); }

void heap_push(size_t size, float* val, int32_t* ids, float v, int32_t id) {
    val--;
    ids--;
    size_t i = size;
    while (i > 1) {
        const size_t parent = i >> 1;
        if (!above(v, val[parent], id, ids[parent])) break;
        val[i] = val[parent];
        ids[i] = ids[parent];
        i = parent;
    }
    val[i] = v;
    ids[i] = id;
}

// Sifts (v, id) down from the root of a heap of `size` entries (the root's old entry is dropped).
void sift_down(size_t size, float* val, int32_t* ids, float v, int32_t id) {
    val--;
    ids--;
    size_t i = 1;
    for (;;) {
        const size_t i1 = i << 1, i2 = i1 + 1;
        if (i1 > size) break;
        const size_t child = (i2 == size + 1 || above(val[i1], val[i2], ids[i1], ids[i2])) ? i1 : i2;
        if (above(v, val[child], id, ids[child])) break;
        val[i] = val[child];
        ids[i] = ids[child];
        i = child;
    }
    val[i] = v;
    ids[i] = id;
}

inline void heap_replace_top(size_t size, float* val, int32_t* ids, float v, int32_t id) {
    sift_down(size, val, ids, v, id);
}

// faiss::heap_pop: the last entry sifts down from the root over the whole heap, itself included.
inline void heap_pop(size_t size, float* val, int32_t* ids) { sift_down(size, val, ids, val[size - 1], ids[size - 1]); }

// Ascending (value, id); NaN values (a NaN query) after every number, so the order stays a strict weak one.
inline bool ascending(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    const bool a_nan = a.first != a.first, b_nan = b.first != b.first;
    if (a_nan || b_nan) return a_nan == b_nan ? a.second < b.second : b_nan;
    return a.first < b.first || (a.first == b.first && a.second < b.second);
}

// Everything one thread needs for one query; sized before the parallel region, reused across calls.
struct Scratch {
    std::vector<uint8_t> visited;  // visited[i] == visit: row i was seen by this query
    uint8_t visit = 0;
    std::vector<int32_t> queue_ids;  // FAISS's MinimaxHeap: a max-heap of `ef` entries, popped ids set to -1
    std::vector<float> queue_dis;
    std::vector<int32_t> result_ids;  // the k best so far, a max-heap
    std::vector<float> result_dis;
    std::vector<int32_t> gathered;  // one node's links to compute
    std::vector<float> gathered_dis;
    std::vector<std::pair<float, int32_t>> order;

    void prepare(size_t ntotal, size_t ef, size_t k, size_t links) {
        if (visited.size() < ntotal) {
            visited.assign(ntotal, 0);
            visit = 0;
        }
        if (queue_ids.size() < ef) {
            queue_ids.resize(ef);
            queue_dis.resize(ef);
        }
        if (result_ids.size() < k) {
            result_ids.resize(k);
            result_dis.resize(k);
            order.resize(k);
        }
        if (gathered.size() < links) {
            gathered.resize(links);
            gathered_dis.resize(links);
        }
    }

    // A fresh visit number per query; the table is cleared once every 255 queries.
    void next_query() {
        if (++visit == 0) {
            std::memset(visited.data(), 0, visited.size());
            visit = 1;
        }
    }
};

std::mutex pool_mutex;
std::vector<std::unique_ptr<Scratch>> pool;

std::vector<std::unique_ptr<Scratch>> take_scratches(size_t count) {
    std::vector<std::unique_ptr<Scratch>> taken;
    std::lock_guard<std::mutex> lock(pool_mutex);
    while (taken.size() < count && !pool.empty()) {
        taken.push_back(std::move(pool.back()));
        pool.pop_back();
    }
    while (taken.size() < count) taken.push_back(std::make_unique<Scratch>());
    return taken;
}

void return_scratches(std::vector<std::unique_ptr<Scratch>>& taken) {
    std::lock_guard<std::mutex> lock(pool_mutex);
    for (auto& s : taken) pool.push_back(std::move(s));
    taken.clear();
}

struct Search {
    const DMLHNSWGraph* g;
    dml_hnsw::Distance distance;
    int ef_search;
    bool check_relative;
    size_t ef, k;

    // Node v's links on `level`, clamped to the neighbour table.
    void links(int32_t v, int level, size_t* begin, size_t* end) const {
        const size_t o = g->offsets[v];
        *begin = std::min(o + size_t(g->cum_neighbors[level]), g->neighbors_count);
        *end = std::min(o + size_t(g->cum_neighbors[level + 1]), g->neighbors_count);
    }

    // Valid links of v on `level` in order (FAISS stops at the first -1); with `unvisited_only`, those not yet
    // visited, which are marked visited.
    size_t gather(Scratch& s, int32_t v, int level, bool unvisited_only) const {
        size_t begin, end;
        links(v, level, &begin, &end);
        const int32_t* nb = g->neighbors;
        if (unvisited_only) {
            for (size_t j = begin; j < end; j++) {
                const int32_t w = nb[j];
                if (w < 0 || size_t(w) >= g->ntotal) break;
                __builtin_prefetch(&s.visited[size_t(w)]);
            }
        }
        size_t n = 0;
        for (size_t j = begin; j < end; j++) {
            const int32_t w = nb[j];
            if (w < 0 || size_t(w) >= g->ntotal) break;
            if (unvisited_only) {
                if (s.visited[size_t(w)] == s.visit) continue;
                s.visited[size_t(w)] = s.visit;
            }
            s.gathered[n++] = w;
        }
        return n;
    }

    void one(Scratch& s, const float* q, float* out_dis, int64_t* out_ids) const {
        s.next_query();
        size_t nres = 0;
        if (g->ntotal > 0 && g->entry_point >= 0) nres = level0(s, q, descend(s, q));
        // Ascending (value, id), as faiss::heap_reorder leaves a CMax heap; then FAISS's neutral entries.
        for (size_t i = 0; i < nres; i++) s.order[i] = {s.result_dis[i], s.result_ids[i]};
        std::sort(s.order.begin(), s.order.begin() + nres, ascending);
        for (size_t i = 0; i < k; i++) {
            const float value = i < nres ? s.order[i].first : FLT_MAX;
            out_dis[i] = distance.l2 ? value : -value;
            out_ids[i] = i < nres ? s.order[i].second : -1;
        }
    }

    // Greedy descent from the entry point through levels max_level..1 (faiss greedy_update_nearest).
    std::pair<int32_t, float> descend(Scratch& s, const float* q) const {
        int32_t nearest = g->entry_point;
        float best = distance(q, nearest);
        for (int level = g->max_level; level >= 1; level--) {
            auto links_of = [&](int32_t v, int32_t*) { return gather(s, v, level, false); };  // into s.gathered
            dml_hnsw::greedy_update_nearest(distance, q, links_of, s.gathered.data(), s.gathered_dis.data(),
                                            nearest, best);
        }
        return {nearest, best};
    }

    // faiss search_from_candidates on level 0 with a MinimaxHeap of `ef` entries; returns the results kept.
    size_t level0(Scratch& s, const float* q, std::pair<int32_t, float> start) const {
        int32_t* qi = s.queue_ids.data();
        float* qd = s.queue_dis.data();
        size_t qk = 0, qvalid = 0;
        auto queue_push = [&](int32_t id, float v) {
            if (qk == ef) {
                if (v >= qd[0]) return;
                heap_pop(qk--, qd, qi);
                --qvalid;
            }
            heap_push(++qk, qd, qi, v, id);
            ++qvalid;
        };
        // O(ef) like FAISS's: the last valid entry of the array with the lowest value, marked popped (-1).
        auto queue_pop_min = [&](float* value) {
            ptrdiff_t i = ptrdiff_t(qk) - 1;
            while (i >= 0 && qi[i] == -1) i--;
            ptrdiff_t best = i;
            for (i--; i >= 0; i--)
                if (qi[i] != -1 && qd[i] < qd[best]) best = i;
            *value = qd[best];
            const int32_t id = qi[best];
            qi[best] = -1;
            --qvalid;
            return id;
        };
        auto queue_count_below = [&](float threshold) {
            int below = 0;
            for (size_t i = 0; i < qk; i++) below += qd[i] < threshold;
            return below;
        };

        int32_t* ri = s.result_ids.data();
        float* rd = s.result_dis.data();
        size_t nres = 0;
        auto keep = [&](int32_t id, float v) {
            if (nres < k)
                heap_push(++nres, rd, ri, v, id);
            else if (v < rd[0])
                heap_replace_top(nres, rd, ri, v, id);
        };

        queue_push(start.first, start.second);
        keep(start.first, start.second);
        s.visited[size_t(start.first)] = s.visit;

        int steps = 0;
        while (qvalid > 0) {
            float d0;
            const int32_t v0 = queue_pop_min(&d0);
            // FAISS's stopping rule: ef_search entries already queued are closer than the node to expand.
            if (check_relative && queue_count_below(d0) >= ef_search) break;
            const size_t n = gather(s, v0, 0, true);
            distance.many(q, s.gathered.data(), n, s.gathered_dis.data());
            for (size_t j = 0; j < n; j++) {
                keep(s.gathered[j], s.gathered_dis[j]);
                queue_push(s.gathered[j], s.gathered_dis[j]);
            }
            steps++;
            if (!check_relative && steps > ef_search) break;
        }
        return nres;
    }
};

// The graph holds together where the search reads it: offsets, the entry point and the level table.
bool graph_is_usable(const DMLHNSWGraph* g) {
    if (!g->offsets || !g->cum_neighbors || (g->ntotal > 0 && !g->neighbors)) return false;
    if (g->ntotal == 0 || g->entry_point < 0) return true;
    if (size_t(g->entry_point) >= g->ntotal || g->max_level < 0) return false;
    if (size_t(g->max_level) + 2 > g->cum_neighbors_count) return false;
    for (int l = 0; l <= g->max_level; l++)
        if (g->cum_neighbors[l] < 0 || g->cum_neighbors[l + 1] < g->cum_neighbors[l]) return false;
    return g->offsets[g->ntotal] <= g->neighbors_count;
}

}  // namespace

extern "C" int dml_hnsw_search(const DMLHNSWGraph* graph, const float* base, size_t d, DMLFlatMetric metric,
                               int ef_search, int check_relative_distance, const float* queries, size_t nq, size_t k,
                               float* distances, int64_t* labels) {
    if (!graph || d == 0 || k == 0 || k > size_t(INT32_MAX) || (metric != DML_FLAT_L2 && metric != DML_FLAT_INNER_PRODUCT))
        return -1;
    if (nq == 0) return 0;
    if (!queries || !distances || !labels || (graph->ntotal > 0 && !base) || !graph_is_usable(graph)) return -1;
    if (nq > SIZE_MAX / k) return -1;

    Search search{graph, dml_hnsw::Distance(base, d, metric), ef_search, check_relative_distance != 0,
                  std::max(size_t(std::max(ef_search, 0)), k), k};
    size_t links = 0;
    if (graph->ntotal > 0 && graph->entry_point >= 0)
        for (int l = 0; l <= graph->max_level; l++)
            links = std::max(links, size_t(graph->cum_neighbors[l + 1] - graph->cum_neighbors[l]));

    const size_t threads = std::min(dml_team::max_threads(), nq);
    std::vector<std::unique_ptr<Scratch>> scratches;
    try {
        scratches = take_scratches(threads);
        for (auto& s : scratches) s->prepare(graph->ntotal, search.ef, k, links);
    } catch (const std::bad_alloc&) {
        return_scratches(scratches);
        return -2;
    }
    std::atomic<size_t> next{0};
    dml_team::parallel_items(threads, [&](size_t t) {
        Scratch& s = *scratches[t];
        for (;;) {
            const size_t i = next.fetch_add(1, std::memory_order_relaxed);
            if (i >= nq) break;
            search.one(s, queries + i * d, distances + i * k, labels + i * k);
        }
    });
    return_scratches(scratches);
    return 0;
}
