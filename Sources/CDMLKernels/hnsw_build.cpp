// HNSW insertion into FAISS 1.7.3's graph arrays (see include/dml_hnsw_build.h).
//
// FAISS's insertion computes one distance per virtual call on scattered rows. Here the links a step reads are
// gathered first and their distances computed together (four rows at a time, the next four prefetched): a node's
// unvisited links in the neighbour search, a node's links in the greedy descent, a full list and the new link
// when add_link shrinks it, and a candidate against the kept ones (four at a time, stopping where FAISS stops) in
// the heuristic. Every heap is a std::priority_queue-equivalent (std::push_heap / std::pop_heap on the same
// comparisons) fed in FAISS's order, so ties come out as in FAISS and one thread builds FAISS's graph.
//
// Threads follow FAISS's protocol: a vertex's own lock is held while it searches and writes its own links and
// released while it links itself into its neighbours' lists, each under that neighbour's lock. Lists of other
// nodes are read without their lock, as FAISS reads them; here those reads and the writes are relaxed atomics,
// so a reader sees every entry either before or after a change, and the ThreadSanitizer has nothing to report.

#include "dml_hnsw_build.h"
#include "gomp_team.h"
#include "hnsw_common.h"

#include <sched.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <random>
#include <vector>

namespace {

struct Node {
    float d;
    int32_t id;
};

// FAISS's NodeDistCloser ordering: a max-heap on distance, the farthest on top.
struct Closer {
    bool operator()(const Node& a, const Node& b) const { return a.d < b.d; }
};
// FAISS's NodeDistFarther ordering: the nearest on top.
struct Farther {
    bool operator()(const Node& a, const Node& b) const { return a.d > b.d; }
};

// A std::priority_queue over storage sized before the parallel region: the same push_heap / pop_heap steps, so
// the same order among equal distances; `capacity` is checked by the callers' bounds, never grown.
template <class Compare>
struct Heap {
    Node* data = nullptr;
    size_t count = 0;

