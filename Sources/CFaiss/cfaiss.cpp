// The C++ side of cfaiss.h: translates C calls into FAISS calls and every exception into a status.

#include "cfaiss.h"
#include "dml_flat_search.h"
#include "dml_hnsw_build.h"
#include "dml_hnsw_search.h"
#include "dml_kernels.h"
#include "index_check.h"

#include <omp.h>

#include <faiss/Index.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexLSH.h>
#include <faiss/IndexPQ.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/clone_index.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/utils/Heap.h>
#include <faiss/utils/distances.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <stdexcept>
#include <typeinfo>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace {

using idx_t = faiss::Index::idx_t;

thread_local std::string last_error;

cfaiss_status fail(cfaiss_status status, std::string message) {
    last_error = std::move(message);
    return status;
}

// FAISS messages start with "Error in <signature> at <file>:<line>: "; keep only the reason.
std::string faiss_reason(const char* what) {
    std::string text = what ? what : "unknown FAISS error";
    // FAISS appends strerror(errno) to read errors even when no system call failed.
    const std::string success = " (Success)";
    if (text.size() >= success.size() && text.compare(text.size() - success.size(), success.size(), success) == 0)
        text.erase(text.size() - success.size());
    const std::string marker = "Error: '";
    auto start = text.find(marker);
    if (start != std::string::npos) {
        auto end = text.rfind("' failed");
        std::string condition = text.substr(start + marker.size(),
                                            end == std::string::npos ? std::string::npos : end - start - marker.size());
        auto colon = text.find(": ", end == std::string::npos ? start : end);
        std::string rest = colon == std::string::npos ? "" : text.substr(colon + 2);
        return rest.empty() ? "check failed: " + condition : rest;
    }
    auto line = text.find(".cpp:");
    if (line != std::string::npos) {
        auto colon = text.find(": ", line);
        if (colon != std::string::npos) return text.substr(colon + 2);
    }
    return text;
}

// Runs `body`, turning any exception into a status and a per-thread message.
template <typename Body>
cfaiss_status guarded(cfaiss_status failure, Body&& body) {
    try {
        last_error.clear();
        return body();
    } catch (const faiss::FaissException& e) {
        return fail(failure, faiss_reason(e.what()));
    } catch (const std::bad_alloc&) {
        return fail(CFAISS_OUT_OF_MEMORY, "out of memory");
    } catch (const std::exception& e) {
        return fail(failure, e.what());
    } catch (...) {
        return fail(failure, "unknown C++ exception");
    }
}

faiss::Index* unwrap(cfaiss_index* index) { return reinterpret_cast<faiss::Index*>(index); }
const faiss::Index* unwrap(const cfaiss_index* index) { return reinterpret_cast<const faiss::Index*>(index); }
cfaiss_index* wrap(faiss::Index* index) { return reinterpret_cast<cfaiss_index*>(index); }

const faiss::IndexIDMap* as_idmap(const faiss::Index* index) { return dynamic_cast<const faiss::IndexIDMap*>(index); }

// Whether FAISS 1.7.3 honours SearchParameters::sel for this (unwrapped) index type.
bool supports_native_selector(const faiss::Index* index) {
    return dynamic_cast<const faiss::IndexIVF*>(index) || dynamic_cast<const faiss::IndexFlat*>(index) ||
           dynamic_cast<const faiss::IndexScalarQuantizer*>(index);
}

const faiss::Index* search_target(const faiss::Index* top) {
    auto idmap = as_idmap(top);
    return idmap ? idmap->index : top;
}

// A filtered HNSW search runs exactly on the HNSW's own vector storage: FAISS 1.7.3's graph search applies the
// selector but returns fewer than k hits under selective filters, and a filter usually leaves few candidates.
const faiss::Index* filtered_target(const faiss::Index* target, bool filtered, bool* exact_hnsw) {
    auto hnsw = dynamic_cast<const faiss::IndexHNSW*>(target);
    *exact_hnsw = filtered && hnsw && hnsw->storage;
    return *exact_hnsw ? hnsw->storage : target;
}

// FAISS 1.7.3 ignores SearchParametersHNSW::efSearch, so a per-call efSearch is set on the index for the call and
// restored afterwards (also when FAISS throws). Such calls need exclusive access: see cfaiss_search_needs_exclusive.
struct ScopedEfSearch {
    faiss::IndexHNSW* hnsw = nullptr;
    int saved = 0;
    ScopedEfSearch(const faiss::Index* target, const cfaiss_search_params* p) {
        auto h = const_cast<faiss::IndexHNSW*>(dynamic_cast<const faiss::IndexHNSW*>(target));
        if (h && p && p->ef_search > 0 && p->ef_search != h->hnsw.efSearch) {
            hnsw = h;
            saved = h->hnsw.efSearch;
            h->hnsw.efSearch = p->ef_search;
        }
    }
    ~ScopedEfSearch() {
        if (hnsw) hnsw->hnsw.efSearch = saved;
    }
};

// Search parameters for one call, built for the index that will actually run the search.
struct CallParams {
    faiss::SearchParametersIVF ivf;
    faiss::SearchParametersHNSW hnsw;
    faiss::SearchParameters plain;
    faiss::SearchParameters* chosen = nullptr;
};

// Fills `call` for `target` (never an IDMap). Returns an error message when a parameter does not apply.
std::string prepare_params(const faiss::Index* target, const cfaiss_search_params* p, const faiss::IDSelector* sel,
                           CallParams& call, bool exact_hnsw = false) {
    int nprobe = p ? p->nprobe : 0;
    int ef = p ? p->ef_search : 0;
    if (auto ivf = dynamic_cast<const faiss::IndexIVF*>(target)) {
        if (ef > 0) return "efSearch applies to HNSW indexes; this index is IVF";
        call.ivf.nprobe = nprobe > 0 ? size_t(nprobe) : ivf->nprobe;
        call.ivf.max_codes = ivf->max_codes;
        call.ivf.sel = const_cast<faiss::IDSelector*>(sel);
        call.chosen = &call.ivf;
    } else if (auto hnsw = dynamic_cast<const faiss::IndexHNSW*>(target)) {
        if (nprobe > 0) return "nprobe applies to IVF indexes; this index is HNSW";
        call.hnsw.efSearch = ef > 0 ? ef : hnsw->hnsw.efSearch;
        call.hnsw.sel = const_cast<faiss::IDSelector*>(sel);
        call.chosen = &call.hnsw;
    } else {
        if (nprobe > 0) return "nprobe applies to IVF indexes only";
        if (ef > 0 && !exact_hnsw) return "efSearch applies to HNSW indexes only";
        if (sel) {
            call.plain.sel = const_cast<faiss::IDSelector*>(sel);
            call.chosen = &call.plain;
        }
    }
    return "";
}

bool has_filter(const cfaiss_search_params* p) { return p && p->allowed_count >= 0; }

