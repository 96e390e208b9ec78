// Exact k-NN over a row-major float base: a GEMM tile feeding per-query heaps (see include/dml_flat_search.h).
//
// Layout: queries are packed into panels of QW columns (panel[p * QW + c] = query c's component p), base rows are
// read in place. A tile is RB base rows x one panel, RB * QW/L vector accumulators held in registers over all d;
// its scores (L2: |y|^2 - 2<x,y>, the query's |x|^2 added at the end; IP: -<x,y>, so lower is better for both)
// are compared with the panel's per-query thresholds (each query's current k-th best) in the same registers, and
// the tile is dropped unless some score beats its threshold. The base is walked in blocks sized for L2 cache with
// every panel of the work item over each block, so each base row comes from memory once per call.
//
// The tile is one template over GCC vector types, inlined into a wrapper per path whose target attribute decides
// the instructions (AVX-512: 12 rows x 32 queries; AVX2+FMA: 6 x 16; the baseline "scalar" path: 4 x 8, plain
// C++ the compiler maps to SSE2/NEON or scalar code). Heaps order (score, id) pairs, so equal scores keep the lower
// row: ties are deterministic. No allocation happens inside a parallel region (nothing can throw there).

#include "dml_flat_search.h"
#include "dml_kernels.h"
#include "gomp_team.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#if defined(__clang__)
#define DML_UNROLL _Pragma("clang loop unroll(full)")
#else
#define DML_UNROLL
#endif

namespace {

typedef float v4f __attribute__((vector_size(16)));
typedef float v8f __attribute__((vector_size(32)));
typedef float v16f __attribute__((vector_size(64)));

// One tile: out[r * QW + c] = score of base row r (y + r * stride) against query column c of `panel`; returns
// whether any score is below its column's threshold. `norms` (L2) holds the RB rows' |y|^2; NULL means IP.
// NaN scores compare false, so they never qualify.
template <class V, int RB, int NV>
inline __attribute__((always_inline)) bool tile(const float* y, size_t stride, const float* norms, const float* panel,
                                                size_t d, const float* thr, float* out) {
    constexpr int L = int(sizeof(V) / sizeof(float)), QW = L * NV;
    V acc[RB][NV];
    DML_UNROLL for (int r = 0; r < RB; r++) DML_UNROLL for (int v = 0; v < NV; v++) acc[r][v] = V{};
    for (size_t p = 0; p < d; p++) {
        V q[NV];
        DML_UNROLL for (int v = 0; v < NV; v++) std::memcpy(&q[v], panel + p * QW + v * L, sizeof(V));
        DML_UNROLL for (int r = 0; r < RB; r++) {
            const V b = y[r * stride + p] - V{};  // a splat (x - 0 is x exactly, so it folds)
            DML_UNROLL for (int v = 0; v < NV; v++) acc[r][v] += b * q[v];
        }
    }
    V t[NV];
    DML_UNROLL for (int v = 0; v < NV; v++) std::memcpy(&t[v], thr + v * L, sizeof(V));
    auto hit = t[0] < t[0];  // all lanes false (x < x is false, NaN too), of the comparison's type
    DML_UNROLL for (int r = 0; r < RB; r++) {
        const V n = (norms ? norms[r] : 0.0f) - V{};
        DML_UNROLL for (int v = 0; v < NV; v++) {
            const V s = norms ? n - 2.0f * acc[r][v] : -acc[r][v];
            std::memcpy(out + r * QW + v * L, &s, sizeof(V));
            hit |= s < t[v];
        }
    }
    return __builtin_reduce_or(hit) != 0;
}

typedef bool (*TileFn)(const float*, size_t, const float*, const float*, size_t, const float*, float*);

bool tile_scalar(const float* y, size_t s, const float* n, const float* p, size_t d, const float* t, float* o) {
    return tile<v4f, 4, 2>(y, s, n, p, d, t, o);
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2,fma"))) bool tile_avx2(const float* y, size_t s, const float* n, const float* p, size_t d,
                                                    const float* t, float* o) {
    return tile<v8f, 6, 2>(y, s, n, p, d, t, o);
}
__attribute__((target("avx512f"))) bool tile_avx512(const float* y, size_t s, const float* n, const float* p,
                                                     size_t d, const float* t, float* o) {
    return tile<v16f, 12, 2>(y, s, n, p, d, t, o);
}
#endif

constexpr int kMaxRB = 12, kMaxQW = 32;

// One kernel path: its tile and the distance table whose rows / norm functions go with it.
struct Path {
    int rb, qw;
    TileFn tile;
    const DMLDistanceKernels* rows;
};

bool path_for(const char* name, const DMLDistanceKernels* rows, Path* out) {
    if (!name || !rows) return false;
    if (std::strcmp(name, "scalar") == 0) {
        *out = {4, 8, tile_scalar, rows};
        return true;
    }
#if defined(__x86_64__) || defined(__i386__)
    if (std::strcmp(name, "avx2") == 0) {
        *out = {6, 16, tile_avx2, rows};
        return true;
    }
    if (std::strcmp(name, "avx512") == 0) {
        *out = {12, 32, tile_avx512, rows};
        return true;
    }
#endif
    return false;
}

// ---------------------------------------------------------------------------------------------------------------
// Heaps: the kk best (lowest score) of one query, a max-heap on (score, id); empty slots are (+inf, -1).

inline bool ranks_after(float sa, int64_t ia, float sb, int64_t ib) { return sa > sb || (sa == sb && ia > ib); }

void sift_down(float* s, int64_t* id, size_t k, size_t i, float score, int64_t label) {
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= k) break;
        if (c + 1 < k && ranks_after(s[c + 1], id[c + 1], s[c], id[c])) c++;
        if (!ranks_after(s[c], id[c], score, label)) break;
        s[i] = s[c];
        id[i] = id[c];
        i = c;
    }
    s[i] = score;
    id[i] = label;
}