    bool empty() const { return count == 0; }
    size_t size() const { return count; }
    const Node& top() const { return data[0]; }
    void push(float d, int32_t id) {
        data[count++] = Node{d, id};
        std::push_heap(data, data + count, Compare());
    }
    void pop() {
        std::pop_heap(data, data + count, Compare());
        count--;
    }
};

inline int32_t load(const int32_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
inline void store(int32_t* p, int32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

// A byte per vertex; test-and-test-and-set, yielding when the holder seems descheduled (shared cores).
struct SpinLock {
    static void lock(uint8_t* l) {
        for (int spins = 0; __atomic_exchange_n(l, uint8_t(1), __ATOMIC_ACQUIRE);) {
            while (__atomic_load_n(l, __ATOMIC_RELAXED)) {
                if (++spins > 64) {
                    sched_yield();
                    spins = 0;
                } else {
#if defined(__x86_64__) || defined(__i386__)
                    __builtin_ia32_pause();
#endif
                }
            }
        }
    }
    static void unlock(uint8_t* l) { __atomic_store_n(l, uint8_t(0), __ATOMIC_RELEASE); }
};

// One thread's working memory, all sized before the parallel region.
struct Scratch {
    std::vector<uint8_t> visited;  // visited[i] == visit: seen by the current neighbour search
    uint8_t visit = 1;
    std::vector<Node> candidates;  // <= ntotal: one per vertex visited
    std::vector<Node> results;     // <= efConstruction + 1
    std::vector<Node> nearest_first;
    std::vector<Node> kept;
    std::vector<Node> link_set;    // add_link's fight: a full list and the new link
    std::vector<int32_t> targets;  // the links a vertex made on one level, in FAISS's order
    std::vector<int32_t> ids;      // gathered links
    std::vector<float> dis;

    void prepare(size_t ntotal, size_t ef, size_t links) {
        visited.assign(ntotal, 0);
        candidates.resize(ntotal + 1);
        results.resize(ef + 2);
        const size_t wide = std::max(ef + 2, links + 2);
        nearest_first.resize(wide);
        kept.resize(wide);
        link_set.resize(links + 2);
        targets.resize(wide);
        ids.resize(links + 2);
        dis.resize(links + 2);
    }
    // FAISS's VisitedTable::advance; only equality matters, so any wrap point works.
    void advance() {
        if (++visit == 0) {
            std::memset(visited.data(), 0, visited.size());
            visit = 1;
        }
    }
};

struct Builder {
    DMLHNSWBuildGraph* g;
    dml_hnsw::Distance distance;
    uint8_t* locks = nullptr;  // null when one thread inserts
    uint8_t top_lock = 0;      // entry point and max level

    const float* row(int32_t v) const { return distance.row(v); }
    bool valid(int32_t v) const { return v >= 0 && size_t(v) < g->ntotal; }

    void lock(int32_t v) {
        if (locks) SpinLock::lock(&locks[v]);
    }
    void unlock(int32_t v) {
        if (locks) SpinLock::unlock(&locks[v]);
    }

    // Node v's links on `level`, clamped to v's own part of the table (a malformed old graph stays in bounds).
    void links(int32_t v, int level, size_t* begin, size_t* end) const {
        const size_t o = g->offsets[v];
        const size_t o1 = std::min(g->offsets[size_t(v) + 1], g->neighbors_count);
        if (o >= o1) {
            *begin = *end = 0;
            return;
        }
        *begin = std::min(o + size_t(g->cum_neighbors[level]), o1);
        *end = std::min(o + size_t(g->cum_neighbors[level + 1]), o1);
    }

    void distances(const float* q, const int32_t* ids, size_t n, float* out) const { distance.many(q, ids, n, out); }

    // The valid links of v on `level` in order (FAISS stops at the first -1).
    size_t gather(Scratch& s, int32_t v, int level) const {
        size_t begin, end, n = 0;
        links(v, level, &begin, &end);
        for (size_t j = begin; j < end; j++) {
            const int32_t w = load(&g->neighbors[j]);
            if (!valid(w)) break;
            s.ids[n++] = w;
        }
        return n;
    }

    // faiss greedy_update_nearest: move to the nearest link until none is nearer.
    void greedy(Scratch& s, const float* q, int level, int32_t& nearest, float& d_nearest) const {
        auto links_of = [&](int32_t v, int32_t*) { return gather(s, v, level); };  // into s.ids
        dml_hnsw::greedy_update_nearest(distance, q, links_of, s.ids.data(), s.dis.data(), nearest, d_nearest);
    }

    // faiss search_neighbors_to_add: best-first from the entry, `results` keeps the efConstruction nearest.
    void search_to_add(Scratch& s, const float* q, Heap<Closer>& results, int32_t entry, float d_entry,
                       int level) const {
        Heap<Farther> candidates{s.candidates.data()};
        candidates.push(d_entry, entry);
        results.push(d_entry, entry);
        s.visited[size_t(entry)] = s.visit;
        // FAISS compares the size with the int setting as size_t: a negative efConstruction bounds nothing.
        const size_t ef = g->ef_construction < 0 ? SIZE_MAX : size_t(g->ef_construction);
        while (!candidates.empty()) {
            const Node current = candidates.top();
            if (current.d > results.top().d) break;
            candidates.pop();
            size_t begin, end, n = 0;
            links(current.id, level, &begin, &end);
            for (size_t j = begin; j < end; j++) {
                const int32_t w = load(&g->neighbors[j]);
                if (!valid(w)) break;
                if (s.visited[size_t(w)] == s.visit) continue;
                s.visited[size_t(w)] = s.visit;
                s.ids[n++] = w;
            }
            distances(q, s.ids.data(), n, s.dis.data());
            for (size_t j = 0; j < n; j++) {
                const float dj = s.dis[j];
                if (results.size() < ef || results.top().d > dj) {
                    results.push(dj, s.ids[j]);
                    candidates.push(dj, s.ids[j]);
                    if (results.size() > ef) results.pop();
                }
            }
        }
        s.advance();
    }

    // faiss HNSW::shrink_neighbor_list: from the nearest, keep a vertex unless a kept one is nearer to it than
    // the query is; stops at `max_size` kept. Distances of a candidate to the kept ones four at a time.
    size_t heuristic(Scratch& s, Heap<Farther>& input, size_t max_size) const {
        size_t kept = 0;
        int32_t ids[4];
        float dis[4];
        while (!input.empty()) {
            const Node v1 = input.top();
            input.pop();
            bool good = true;
            for (size_t j0 = 0; j0 < kept && good; j0 += 4) {
                const size_t m = std::min<size_t>(4, kept - j0);
                for (size_t j = 0; j < m; j++) ids[j] = s.kept[j0 + j].id;
                distances(row(v1.id), ids, m, dis);
                for (size_t j = 0; j < m; j++) {
                    if (dis[j] < v1.d) {
                        good = false;
                        break;
                    }
                }
            }
            if (good) {
                s.kept[kept++] = v1;
                if (kept >= max_size) break;
            }
        }
        return kept;
    }

    // faiss's file-local shrink_neighbor_list: a Closer heap of at least max_size entries becomes the heuristic's
    // choice, rebuilt in the order FAISS rebuilds it.
    void shrink(Scratch& s, Heap<Closer>& set, size_t max_size) const {
        if (set.size() < max_size) return;
        Heap<Farther> nearest_first{s.nearest_first.data()};
        while (!set.empty()) {
            nearest_first.push(set.top().d, set.top().id);
            set.pop();
        }
        const size_t kept = heuristic(s, nearest_first, max_size);
        for (size_t i = 0; i < kept; i++) set.push(s.kept[i].d, s.kept[i].id);
    }

    // faiss add_link: dest goes in the first free slot of src's list, or src's list plus dest are shrunk to fit.
    // The caller holds src's lock (or is alone).
    void add_link(Scratch& s, int32_t src, int32_t dest, int level) const {
        size_t begin, end;
        links(src, level, &begin, &end);
        if (begin == end) return;  // no slots at this level (malformed level table)
        int32_t* nb = g->neighbors;
        if (load(&nb[end - 1]) == -1) {
            size_t i = end;
            while (i > begin && load(&nb[i - 1]) == -1) i--;
            store(&nb[i], dest);
            return;
        }
        size_t n = 0;
        s.ids[n++] = dest;
        for (size_t i = begin; i < end; i++) {
            const int32_t w = load(&nb[i]);
            if (valid(w)) s.ids[n++] = w;  // FAISS's lists hold no other values here
        }
        distances(row(src), s.ids.data(), n, s.dis.data());
        Heap<Closer> set{s.link_set.data()};
        for (size_t i = 0; i < n; i++) set.push(s.dis[i], s.ids[i]);
        shrink(s, set, end - begin);
        size_t i = begin;
        while (!set.empty()) {
            store(&nb[i++], set.top().id);
            set.pop();
        }
        while (i < end) store(&nb[i++], -1);
    }

    // faiss HNSW::add_links_starting_from: called and returns with pt's lock held.
    void link_level(Scratch& s, const float* q, int32_t pt, int32_t nearest, float d_nearest, int level) {
        Heap<Closer> targets{s.results.data()};
        search_to_add(s, q, targets, nearest, d_nearest, level);
        const int32_t m = g->cum_neighbors[level + 1] - g->cum_neighbors[level];
        shrink(s, targets, size_t(std::max(m, 0)));
        size_t count = 0;
        while (!targets.empty()) {
            const int32_t other = targets.top().id;
            add_link(s, pt, other, level);
            s.targets[count++] = other;
            targets.pop();
        }
        unlock(pt);
        for (size_t i = 0; i < count; i++) {
            const int32_t other = s.targets[i];
            lock(other);
            add_link(s, other, pt, level);
            unlock(other);
        }
        lock(pt);
    }

    // faiss HNSW::add_with_locks.
    void insert(Scratch& s, int32_t pt, int pt_level) {
        const float* q = row(pt);
        int32_t nearest;
        int level;
        if (locks) SpinLock::lock(&top_lock);
        nearest = g->entry_point;
        if (nearest == -1) {
            g->max_level = pt_level;
            g->entry_point = pt;
        }
        level = g->max_level;
        if (locks) SpinLock::unlock(&top_lock);
        if (nearest < 0) return;

        lock(pt);
        float d_nearest = distance(q, nearest);
        for (; level > pt_level; level--) greedy(s, q, level, nearest, d_nearest);
        for (; level >= 0; level--) link_level(s, q, pt, nearest, d_nearest, level);
        unlock(pt);

        if (locks) SpinLock::lock(&top_lock);
        if (pt_level > g->max_level) {
            g->max_level = pt_level;
            g->entry_point = pt;
        }
        if (locks) SpinLock::unlock(&top_lock);
    }
};

// The graph holds together where the insertion reads and writes it.
bool graph_is_usable(const DMLHNSWBuildGraph* g, size_t n0, size_t n) {
    if (!g->neighbors && g->neighbors_count > 0) return false;
    if (!g->offsets || !g->levels || !g->cum_neighbors || g->cum_neighbors_count < 2) return false;
    if (g->ntotal > size_t(INT32_MAX) || n0 > g->ntotal || g->ntotal - n0 != n) return false;
    if (g->cum_neighbors[0] != 0) return false;
    for (size_t l = 0; l + 1 < g->cum_neighbors_count; l++)
        if (g->cum_neighbors[l + 1] < g->cum_neighbors[l]) return false;
    const int32_t top_level = int32_t(g->cum_neighbors_count) - 2;
    if (g->entry_point != -1) {
        if (g->entry_point < 0 || size_t(g->entry_point) >= n0) return false;
        if (g->max_level < 0 || g->max_level > top_level) return false;
    }
    if (g->offsets[n0] > g->neighbors_count) return false;
    for (size_t i = n0; i < g->ntotal; i++) {
        const int32_t level = g->levels[i];
        if (level < 1 || level > top_level + 1) return false;
        if (g->offsets[i + 1] < g->offsets[i] || g->offsets[i + 1] - g->offsets[i] < size_t(g->cum_neighbors[level]))
            return false;
    }
    return g->offsets[g->ntotal] <= g->neighbors_count;
}

// libgomp's schedule(static) without a chunk: thread t of `threads` gets one contiguous block.
void static_block(size_t items, size_t threads, size_t t, size_t* begin, size_t* end) {
    size_t q = items / threads, r = items % threads;
    if (t < r) {
        q++;
        r = 0;
    }
    *begin = q * t + r;
    *end = *begin + q;
}

}  // namespace

extern "C" int dml_hnsw_add(DMLHNSWBuildGraph* graph, const float* base, size_t d, DMLFlatMetric metric, size_t n0,
                            size_t n) {
    if (!graph || d == 0 || (metric != DML_FLAT_L2 && metric != DML_FLAT_INNER_PRODUCT)) return -1;
    if (!graph_is_usable(graph, n0, n)) return -1;
    if (n == 0) return 0;
    if (!base) return -1;

    const DMLHNSWBuildGraph& g = *graph;
    const size_t ntotal = g.ntotal;
    size_t links = 0;
    for (size_t l = 0; l + 1 < g.cum_neighbors_count; l++)
        links = std::max(links, size_t(g.cum_neighbors[l + 1] - g.cum_neighbors[l]));
    // The result heap holds at most efConstruction + 1 entries, and never more than the vertices visited.
    const size_t ef = std::min(g.ef_construction < 0 ? SIZE_MAX : size_t(g.ef_construction), ntotal);

    Builder builder{graph, dml_hnsw::Distance(base, d, metric)};
    std::vector<int32_t> order(n);
    std::vector<size_t> hist;
    std::vector<std::unique_ptr<Scratch>> scratches;
    std::unique_ptr<uint8_t[]> locks;
    size_t threads = 1;
    try {
        // Buckets by level, ids ascending in each (FAISS's counting sort).
        for (size_t i = 0; i < n; i++) {
            const size_t level = size_t(g.levels[n0 + i] - 1);
            if (level >= hist.size()) hist.resize(level + 1, 0);
            hist[level]++;
        }
        std::vector<size_t> start(hist.size(), 0);
        for (size_t l = 1; l < hist.size(); l++) start[l] = start[l - 1] + hist[l - 1];
        for (size_t i = 0; i < n; i++) order[start[size_t(g.levels[n0 + i] - 1)]++] = int32_t(n0 + i);

        // Threads only where FAISS runs a level in parallel (more than 100 vertices).
        bool parallel = false;
        for (size_t count : hist) parallel = parallel || count > 100;
        if (parallel) threads = dml_team::max_threads();
        scratches.resize(threads);
        for (auto& s : scratches) {
            s = std::make_unique<Scratch>();
            s->prepare(ntotal, ef, links);
        }
        if (threads > 1) {
            locks.reset(new uint8_t[ntotal]());
            builder.locks = locks.get();
        }
    } catch (const std::bad_alloc&) {
        return -2;
    }

    // FAISS's second generator: std::mt19937 seeded 789, rand_int(m) = draw % m, one shuffle per level bucket
    // from the highest level down.
    std::mt19937 rng(789u);
    size_t i1 = n;
    for (size_t level = hist.size(); level-- > 0;) {
        const size_t i0 = i1 - hist[level];
        for (size_t j = i0; j < i1; j++) std::swap(order[j], order[j + size_t(rng() % uint32_t(i1 - j))]);
        const int pt_level = int(level);
        if (threads > 1 && i1 - i0 > 100) {
            dml_team::parallel_items(threads, [&](size_t t) {
                size_t b, e;
                static_block(i1 - i0, threads, t, &b, &e);
                for (size_t i = i0 + b; i < i0 + e; i++) builder.insert(*scratches[t], order[i], pt_level);
            });
        } else {
            for (size_t i = i0; i < i1; i++) builder.insert(*scratches[0], order[i], pt_level);
        }
        i1 = i0;
    }
    return 0;
}