// Maps allowed external ids to the internal positions of an IDMap's sub-index.
std::vector<idx_t> internal_positions(const faiss::IndexIDMap* idmap, const int64_t* ids, int64_t count) {
    std::vector<idx_t> positions;
    if (auto idmap2 = dynamic_cast<const faiss::IndexIDMap2*>(idmap)) {
        for (int64_t i = 0; i < count; i++) {
            auto it = idmap2->rev_map.find(ids[i]);
            if (it != idmap2->rev_map.end()) positions.push_back(it->second);
        }
    } else {
        std::unordered_set<idx_t> allowed(ids, ids + count);
        for (size_t pos = 0; pos < idmap->id_map.size(); pos++) {
            if (allowed.count(idmap->id_map[pos])) positions.push_back(idx_t(pos));
        }
    }
    return positions;
}

// The allow-list in the ids the search target stores: positions under an IDMap, the ids themselves otherwise.
std::vector<idx_t> allowed_for_target(const faiss::IndexIDMap* idmap, const cfaiss_search_params* p) {
    if (!has_filter(p)) return {};
    if (idmap) return internal_positions(idmap, p->allowed_ids, p->allowed_count);
    return std::vector<idx_t>(p->allowed_ids, p->allowed_ids + p->allowed_count);
}

// The id an IDMap stores at internal position `label` (FAISS's sub-index result), bounds-checked.
idx_t external_id(const faiss::IndexIDMap* idmap, idx_t label) {
    if (label < 0 || size_t(label) >= idmap->id_map.size())
        throw std::out_of_range("the index returned position " + std::to_string(label) + " outside its id map of " +
                                std::to_string(idmap->id_map.size()));
    return idmap->id_map[size_t(label)];
}

void translate_labels(const faiss::IndexIDMap* idmap, size_t count, idx_t* labels) {
    for (size_t i = 0; i < count; i++) {
        if (labels[i] >= 0) labels[i] = external_id(idmap, labels[i]);
    }
}

// Filtered k-NN for index types without selector support: fetch more and more candidates, keep the allowed ones.
void search_overfetch(const faiss::Index* target, const faiss::IndexIDMap* idmap, idx_t n, const float* x, idx_t k,
                      const faiss::SearchParameters* params, const std::unordered_set<idx_t>& allowed_internal,
                      float* distances, idx_t* labels) {
    idx_t total = target->ntotal;
    idx_t fetch = std::min<idx_t>(total, std::max<idx_t>(4 * k, 64));
    std::vector<float> d;
    std::vector<idx_t> l;
    for (;;) {
        d.resize(size_t(n * fetch));
        l.resize(size_t(n * fetch));
        target->search(n, x, fetch, d.data(), l.data(), params);
        bool complete = true;
        for (idx_t q = 0; q < n; q++) {
            idx_t found = 0;
            for (idx_t j = 0; j < fetch && found < k; j++) {
                idx_t label = l[size_t(q * fetch + j)];
                if (label < 0 || !allowed_internal.count(label)) continue;
                distances[q * k + found] = d[size_t(q * fetch + j)];
                labels[q * k + found] = idmap ? external_id(idmap, label) : label;
                found++;
            }
            bool exhausted = fetch >= total;
            if (found < k && !exhausted) complete = false;
            for (idx_t j = found; j < k; j++) {
                labels[q * k + j] = -1;
                distances[q * k + j] = target->metric_type == faiss::METRIC_L2 ? INFINITY : -INFINITY;
            }
        }
        if (complete || fetch >= total) return;
        fetch = std::min<idx_t>(total, fetch * 4);
    }
}

// k-NN on plain Flat indexes (also filtered HNSW searches, which run exactly on the HNSW's Flat storage) runs on
// DMLKit's own exact search (CDMLKernels' dml_flat_search: a GEMM tile with the top-k taken while it is in
// registers). FAISS 1.7.3 batches Flat searches through OpenBLAS, whose kernels Debian's build picks from a CPU
// model table (SSE3 on issue 14's Xeon). Subclasses with their own search (IndexFlat1D) and other metrics stay on
// FAISS.
const faiss::IndexFlat* own_flat_target(const faiss::Index* target) {
    auto flat = dynamic_cast<const faiss::IndexFlat*>(target);
    if (!flat) return nullptr;
    const std::type_info& type = typeid(*flat);
    if (type != typeid(faiss::IndexFlat) && type != typeid(faiss::IndexFlatL2) && type != typeid(faiss::IndexFlatIP))
        return nullptr;
    if (flat->metric_type != faiss::METRIC_L2 && flat->metric_type != faiss::METRIC_INNER_PRODUCT) return nullptr;
    return flat;
}

// CFAISS_SEARCH_AUTO: ours, unless DMLKIT_SEARCH=faiss (benches and tests compare the two). The setting is read
// once, not on every search (one-query searches take ~0.1 ms).
bool wants_own_search(cfaiss_search_path path) {
    if (path != CFAISS_SEARCH_AUTO) return path == CFAISS_SEARCH_OWN;
    static const bool faiss_asked = [] {
        const char* setting = std::getenv("DMLKIT_SEARCH");
        return setting && std::strcmp(setting, "faiss") == 0;
    }();
    return !faiss_asked;
}

// Unfiltered searches on HNSW-Flat run on DMLKit's HNSW search (dml_hnsw_search: FAISS's algorithm on FAISS's
// graph, gathered neighbours, batched and prefetched distances, pooled visited tables) when the index uses FAISS's
// default search (greedy upper levels, bounded queue) and no neighbour-based reconstruction.
const faiss::IndexHNSW* own_hnsw_target(const faiss::Index* target) {
    auto hnsw = dynamic_cast<const faiss::IndexHNSW*>(target);
    if (!hnsw || typeid(*hnsw) != typeid(faiss::IndexHNSWFlat) || !own_flat_target(hnsw->storage)) return nullptr;
    if (hnsw->hnsw.upper_beam != 1 || !hnsw->hnsw.search_bounded_queue || hnsw->reconstruct_from_neighbors)
        return nullptr;
    if (hnsw->storage->metric_type != hnsw->metric_type) return nullptr;
    return hnsw;
}

// An IVF index's coarse quantizer when it is a plain IndexFlat (L2 or inner product): FAISS's own class and
// storage (files and clones see the IndexFlat it derives from), with search() on dml_flat_search. FAISS searches
// the quantizer for everything IVF does: k-means training (Clustering searches it every iteration), add (assign)
// and the coarse step of every search; its own IndexFlat::search would send batches through Debian's OpenBLAS.
// `path` chooses per index (tests compare the two); AUTO follows DMLKIT_SEARCH.
struct OwnFlatQuantizer : faiss::IndexFlat {
    cfaiss_search_path path = CFAISS_SEARCH_AUTO;

    explicit OwnFlatQuantizer(faiss::IndexFlat&& from) : faiss::IndexFlat(from.d, from.metric_type) {
        codes = std::move(from.codes);
        ntotal = from.ntotal;
        is_trained = from.is_trained;
        verbose = from.verbose;
        metric_arg = from.metric_arg;
    }

    void search(idx_t n, const float* x, idx_t k, float* distances, idx_t* labels,
                const faiss::SearchParameters* params) const override {
        if ((params && params->sel) || !wants_own_search(path) || n <= 0 || k <= 0) {
            faiss::IndexFlat::search(n, x, k, distances, labels, params);
            return;
        }
        int rc = dml_flat_search(get_xb(), size_t(ntotal), size_t(d), nullptr, nullptr, x, size_t(n), size_t(k),
                                 metric_type == faiss::METRIC_L2 ? DML_FLAT_L2 : DML_FLAT_INNER_PRODUCT, distances,
                                 labels);
        if (rc == -2) throw std::bad_alloc();
        FAISS_THROW_IF_NOT_MSG(rc == 0, "bad quantizer search arguments");
    }
};