inline void replace_top(float* s, int64_t* id, size_t k, float score, int64_t label) {
    sift_down(s, id, k, 0, score, label);
}

void heap_clear(float* s, int64_t* id, size_t k) {
    std::fill(s, s + k, INFINITY);
    std::fill(id, id + k, int64_t(-1));
}

// In place: ascending by (score, id).
void heap_sort(float* s, int64_t* id, size_t k) {
    for (size_t end = k; end > 1; end--) {
        const float ts = s[end - 1];
        const int64_t ti = id[end - 1];
        s[end - 1] = s[0];
        id[end - 1] = id[0];
        sift_down(s, id, end - 1, 0, ts, ti);
    }
}

using dml_team::max_threads;
using dml_team::parallel_items;

// ---------------------------------------------------------------------------------------------------------------
// The search.

constexpr size_t kBlockBytes = 128 * 1024;  // base rows per block: about a quarter of a core's L2
constexpr size_t kRowsChunk = 256;          // rows path: distances computed per call of the row kernel
constexpr size_t kRowsClaim = 4096;         // rows path, base split: rows a thread claims at a time

struct Search {
    Path path;
    const float* base;
    size_t n, d;
    const float* norms;      // the caller's |y|^2 per base row (L2), or NULL: computed per block
    const uint8_t* allowed;  // per base row, nonzero: may be returned; NULL: every row
    const float* queries;
    size_t nq;
    bool l2, gemm;
    const float* packed;  // GEMM path: the query panels
    size_t panels;
    size_t items, parts;  // work items; parts > 1: the base is split (one part per item), else the queries are
    std::atomic<size_t>* next_claim;  // base split: the next chunk of `claim` rows to take
    size_t claim;
    float* heap_s;        // heap of (part, query): heap_s + (part * nq + q) * stride, kk slots
    int64_t* heap_id;
    size_t stride, kk;
    float* scratch;  // per item: scratch_size(...) floats
};

// Base rows per block: about a quarter of a core's L2, a multiple of RB.
size_t block_rows(size_t RB, size_t d) { return std::max(RB, kBlockBytes / (sizeof(float) * d) / RB * RB); }

// Per work item: the zero-padded last tile of a block (RB rows x d, RB norms) and the block's norms.
size_t scratch_size(size_t RB, size_t d) { return RB * d + RB + block_rows(RB, d); }

inline float* heap_scores(const Search& s, size_t part, size_t q) { return s.heap_s + (part * s.nq + q) * s.stride; }
inline int64_t* heap_ids(const Search& s, size_t part, size_t q) { return s.heap_id + (part * s.nq + q) * s.stride; }

void gemm_range(const Search& s, size_t item, size_t p0, size_t p1, size_t lo, size_t hi, size_t part) {
    const size_t RB = size_t(s.path.rb), QW = size_t(s.path.qw), d = s.d;
    const size_t block = block_rows(RB, d);
    float* tail = s.scratch + item * scratch_size(RB, d);
    float* tail_norms = tail + RB * d;
    float* block_norms = tail_norms + RB;
    alignas(64) float thr[kMaxQW];
    alignas(64) float out[kMaxRB * kMaxQW];
    for (size_t b = lo; b < hi; b += block) {
        const size_t be = std::min(hi, b + block);
        const float* bn = nullptr;  // L2: |y|^2 of rows b ..< be, computed here unless the caller gave them
        if (s.l2) {
            if (s.norms) {
                bn = s.norms + b;
            } else {
                for (size_t r = b; r < be; r++) block_norms[r - b] = s.path.rows->norm_l2sqr(s.base + r * d, d);
                bn = block_norms;
            }
        }
        const size_t full_end = b + (be - b) / RB * RB;  // tiles from here on are partial: copied, zero-padded
        if (full_end < be) {
            const size_t rb = be - full_end;
            std::memset(tail, 0, sizeof(float) * (RB * d + RB));
            std::memcpy(tail, s.base + full_end * d, sizeof(float) * rb * d);
            if (bn) std::memcpy(tail_norms, bn + (full_end - b), sizeof(float) * rb);
        }
        for (size_t pi = p0; pi < p1; pi++) {
            const size_t c0 = pi * QW, cn = std::min(QW, s.nq - c0);
            const float* panel = s.packed + pi * d * QW;
            for (size_t c = 0; c < QW; c++) thr[c] = c < cn ? heap_scores(s, part, c0 + c)[0] : -INFINITY;
            for (size_t j = b; j < be; j += RB) {
                const bool partial = j >= full_end;
                const size_t rb = partial ? be - j : RB;
                const float* y = partial ? tail : s.base + j * d;
                const float* yn = bn ? (partial ? tail_norms : bn + (j - b)) : nullptr;
                if (pi == p0 && j + 2 * RB <= be) {
                    // The first panel meets each block's rows in memory: fetch the next tile's while this one runs.
                    const char* next = reinterpret_cast<const char*>(s.base + (j + RB) * d);
                    for (size_t off = 0; off < RB * d * sizeof(float); off += 64) __builtin_prefetch(next + off);
                }
                if (!s.path.tile(y, d, yn, panel, d, thr, out)) continue;
                for (size_t r = 0; r < rb; r++) {
                    for (size_t c = 0; c < cn; c++) {
                        const float v = out[r * QW + c];
                        if (!(v < thr[c]) || (s.allowed && !s.allowed[j + r])) continue;
                        float* hs = heap_scores(s, part, c0 + c);
                        replace_top(hs, heap_ids(s, part, c0 + c), s.kk, v, int64_t(j + r));
                        thr[c] = hs[0];
                    }
                }
            }
        }
    }
}

void rows_range(const Search& s, size_t q0, size_t q1, size_t lo, size_t hi, size_t part) {
    float dist[kRowsChunk];
    for (size_t b = lo; b < hi; b += kRowsChunk) {
        const size_t len = std::min(kRowsChunk, hi - b);
        for (size_t q = q0; q < q1; q++) {
            const float* x = s.queries + q * s.d;
            if (s.l2) {
                s.path.rows->l2sqr_ny(dist, x, s.base + b * s.d, s.d, len);
            } else {
                s.path.rows->inner_products_ny(dist, x, s.base + b * s.d, s.d, len);
                for (size_t i = 0; i < len; i++) dist[i] = -dist[i];
            }
            float* hs = heap_scores(s, part, q);
            int64_t* ids = heap_ids(s, part, q);
            for (size_t i = 0; i < len; i++) {
                if (dist[i] < hs[0] && (!s.allowed || s.allowed[b + i]))
                    replace_top(hs, ids, s.kk, dist[i], int64_t(b + i));
            }
        }
    }
}