faiss::IndexIVF* ivf_of(faiss::Index* index) {
    if (auto map = dynamic_cast<faiss::IndexIDMap*>(index)) index = map->index;
    return dynamic_cast<faiss::IndexIVF*>(index);
}

// IVF-Flat's inverted-list scan for unfiltered searches: FAISS 1.7.3's IVFFlatScanner step for step (the same
// comparisons and heap updates in list order), with each list's distances computed first, four rows at a time with
// the next rows prefetched (`l2sqr_by_id` / `inner_products_by_id` over the list's positions: bitwise the one-row
// kernel FAISS calls per vector), so the results are FAISS's. FAISS's loop makes one call per vector.
template <class C>
struct OwnIVFFlatScanner : faiss::InvertedListScanner {
    const size_t d;
    const bool inner_product;
    const float* xi = nullptr;

    OwnIVFFlatScanner(size_t d, bool inner_product, bool store_pairs)
            : faiss::InvertedListScanner(store_pairs, nullptr), d(d), inner_product(inner_product) {
        keep_max = inner_product;
    }

    void set_query(const float* query) override { xi = query; }
    void set_list(idx_t list, float) override { list_no = list; }

    float distance_to_code(const uint8_t* code) const override {
        auto y = reinterpret_cast<const float*>(code);
        return inner_product ? dml_distance_kernels()->inner_product(xi, y, d) : dml_distance_kernels()->l2sqr(xi, y, d);
    }

    size_t scan_codes(size_t list_size, const uint8_t* codes, const idx_t* ids, float* simi, idx_t* idxi,
                      size_t k) const override {
        enum { CHUNK = 256 };
        static thread_local const std::vector<int32_t> positions = [] {
            std::vector<int32_t> p(CHUNK);
            for (int32_t i = 0; i < CHUNK; i++) p[size_t(i)] = i;
            return p;
        }();
        const DMLDistanceKernels* kernels = dml_distance_kernels();
        auto vectors = reinterpret_cast<const float*>(codes);
        float dis[CHUNK];
        size_t updates = 0;
        for (size_t first = 0; first < list_size; first += CHUNK) {
            const size_t m = std::min<size_t>(CHUNK, list_size - first);
            const float* rows = vectors + first * d;
            if (inner_product) kernels->inner_products_by_id(dis, xi, rows, d, positions.data(), m);
            else kernels->l2sqr_by_id(dis, xi, rows, d, positions.data(), m);
            for (size_t j = 0; j < m; j++) {
                if (!C::cmp(simi[0], dis[j])) continue;
                const size_t at = first + j;
                const idx_t id = store_pairs ? faiss::lo_build(list_no, at) : ids[at];
                faiss::heap_replace_top<C>(k, simi, idxi, dis[j], id);
                updates++;
            }
        }
        return updates;
    }

    void scan_codes_range(size_t list_size, const uint8_t* codes, const idx_t* ids, float radius,
                          faiss::RangeQueryResult& result) const override {
        auto vectors = reinterpret_cast<const float*>(codes);
        for (size_t j = 0; j < list_size; j++) {
            const float dis = distance_to_code(reinterpret_cast<const uint8_t*>(vectors + j * d));
            if (C::cmp(radius, dis)) result.add(dis, store_pairs ? faiss::lo_build(list_no, j) : ids[j]);
        }
    }
};

// An IndexIVFFlat (FAISS's class to files and clones: its fields are copied over as they are) whose unfiltered
// searches scan with OwnIVFFlatScanner. `path` follows the quantizer's (tests compare the two).
struct OwnIVFFlat : faiss::IndexIVFFlat {
    cfaiss_search_path path = CFAISS_SEARCH_AUTO;

    explicit OwnIVFFlat(const faiss::IndexIVFFlat& from) : faiss::IndexIVFFlat(from) {}

    faiss::InvertedListScanner* get_InvertedListScanner(bool store_pairs, const faiss::IDSelector* sel) const override {
        if (sel || !wants_own_search(path) || code_size != d * sizeof(float) ||
            (metric_type != faiss::METRIC_L2 && metric_type != faiss::METRIC_INNER_PRODUCT))
            return faiss::IndexIVFFlat::get_InvertedListScanner(store_pairs, sel);
        if (metric_type == faiss::METRIC_INNER_PRODUCT)
            return new OwnIVFFlatScanner<faiss::CMin<float, idx_t>>(size_t(d), true, store_pairs);
        return new OwnIVFFlatScanner<faiss::CMax<float, idx_t>>(size_t(d), false, store_pairs);
    }
};

// Gives an IVF index (also under an IDMap) the OwnFlatQuantizer, moving the centroids over, where its quantizer is
// a plain Flat it owns; and an IVF-Flat (FAISS's exact class) becomes an OwnIVFFlat, taking over its quantizer and
// lists. Called on every index the shim creates, reads or clones.
void adopt_own_search(std::unique_ptr<faiss::Index>& index) {
    faiss::IndexIVF* ivf = ivf_of(index.get());
    if (!ivf) return;
    if (ivf->own_fields && ivf->quantizer) {
        auto flat = dynamic_cast<faiss::IndexFlat*>(ivf->quantizer);
        if (flat && own_flat_target(flat)) {
            auto own = new OwnFlatQuantizer(std::move(*flat));
            delete ivf->quantizer;
            ivf->quantizer = own;
        }
    }
    if (typeid(*ivf) != typeid(faiss::IndexIVFFlat)) return;
    auto map = dynamic_cast<faiss::IndexIDMap*>(index.get());
    if (map && !map->own_fields) return;  // the IDMap does not own the IVF: leave it where it is
    auto flat = static_cast<faiss::IndexIVFFlat*>(ivf);
    std::unique_ptr<OwnIVFFlat> own(new OwnIVFFlat(*flat));
    // The copy now owns what the original owned (quantizer, lists); the original is deleted without them.
    flat->own_fields = false;
    flat->own_invlists = false;
    if (map) {
        delete map->index;
        map->index = own.release();
    } else {
        index.reset(own.release());
    }
}

DMLHNSWGraph hnsw_graph(const faiss::HNSW& h) {
    static_assert(sizeof(faiss::HNSW::storage_idx_t) == sizeof(int32_t) && sizeof(int) == sizeof(int32_t),
                  "dml_hnsw_search reads FAISS's graph arrays in place");
    DMLHNSWGraph g;
    g.neighbors = reinterpret_cast<const int32_t*>(h.neighbors.data());
    g.neighbors_count = h.neighbors.size();
    g.offsets = h.offsets.data();
    g.ntotal = h.offsets.empty() ? 0 : h.offsets.size() - 1;
    g.cum_neighbors = reinterpret_cast<const int32_t*>(h.cum_nneighbor_per_level.data());
    g.cum_neighbors_count = h.cum_nneighbor_per_level.size();
    g.entry_point = h.entry_point;
    g.max_level = h.max_level;
    return g;
}

// HNSW-Flat adds run on DMLKit's insertion (dml_hnsw_add: FAISS 1.7.3's algorithm on FAISS's arrays, batched
// distances; one thread builds FAISS's graph) for exactly IndexHNSWFlat over a plain Flat storage.
faiss::IndexHNSWFlat* own_hnsw_build_target(faiss::Index* index) {
    if (!index || typeid(*index) != typeid(faiss::IndexHNSWFlat)) return nullptr;
    auto hnsw = static_cast<faiss::IndexHNSWFlat*>(index);
    return own_flat_target(hnsw->storage) ? hnsw : nullptr;
}

// What IndexHNSW::add does, with hnsw_add_vertices' linking on dml_hnsw_add: the storage takes the vectors and
// prepare_level_tab draws the levels with FAISS's generator and sizes levels, offsets and neighbors (FAISS's own
// allocations), then the insertion writes into those arrays. Should the insertion refuse the graph or run out of
// memory (before it writes), storage and arrays are put back as they were.
// Graph searches and builds touch their vectors and links at random: over tens of MiB with 4 KiB pages most of
// those touches also miss the TLB. The kernel is asked to back such arrays with huge pages (advice only: where it
// declines, e.g. THP off, nothing changes). MADV_COLLAPSE (Linux 6.1) converts pages already in memory at once;
// MADV_HUGEPAGE alone leaves that to khugepaged, minutes later.
void advise_huge_pages(const void* data, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    constexpr uintptr_t huge = uintptr_t(2) << 20;
    if (bytes < 2 * huge) return;
    const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + huge - 1) & ~(huge - 1);
    const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(huge - 1);
    if (end <= begin) return;
    void* start = reinterpret_cast<void*>(begin);
    if (madvise(start, end - begin, MADV_HUGEPAGE) != 0) return;
    constexpr int collapse = 25;  // MADV_COLLAPSE; older kernels refuse it (EINVAL) and nothing happens
    (void)madvise(start, end - begin, collapse);
#else
    (void)data;
    (void)bytes;
#endif
}

// The arrays an HNSW-Flat search or build reads at random: the stored vectors and the links.
void advise_graph_memory(const faiss::Index* index) {
    if (auto map = dynamic_cast<const faiss::IndexIDMap*>(index)) index = map->index;
    auto hnsw = dynamic_cast<const faiss::IndexHNSW*>(index);
    if (!hnsw) return;
    if (auto flat = dynamic_cast<const faiss::IndexFlat*>(hnsw->storage))
        advise_huge_pages(flat->codes.data(), flat->codes.size());
    advise_huge_pages(hnsw->hnsw.neighbors.data(), hnsw->hnsw.neighbors.size() * sizeof(hnsw->hnsw.neighbors[0]));
}

void own_hnsw_add(faiss::IndexHNSWFlat& index, idx_t n, const float* x) {
    const bool is_trained = index.is_trained;
    FAISS_THROW_IF_NOT(is_trained);  // FAISS's check, with its message
    auto storage = static_cast<faiss::IndexFlat*>(index.storage);
    faiss::HNSW& h = index.hnsw;
    const idx_t n0 = index.ntotal, storage_n0 = storage->ntotal;
    const size_t codes0 = storage->codes.size();
    const size_t levels0 = h.levels.size(), offsets0 = h.offsets.size(), neighbors0 = h.neighbors.size();
    auto restore = [&] {
        storage->codes.resize(std::min(codes0, storage->codes.size()));
        storage->ntotal = storage_n0;
        index.ntotal = n0;
        h.levels.resize(std::min(levels0, h.levels.size()));
        h.offsets.resize(std::min(offsets0, h.offsets.size()));
        h.neighbors.resize(std::min(neighbors0, h.neighbors.size()));
    };
    storage->add(n, x);
    index.ntotal = storage->ntotal;
    if (n == 0) return;
    int rc;
    try {
        h.prepare_level_tab(size_t(n), h.levels.size() == size_t(index.ntotal));
        advise_graph_memory(&index);
        static_assert(sizeof(faiss::HNSW::storage_idx_t) == sizeof(int32_t) && sizeof(int) == sizeof(int32_t),
                      "dml_hnsw_add writes FAISS's graph arrays in place");
        DMLHNSWBuildGraph g;
        g.neighbors = reinterpret_cast<int32_t*>(h.neighbors.data());
        g.neighbors_count = h.neighbors.size();
        g.offsets = h.offsets.data();
        g.ntotal = h.offsets.size() - 1;
        g.levels = reinterpret_cast<const int32_t*>(h.levels.data());
        g.cum_neighbors = reinterpret_cast<const int32_t*>(h.cum_nneighbor_per_level.data());
        g.cum_neighbors_count = h.cum_nneighbor_per_level.size();
        g.entry_point = h.entry_point;
        g.max_level = h.max_level;
        g.ef_construction = h.efConstruction;
        rc = g.ntotal == size_t(index.ntotal) && h.levels.size() == g.ntotal
                     ? dml_hnsw_add(&g, storage->get_xb(), size_t(index.d),
                                    storage->metric_type == faiss::METRIC_L2 ? DML_FLAT_L2 : DML_FLAT_INNER_PRODUCT,
                                    size_t(n0), size_t(n))
                     : -1;
        if (rc == 0) {
            h.entry_point = g.entry_point;
            h.max_level = g.max_level;
        }
    } catch (...) {
        restore();
        throw;
    }
    if (rc == 0) return;
    restore();
    if (rc == -2) throw std::bad_alloc();
    throw std::runtime_error("the HNSW graph does not hold together (levels or offsets)");
}

// ---- files ----

thread_local int last_defect = 0;

// Refuses bytes the index checker does not accept, with its reason; FAISS never sees them.
cfaiss_status check_bytes(const uint8_t* data, size_t size) {
    if (size == 0) {
        last_defect = int(cfaiss_check::Defect::truncated);
        return fail(CFAISS_BAD_FILE, "the file is empty");
    }
    cfaiss_check::Result result = cfaiss_check::check_index(data, size);
    if (result.defect == cfaiss_check::Defect::none) return CFAISS_OK;
    last_defect = int(result.defect);
    return fail(CFAISS_BAD_FILE, result.message);
}

std::string errno_text(const std::string& what, const char* path) {
    return what + " " + path + ": " + std::strerror(errno);
}

// A whole file mapped read-only; refuses directories and other non-regular files by name.
struct MappedFile {
    const uint8_t* data = nullptr;
    size_t size = 0;
    void* mapping = nullptr;

    std::string open(const char* path) {
        int fd = ::open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return errno_text("cannot open", path);
        struct stat st;
        if (fstat(fd, &st) != 0) {
            std::string problem = errno_text("cannot stat", path);
            ::close(fd);
            return problem;
        }
        if (S_ISDIR(st.st_mode)) {
            ::close(fd);
            return std::string(path) + " is a directory, not an index file";
        }
        if (!S_ISREG(st.st_mode)) {
            ::close(fd);
            return std::string(path) + " is not a regular file";
        }
        size = size_t(st.st_size);
        if (size > 0) {
            mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
            if (mapping == MAP_FAILED) {
                mapping = nullptr;
                std::string problem = errno_text("cannot map", path);
                ::close(fd);
                return problem;
            }
            data = static_cast<const uint8_t*>(mapping);
        } else {
            static const uint8_t nothing = 0;
            data = &nothing;
        }
        ::close(fd);
        return "";
    }