void run_item(const Search& s, size_t item) {
    const size_t units = s.gemm ? s.panels : s.nq;
    if (s.parts > 1) {
        // Every query over chunks of base rows claimed in increasing order: rows ascend within each part (so ties
        // keep the lower row), and a thread slowed by other work on its core takes fewer chunks.
        for (;;) {
            const size_t lo = s.next_claim->fetch_add(1, std::memory_order_relaxed) * s.claim;
            if (lo >= s.n) return;
            const size_t hi = std::min(s.n, lo + s.claim);
            if (s.gemm) {
                gemm_range(s, item, 0, units, lo, hi, item);
            } else {
                rows_range(s, 0, units, lo, hi, item);
            }
        }
    }
    const size_t u0 = units * item / s.items, u1 = units * (item + 1) / s.items;
    if (u0 >= u1) return;
    if (s.gemm) {
        gemm_range(s, item, u0, u1, 0, s.n, 0);
    } else {
        rows_range(s, u0, u1, 0, s.n, 0);
    }
}

bool mul_ok(size_t a, size_t b, size_t* out) { return !__builtin_mul_overflow(a, b, out); }

int search(const Path& path, size_t rows_below, const float* base, size_t n, size_t d, const float* base_norms,
           const uint8_t* allowed, const float* queries, size_t nq, size_t k, DMLFlatMetric metric, float* distances,
           int64_t* labels) {
    size_t cells = 0;
    if (d == 0 || k == 0 || (metric != DML_FLAT_L2 && metric != DML_FLAT_INNER_PRODUCT) || !mul_ok(nq, k, &cells) ||
        (n > 0 && !base) || (nq > 0 && (!queries || !distances || !labels)))
        return -1;
    if (nq == 0) return 0;
    const bool l2 = metric == DML_FLAT_L2;
    const size_t kk = std::min(k, n);
    size_t base_cells = 0;
    if (!mul_ok(n, d, &base_cells)) return -1;

    Search s{};
    s.path = path;
    s.base = base;
    s.n = n;
    s.d = d;
    s.queries = queries;
    s.allowed = allowed;
    s.nq = nq;
    s.l2 = l2;
    s.kk = kk;
    const size_t qw = size_t(path.qw);
    // Fewer queries than about a third of a panel: one query at a time is faster (measured on AVX2 at 10k and 100k
    // x 128: the break-even was 5-6 queries of a 16-wide panel).
    s.gemm = nq >= (rows_below > 0 ? rows_below : std::max<size_t>(2, qw / 3));
    s.panels = (nq + qw - 1) / qw;

    // Threads: each takes chunks of base rows (one heap per query per thread, merged at the end), so the base is
    // read from memory once and a thread slowed by other work takes less; where those heaps would be large (many
    // queries x k), the queries are split instead. At least ~1M multiply-adds per thread, else one thread.
    const size_t threads = max_threads();
    const size_t units = s.gemm ? s.panels : nq;
    size_t work = 0;
    if (!mul_ok(base_cells, nq, &work)) work = SIZE_MAX;
    s.claim = s.gemm ? block_rows(size_t(path.rb), d) : kRowsClaim;
    const size_t chunks = (n + s.claim - 1) / s.claim;
    const size_t parts = std::min({threads, chunks, work >> 20});
    size_t part_cells = 0;
    s.items = 1;
    s.parts = 1;
    if (kk > 0 && parts > 1 && mul_ok(parts * nq, kk, &part_cells) && part_cells <= (size_t(1) << 20)) {
        s.items = s.parts = parts;
    } else if (kk > 0 && threads > 1 && work >= (size_t(1) << 21)) {
        s.items = std::min(threads, units);
    }
    std::atomic<size_t> next_claim{0};
    s.next_claim = &next_claim;

    try {
        std::vector<float> packed, scratch, part_s;
        std::vector<int64_t> part_id;
        if (s.gemm && kk > 0) {
            s.norms = l2 ? base_norms : nullptr;
            size_t packed_cells = 0;
            if (!mul_ok(s.panels * qw, d, &packed_cells)) return -1;
            packed.assign(packed_cells, 0.0f);
            for (size_t q = 0; q < nq; q++) {
                float* panel = packed.data() + (q / qw) * d * qw + q % qw;
                for (size_t p = 0; p < d; p++) panel[p * qw] = queries[q * d + p];
            }
            s.packed = packed.data();
            size_t scratch_cells = 0;
            if (!mul_ok(s.items, scratch_size(size_t(path.rb), d), &scratch_cells)) return -1;
            scratch.resize(scratch_cells);
            s.scratch = scratch.data();
        }
        if (s.parts > 1) {
            part_s.resize(s.parts * nq * kk);
            part_id.resize(s.parts * nq * kk);
            s.heap_s = part_s.data();
            s.heap_id = part_id.data();
            s.stride = kk;
        } else {
            s.heap_s = distances;
            s.heap_id = labels;
            s.stride = k;
        }
        for (size_t p = 0; p < s.parts; p++)
            for (size_t q = 0; q < nq; q++) heap_clear(heap_scores(s, p, q), heap_ids(s, p, q), kk);

        if (kk > 0) parallel_items(s.items, [&](size_t i) { run_item(s, i); });

        // Merge the parts, sort, and turn scores into distances.
        for (size_t q = 0; q < nq; q++) {
            float* ds = distances + q * k;
            int64_t* ls = labels + q * k;
            if (s.parts > 1) {
                heap_clear(ds, ls, kk);
                for (size_t p = 0; p < s.parts; p++) {
                    const float* hs = heap_scores(s, p, q);
                    const int64_t* hid = heap_ids(s, p, q);
                    for (size_t e = 0; e < kk; e++)
                        if (hid[e] >= 0 && ranks_after(ds[0], ls[0], hs[e], hid[e])) replace_top(ds, ls, kk, hs[e], hid[e]);
                }
            }
            heap_sort(ds, ls, kk);
            const float xn = (l2 && s.gemm && kk > 0) ? path.rows->norm_l2sqr(queries + q * d, d) : 0.0f;
            for (size_t e = 0; e < k; e++) {
                if (e >= kk || ls[e] < 0) {
                    ls[e] = -1;
                    ds[e] = l2 ? INFINITY : -INFINITY;
                } else if (l2) {
                    const float v = ds[e] + xn;  // rows path: xn is 0, the score is the distance
                    ds[e] = v > 0 ? v : 0.0f;    // |x|^2 + |y|^2 - 2<x,y> rounds below 0 for near-equal vectors
                } else {
                    ds[e] = -ds[e];
                }
            }
        }
    } catch (const std::bad_alloc&) {
        return -2;
    }
    return 0;
}