    ~MappedFile() {
        if (mapping) ::munmap(mapping, size);
    }
};

// Hands FAISS bytes that are already in memory (checked, mapped) without copying them first.
struct SpanReader : faiss::IOReader {
    const uint8_t* data;
    size_t size;
    size_t position = 0;

    SpanReader(const uint8_t* data, size_t size, const char* label) : data(data), size(size) { name = label; }

    size_t operator()(void* ptr, size_t unit, size_t items) override {
        if (unit == 0 || items == 0) return 0;
        size_t n = std::min(items, (size - position) / unit);
        std::memcpy(ptr, data + position, n * unit);
        position += n * unit;
        return n;
    }
};

// IVFPQ indexes are read without their precomputed residual table (FAISS would allocate up to 2 GiB for it);
// it is rebuilt here only when it stays within a few times the file's size. Without it searches are exact too.
void precompute_tables(faiss::Index* index, size_t file_size) {
    if (auto map = dynamic_cast<faiss::IndexIDMap*>(index)) return precompute_tables(map->index, file_size);
    auto ivfpq = dynamic_cast<faiss::IndexIVFPQ*>(index);
    if (!ivfpq || !ivfpq->is_trained || !ivfpq->by_residual) return;
    size_t table = ivfpq->nlist * ivfpq->pq.M * ivfpq->pq.ksub * sizeof(float);
    if (table <= cfaiss_check::derived_budget(file_size)) ivfpq->precompute_table();
}

// Writes `size` bytes to a new file at `path`, checking write, fsync and close; removes the file on failure.
std::string write_file_checked(const char* path, const uint8_t* data, size_t size) {
    int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return errno_text("cannot create", path);
    std::string problem;
    size_t done = 0;
    while (done < size && problem.empty()) {
        ssize_t n = ::write(fd, data + done, std::min<size_t>(size - done, size_t{1} << 30));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) problem = errno_text("cannot write", path);
        else done += size_t(n);
    }
    if (problem.empty() && ::fsync(fd) != 0) problem = errno_text("cannot flush", path);
    if (::close(fd) != 0 && problem.empty()) problem = errno_text("cannot close", path);
    if (!problem.empty()) ::unlink(path);
    return problem;
}

}  // namespace

extern "C" {

const char* cfaiss_last_error(void) { return last_error.c_str(); }

int cfaiss_search_needs_exclusive(const cfaiss_index* index, const cfaiss_search_params* params) {
    auto hnsw = dynamic_cast<const faiss::IndexHNSW*>(search_target(unwrap(index)));
    // Decided from the index type only: reading efSearch here would race with a call that is changing it.
    return (hnsw && params && params->ef_search > 0) ? 1 : 0;
}

cfaiss_status cfaiss_index_factory(int dimension, const char* description, cfaiss_metric metric, cfaiss_index** out) {
    if (!out || !description) return fail(CFAISS_INVALID_ARGUMENT, "null argument");
    *out = nullptr;
    if (dimension <= 0 || dimension > cfaiss_check::max_dimension)
        return fail(CFAISS_INVALID_ARGUMENT, "dimension must be 1..." + std::to_string(cfaiss_check::max_dimension));
    if (metric != CFAISS_METRIC_INNER_PRODUCT && metric != CFAISS_METRIC_L2)
        return fail(CFAISS_INVALID_ARGUMENT, "unknown metric");
    return guarded(CFAISS_FAISS_ERROR, [&] {
        std::unique_ptr<faiss::Index> index(faiss::index_factory(dimension, description, faiss::MetricType(metric)));
        adopt_own_search(index);
        advise_graph_memory(index.get());
        *out = wrap(index.release());
        return CFAISS_OK;
    });
}

cfaiss_status cfaiss_index_wrap_idmap(cfaiss_index* inner, cfaiss_index** out) {
    if (!inner || !out) return fail(CFAISS_INVALID_ARGUMENT, "null argument");
    return guarded(CFAISS_FAISS_ERROR, [&] {
        auto map = new faiss::IndexIDMap2(unwrap(inner));
        map->own_fields = true;
        *out = wrap(map);
        return CFAISS_OK;
    });
}

void cfaiss_index_free(cfaiss_index* index) { delete unwrap(index); }

cfaiss_status cfaiss_index_clone(const cfaiss_index* index, cfaiss_index** out) {
    if (!index || !out) return fail(CFAISS_INVALID_ARGUMENT, "null argument");
    return guarded(CFAISS_FAISS_ERROR, [&] {
        std::unique_ptr<faiss::Index> copy(faiss::clone_index(unwrap(index)));
        adopt_own_search(copy);
        *out = wrap(copy.release());
        return CFAISS_OK;
    });
}

int cfaiss_index_dimension(const cfaiss_index* index) { return unwrap(index)->d; }
int64_t cfaiss_index_ntotal(const cfaiss_index* index) { return unwrap(index)->ntotal; }
int cfaiss_index_is_trained(const cfaiss_index* index) { return unwrap(index)->is_trained ? 1 : 0; }
cfaiss_metric cfaiss_index_metric(const cfaiss_index* index) {
    return unwrap(index)->metric_type == faiss::METRIC_L2 ? CFAISS_METRIC_L2 : CFAISS_METRIC_INNER_PRODUCT;
}

int cfaiss_index_has_own_ids(const cfaiss_index* index) {
    auto i = unwrap(index);
    return (as_idmap(i) || dynamic_cast<const faiss::IndexIVF*>(i)) ? 1 : 0;
}

static std::string type_name(const faiss::Index* i) {
    if (auto m = dynamic_cast<const faiss::IndexIDMap2*>(i)) return "IDMap2(" + type_name(m->index) + ")";
    if (auto m = as_idmap(i)) return "IDMap(" + type_name(m->index) + ")";
    if (auto p = dynamic_cast<const faiss::IndexPreTransform*>(i)) return "PreTransform(" + type_name(p->index) + ")";
    if (dynamic_cast<const faiss::IndexHNSWFlat*>(i)) return "HNSWFlat";
    if (dynamic_cast<const faiss::IndexHNSWSQ*>(i)) return "HNSWSQ";
    if (dynamic_cast<const faiss::IndexHNSWPQ*>(i)) return "HNSWPQ";
    if (dynamic_cast<const faiss::IndexHNSW*>(i)) return "HNSW";
    if (dynamic_cast<const faiss::IndexIVFFlat*>(i)) return "IVFFlat";
    if (dynamic_cast<const faiss::IndexIVFPQ*>(i)) return "IVFPQ";
    if (dynamic_cast<const faiss::IndexIVFScalarQuantizer*>(i)) return "IVFSQ";
    if (dynamic_cast<const faiss::IndexIVF*>(i)) return "IVF";
    if (dynamic_cast<const faiss::IndexFlat*>(i)) return "Flat";
    if (dynamic_cast<const faiss::IndexScalarQuantizer*>(i)) return "SQ";
    if (dynamic_cast<const faiss::IndexPQ*>(i)) return "PQ";
    if (dynamic_cast<const faiss::IndexLSH*>(i)) return "LSH";
    return "Index";
}

void cfaiss_index_type_name(const cfaiss_index* index, char* buf, size_t buf_size) {
    if (!buf || buf_size == 0) return;
    std::string name = index ? type_name(unwrap(index)) : "";
    std::strncpy(buf, name.c_str(), buf_size - 1);
    buf[buf_size - 1] = '\0';
}

cfaiss_status cfaiss_index_max_id(const cfaiss_index* index, int64_t* out) {
    if (!index || !out) return fail(CFAISS_INVALID_ARGUMENT, "null argument");
    return guarded(CFAISS_FAISS_ERROR, [&] {
        auto i = unwrap(index);
        idx_t best = -1;
        if (auto m = as_idmap(i)) {
            for (idx_t id : m->id_map) best = std::max(best, id);
        } else if (auto ivf = dynamic_cast<const faiss::IndexIVF*>(i)) {
            for (size_t list = 0; list < ivf->nlist; list++) {
                size_t size = ivf->invlists->list_size(list);
                if (size == 0) continue;
                faiss::InvertedLists::ScopedIds ids(ivf->invlists, list);
                for (size_t j = 0; j < size; j++) best = std::max(best, ids[j]);
            }
        } else {
            best = i->ntotal - 1;
        }
        *out = best;
        return CFAISS_OK;
    });
}

cfaiss_status cfaiss_index_first_present_id(const cfaiss_index* index, int64_t n, const int64_t* ids, int64_t* out) {
    if (!index || !out || n < 0 || (n > 0 && !ids)) return fail(CFAISS_INVALID_ARGUMENT, "bad ids");
    return guarded(CFAISS_FAISS_ERROR, [&] {
        auto i = unwrap(index);
        *out = -1;
        if (auto m2 = dynamic_cast<const faiss::IndexIDMap2*>(i)) {
            for (int64_t j = 0; j < n; j++) {
                if (m2->rev_map.count(ids[j])) {
                    *out = ids[j];
                    return CFAISS_OK;
                }
            }
            return CFAISS_OK;
        }
        // Other indexes: one pass over the stored ids, looking each up among the new ones; report the earliest new one.
        std::unordered_map<idx_t, int64_t> wanted;
        for (int64_t j = 0; j < n; j++) wanted.emplace(ids[j], j);
        int64_t best = n;
        auto visit = [&](idx_t id) {
            auto it = wanted.find(id);
            if (it != wanted.end()) best = std::min(best, it->second);
        };
        if (auto m = as_idmap(i)) {
            for (idx_t id : m->id_map) visit(id);
        } else if (auto ivf = dynamic_cast<const faiss::IndexIVF*>(i)) {
            for (size_t list = 0; list < ivf->nlist; list++) {
                size_t size = ivf->invlists->list_size(list);
                if (size == 0) continue;
                faiss::InvertedLists::ScopedIds stored(ivf->invlists, list);
                for (size_t j = 0; j < size; j++) visit(stored[j]);
            }
        } else {
            return fail(CFAISS_UNSUPPORTED, "the index stores no ids of its own");
        }
        if (best < n) *out = ids[best];
        return CFAISS_OK;
    });
}

cfaiss_status cfaiss_index_train(cfaiss_index* index, int64_t n, const float* x) {
    if (!index || (n > 0 && !x) || n < 0) return fail(CFAISS_INVALID_ARGUMENT, "bad training set");
    return guarded(CFAISS_FAISS_ERROR, [&] {
        unwrap(index)->train(n, x);
        return CFAISS_OK;
    });
}

cfaiss_status cfaiss_index_add(cfaiss_index* index, int64_t n, const float* x) {
    return cfaiss_index_add_on_path(index, n, x, CFAISS_SEARCH_AUTO);
}

cfaiss_status cfaiss_index_add_on_path(cfaiss_index* index, int64_t n, const float* x, cfaiss_search_path path) {
    if (!index || (n > 0 && !x) || n < 0) return fail(CFAISS_INVALID_ARGUMENT, "bad vectors");
    return guarded(CFAISS_FAISS_ERROR, [&] {
        faiss::IndexHNSWFlat* hnsw = wants_own_search(path) ? own_hnsw_build_target(unwrap(index)) : nullptr;
        if (hnsw)
            own_hnsw_add(*hnsw, n, x);
        else
            unwrap(index)->add(n, x);
        return CFAISS_OK;
    });
}

cfaiss_status cfaiss_index_add_with_ids(cfaiss_index* index, int64_t n, const float* x, const int64_t* ids) {
    return cfaiss_index_add_with_ids_on_path(index, n, x, ids, CFAISS_SEARCH_AUTO);
}

cfaiss_status cfaiss_index_add_with_ids_on_path(cfaiss_index* index, int64_t n, const float* x, const int64_t* ids,
                                                cfaiss_search_path path) {
    if (!index || n < 0 || (n > 0 && (!x || !ids))) return fail(CFAISS_INVALID_ARGUMENT, "bad vectors or ids");
    return guarded(CFAISS_FAISS_ERROR, [&] {
        faiss::Index* top = unwrap(index);
        const std::type_info& type = typeid(*top);
        const bool plain_map = type == typeid(faiss::IndexIDMap) || type == typeid(faiss::IndexIDMap2);
        faiss::IndexIDMap* map = plain_map ? static_cast<faiss::IndexIDMap*>(top) : nullptr;
        faiss::IndexHNSWFlat* hnsw = map && wants_own_search(path) ? own_hnsw_build_target(map->index) : nullptr;
        if (!hnsw) {
            top->add_with_ids(n, x, ids);
            return CFAISS_OK;
        }
        // IndexIDMap(2)::add_with_ids with the sub-index's add on DMLKit's insertion.
        const size_t previous = size_t(map->ntotal);
        own_hnsw_add(*hnsw, n, x);
        for (int64_t i = 0; i < n; i++) map->id_map.push_back(ids[i]);
        map->ntotal = map->index->ntotal;
        if (type == typeid(faiss::IndexIDMap2)) {
            auto map2 = static_cast<faiss::IndexIDMap2*>(top);
            for (size_t i = previous; i < size_t(map->ntotal); i++) map2->rev_map[map->id_map[i]] = idx_t(i);
        }
        return CFAISS_OK;
    });
}

cfaiss_status cfaiss_index_remove_ids(cfaiss_index* index, int64_t n, const int64_t* ids, int64_t* removed) {
    if (!index || n < 0 || (n > 0 && !ids)) return fail(CFAISS_INVALID_ARGUMENT, "bad ids");
    return guarded(CFAISS_UNSUPPORTED, [&] {
        faiss::IDSelectorBatch selector(size_t(n), ids);
        size_t count = unwrap(index)->remove_ids(selector);
        if (removed) *removed = int64_t(count);
        return CFAISS_OK;
    });
}

cfaiss_status cfaiss_index_reset(cfaiss_index* index) {
    if (!index) return fail(CFAISS_INVALID_ARGUMENT, "null index");
    return guarded(CFAISS_FAISS_ERROR, [&] {
        unwrap(index)->reset();
        return CFAISS_OK;
    });
}

int cfaiss_index_set_quantizer_path(cfaiss_index* index, cfaiss_search_path path) {
    faiss::IndexIVF* ivf = index ? ivf_of(unwrap(index)) : nullptr;
    auto own = ivf ? dynamic_cast<OwnFlatQuantizer*>(ivf->quantizer) : nullptr;
    if (!own) return -1;
    own->path = path;
    if (auto scan = dynamic_cast<OwnIVFFlat*>(ivf)) scan->path = path;
    return 0;
}

int cfaiss_index_has_own_ivf_scan(const cfaiss_index* index) {
    faiss::IndexIVF* ivf = index ? ivf_of(const_cast<faiss::Index*>(unwrap(index))) : nullptr;
    return dynamic_cast<OwnIVFFlat*>(ivf) ? 1 : 0;
}

cfaiss_status cfaiss_index_search(const cfaiss_index* index, int64_t n, const float* x, int64_t k,
                                  const cfaiss_search_params* params, float* distances, int64_t* labels) {
    return cfaiss_index_search_on_path(index, n, x, k, params, distances, labels, CFAISS_SEARCH_AUTO);
}

cfaiss_status cfaiss_index_search_on_path(const cfaiss_index* index, int64_t n, const float* x, int64_t k,
                                          const cfaiss_search_params* params, float* distances, int64_t* labels,
                                          cfaiss_search_path path) {
    if (!index || n < 0 || k <= 0 || (n > 0 && (!x || !distances || !labels)))
        return fail(CFAISS_INVALID_ARGUMENT, "bad search arguments");
    return guarded(CFAISS_FAISS_ERROR, [&] {
        const faiss::IndexIDMap* idmap = as_idmap(unwrap(index));
        const faiss::Index* target = search_target(unwrap(index));
        bool filtered = has_filter(params);
        std::vector<idx_t> allowed = allowed_for_target(idmap, params);
        bool exact_hnsw = false;
        target = filtered_target(target, filtered, &exact_hnsw);
        bool native = !filtered || supports_native_selector(target);
        faiss::IDSelectorBatch selector(allowed.size(), allowed.data());
        CallParams call;
        std::string problem = prepare_params(target, params, (filtered && native) ? &selector : nullptr, call, exact_hnsw);
        if (!problem.empty()) return fail(CFAISS_INVALID_ARGUMENT, problem);
        ScopedEfSearch ef_scope(target, params);

        const faiss::IndexFlat* flat = own_flat_target(target);
        if (flat && wants_own_search(path)) {
            // A filter becomes a per-row mask over the positions (the HNSW's storage for filtered HNSW searches).
            std::vector<uint8_t> mask;
            if (filtered) {
                mask.assign(size_t(flat->ntotal), 0);
                for (idx_t position : allowed)
                    if (position >= 0 && position < flat->ntotal) mask[size_t(position)] = 1;
            }
            int rc = dml_flat_search(flat->get_xb(), size_t(flat->ntotal), size_t(flat->d), nullptr,
                                     filtered ? mask.data() : nullptr, x, size_t(n), size_t(k),
                                     flat->metric_type == faiss::METRIC_L2 ? DML_FLAT_L2 : DML_FLAT_INNER_PRODUCT,
                                     distances, labels);
            if (rc == -2) throw std::bad_alloc();
            if (rc != 0) return fail(CFAISS_INVALID_ARGUMENT, "bad search arguments");
            if (idmap) translate_labels(idmap, size_t(n * k), labels);
            return CFAISS_OK;
        }
        const faiss::IndexHNSW* hnsw = filtered ? nullptr : own_hnsw_target(target);
        if (hnsw && wants_own_search(path)) {
            const DMLHNSWGraph graph = hnsw_graph(hnsw->hnsw);
            auto storage = static_cast<const faiss::IndexFlat*>(hnsw->storage);
            if (graph.ntotal != size_t(storage->ntotal))
                return fail(CFAISS_FAISS_ERROR, "the HNSW graph and its storage hold different numbers of vectors");
            int rc = dml_hnsw_search(&graph, storage->get_xb(), size_t(hnsw->d),
                                     hnsw->metric_type == faiss::METRIC_L2 ? DML_FLAT_L2 : DML_FLAT_INNER_PRODUCT,
                                     call.hnsw.efSearch, call.hnsw.check_relative_distance ? 1 : 0, x, size_t(n),
                                     size_t(k), distances, labels);
            if (rc == -2) throw std::bad_alloc();
            if (rc != 0) return fail(CFAISS_FAISS_ERROR, "the HNSW graph does not hold together (levels or offsets)");
            if (idmap) translate_labels(idmap, size_t(n * k), labels);
            return CFAISS_OK;
        }
        if (filtered && !native) {
            std::unordered_set<idx_t> allowed_set(allowed.begin(), allowed.end());
            search_overfetch(target, idmap, n, x, k, call.chosen, allowed_set, distances, labels);
            return CFAISS_OK;
        }
        target->search(n, x, k, distances, labels, call.chosen);
        if (idmap) translate_labels(idmap, size_t(n * k), labels);
        return CFAISS_OK;
    });
}

cfaiss_status cfaiss_index_range_search(const cfaiss_index* index, int64_t n, const float* x, float radius,
                                        const cfaiss_search_params* params, cfaiss_range_result** out) {
    if (!index || !out || n < 0 || (n > 0 && !x)) return fail(CFAISS_INVALID_ARGUMENT, "bad range search arguments");
    *out = nullptr;
    return guarded(CFAISS_UNSUPPORTED, [&] {
        const faiss::IndexIDMap* idmap = as_idmap(unwrap(index));
        const faiss::Index* target = search_target(unwrap(index));
        bool filtered = has_filter(params);
        std::vector<idx_t> allowed = allowed_for_target(idmap, params);
        faiss::IDSelectorBatch selector(allowed.size(), allowed.data());
        CallParams call;
        std::string problem = prepare_params(target, params, filtered ? &selector : nullptr, call);
        if (!problem.empty()) return fail(CFAISS_INVALID_ARGUMENT, problem);
        ScopedEfSearch ef_scope(target, params);

        faiss::RangeSearchResult result{idx_t(n)};
        target->range_search(n, x, radius, &result, call.chosen);

        // Copy into malloc'ed arrays, dropping ids the filter excludes if the index ignored the selector.
        std::unordered_set<idx_t> allowed_set(allowed.begin(), allowed.end());
        std::unique_ptr<cfaiss_range_result, void (*)(cfaiss_range_result*)> owner(
            static_cast<cfaiss_range_result*>(std::calloc(1, sizeof(cfaiss_range_result))), cfaiss_range_result_free);
        auto res = owner.get();
        if (!res) throw std::bad_alloc();
        res->nq = n;
        res->lims = static_cast<int64_t*>(std::malloc(sizeof(int64_t) * size_t(n + 1)));
        size_t total = result.lims[n];
        res->labels = static_cast<int64_t*>(std::malloc(sizeof(int64_t) * std::max<size_t>(total, 1)));
        res->distances = static_cast<float*>(std::malloc(sizeof(float) * std::max<size_t>(total, 1)));
        if (!res->lims || !res->labels || !res->distances) throw std::bad_alloc();
        size_t kept = 0;
        res->lims[0] = 0;
        for (int64_t q = 0; q < n; q++) {
            for (size_t j = result.lims[q]; j < result.lims[q + 1]; j++) {
                idx_t label = result.labels[j];
                if (filtered && !allowed_set.count(label)) continue;
                res->labels[kept] = idmap ? external_id(idmap, label) : label;
                res->distances[kept] = result.distances[j];
                kept++;
            }
            res->lims[q + 1] = int64_t(kept);
        }
        *out = owner.release();
        return CFAISS_OK;
    });
}

void cfaiss_range_result_free(cfaiss_range_result* result) {
    if (!result) return;
    std::free(result->lims);
    std::free(result->labels);
    std::free(result->distances);
    std::free(result);
}

cfaiss_status cfaiss_index_reconstruct(const cfaiss_index* index, int64_t id, float* out) {
    if (!index || !out) return fail(CFAISS_INVALID_ARGUMENT, "null argument");
    return guarded(CFAISS_UNSUPPORTED, [&] {
        const faiss::Index* i = unwrap(index);
        if (auto ivf = dynamic_cast<const faiss::IndexIVF*>(i)) {
            // Scan the lists rather than building a direct map: that would mutate an index others may be reading.
            for (size_t list = 0; list < ivf->nlist; list++) {
                size_t size = ivf->invlists->list_size(list);
                if (size == 0) continue;
                faiss::InvertedLists::ScopedIds ids(ivf->invlists, list);
                for (size_t j = 0; j < size; j++) {
                    if (ids[j] == id) {
                        ivf->reconstruct_from_offset(int64_t(list), int64_t(j), out);
                        return CFAISS_OK;
                    }
                }
            }
            return fail(CFAISS_INVALID_ARGUMENT, "id " + std::to_string(id) + " is not in the index");
        }
        if (auto m = dynamic_cast<const faiss::IndexIDMap2*>(i)) {
            if (!m->rev_map.count(id)) return fail(CFAISS_INVALID_ARGUMENT, "id " + std::to_string(id) + " is not in the index");
        } else if (!as_idmap(i) && (id < 0 || id >= i->ntotal)) {
            return fail(CFAISS_INVALID_ARGUMENT, "id " + std::to_string(id) + " is not in the index");
        }
        i->reconstruct(id, out);
        return CFAISS_OK;
    });
}

cfaiss_status cfaiss_write_index_file(const cfaiss_index* index, const char* path) {
    if (!index || !path) return fail(CFAISS_INVALID_ARGUMENT, "null argument");
    return guarded(CFAISS_IO_ERROR, [&] {
        // FAISS's FileIOWriter only prints a failed fclose; serialise to memory and check every step ourselves.
        faiss::VectorIOWriter writer;
        faiss::write_index(unwrap(index), &writer);
        std::string problem = write_file_checked(path, writer.data.data(), writer.data.size());
        if (!problem.empty()) return fail(CFAISS_IO_ERROR, problem);
        return CFAISS_OK;
    });
}

cfaiss_status cfaiss_read_index_file(const char* path, int mmap, cfaiss_index** out) {
    if (!path || !out) return fail(CFAISS_INVALID_ARGUMENT, "null argument");
    *out = nullptr;
    last_defect = 0;
    return guarded(CFAISS_IO_ERROR, [&] {
        MappedFile file;
        std::string problem = file.open(path);
        if (!problem.empty()) return fail(CFAISS_IO_ERROR, problem);
        cfaiss_status status = check_bytes(file.data, file.size);
        if (status != CFAISS_OK) return status;
        std::unique_ptr<faiss::Index> index;
        if (mmap) {
            // FAISS maps the inverted lists from the file by name (the bytes were checked just above).
            index.reset(faiss::read_index(path, faiss::IO_FLAG_MMAP | faiss::IO_FLAG_SKIP_PRECOMPUTE_TABLE));
        } else {
            SpanReader reader(file.data, file.size, path);
            index.reset(faiss::read_index(&reader, faiss::IO_FLAG_SKIP_PRECOMPUTE_TABLE));
        }
        precompute_tables(index.get(), file.size);
        adopt_own_search(index);
        advise_graph_memory(index.get());
        *out = wrap(index.release());
        return CFAISS_OK;
    });
}

cfaiss_status cfaiss_write_index_buffer(const cfaiss_index* index, uint8_t** data, size_t* size) {
    if (!index || !data || !size) return fail(CFAISS_INVALID_ARGUMENT, "null argument");
    *data = nullptr;
    *size = 0;
    return guarded(CFAISS_IO_ERROR, [&] {
        faiss::VectorIOWriter writer;
        faiss::write_index(unwrap(index), &writer);
        auto buffer = static_cast<uint8_t*>(std::malloc(std::max<size_t>(writer.data.size(), 1)));
        if (!buffer) throw std::bad_alloc();
        std::memcpy(buffer, writer.data.data(), writer.data.size());
        *data = buffer;
        *size = writer.data.size();
        return CFAISS_OK;
    });
}

cfaiss_status cfaiss_read_index_buffer(const uint8_t* data, size_t size, cfaiss_index** out) {
    if (!data || !out) return fail(CFAISS_INVALID_ARGUMENT, "null argument");
    *out = nullptr;
    last_defect = 0;
    return guarded(CFAISS_IO_ERROR, [&] {
        cfaiss_status status = check_bytes(data, size);
        if (status != CFAISS_OK) return status;
        SpanReader reader(data, size, "buffer");
        std::unique_ptr<faiss::Index> index(faiss::read_index(&reader, faiss::IO_FLAG_SKIP_PRECOMPUTE_TABLE));
        precompute_tables(index.get(), size);
        adopt_own_search(index);
        advise_graph_memory(index.get());
        *out = wrap(index.release());
        return CFAISS_OK;
    });
}

cfaiss_status cfaiss_check_index_buffer(const uint8_t* data, size_t size) {
    if (!data && size > 0) return fail(CFAISS_INVALID_ARGUMENT, "null argument");
    last_error.clear();
    last_defect = 0;
    return check_bytes(data, size);
}

int cfaiss_last_file_defect(void) { return last_defect; }

void cfaiss_buffer_free(uint8_t* data) { std::free(data); }

// Batches of 2-19 queries through BLAS: in Debian's 1.7.3 the non-BLAS loop is scalar, and measured on this
// package's gallery indexes a batch of 16 took 8-24x longer that way (single threaded: 23.5 vs 1.1 ms at 10k x
// 128-d, 240 vs 25 ms at 100k). Single queries stay on the loop: BLAS halves them at 10k x 128-d IP, but is
// slower at 100k and for the 34-d L2 pose index (it computes every base norm per call).
[[maybe_unused]] static const bool blas_threshold_set = (faiss::distance_compute_blas_threshold = 2, true);

void cfaiss_set_distance_blas_threshold(int queries) { faiss::distance_compute_blas_threshold = queries > 1 ? queries : 1; }
int cfaiss_get_distance_blas_threshold(void) { return faiss::distance_compute_blas_threshold; }

void cfaiss_set_num_threads(int threads) { omp_set_num_threads(threads > 0 ? threads : 1); }
int cfaiss_get_num_threads(void) { return omp_get_max_threads(); }

}  // extern "C"