// The active path: the distance table's (DMLKIT_SIMD, dml_distance_kernels_select), its row kernels included, so the
// counting hook sees one-query searches too.
Path active_path() {
    const DMLDistanceKernels* rows = dml_distance_kernels();
    Path p;
    if (path_for(rows->name, rows, &p)) return p;
    // The counting table: the tile of the path the setting gives, the rows through the counting table.
    path_for(dml_distance_kernels_for_setting(std::getenv("DMLKIT_SIMD"))->name, rows, &p);
    return p;
}

}  // namespace

extern "C" int dml_flat_search(const float* base, size_t n, size_t d, const float* base_norms, const uint8_t* allowed,
                               const float* queries, size_t nq, size_t k, DMLFlatMetric metric, float* distances,
                               int64_t* labels) {
    return search(active_path(), 0, base, n, d, base_norms, allowed, queries, nq, k, metric, distances, labels);
}

extern "C" int dml_flat_search_on(const char* name, size_t rows_below, const float* base, size_t n, size_t d,
                                  const float* base_norms, const uint8_t* allowed, const float* queries, size_t nq,
                                  size_t k,
                                  DMLFlatMetric metric, float* distances, int64_t* labels) {
    Path p;
    if (!path_for(name, dml_distance_kernels_named(name), &p)) return -1;
    return search(p, rows_below, base, n, d, base_norms, allowed, queries, nq, k, metric, distances, labels);
}
