// A reader that walks a FAISS 1.7.3 index file the way faiss::read_index does (impl/index_read.cpp), without
// allocating anything the file does not pay for, and refuses the file at the first count or size that FAISS
// would trust blindly: a vector length past the end of the file, an ntotal that disagrees with the stored codes,
// HNSW links outside the graph, inverted lists that do not add up, ids outside 0 ..< 2^63. FAISS is only called on
// files that pass, so it neither allocates gigabytes for an 84-byte file nor reads out of bounds later (some of
// those reads happen inside OpenMP regions, where an exception would terminate the process).
//
// Accepted types: Flat (IxFI, IxF2, IxFl), IDMap/IDMap2 (IxMp, IxM2), HNSW over Flat/PQ/SQ storage (IHNf, IHNp,
// IHNs), IVF Flat/PQ/SQ (IwFl, IwPQ, IwSQ, IwSq) with array inverted lists (ilar), PQ (IxPq, IxPQ, IxPo),
// SQ (IxSQ) and LSH (IxHe). Anything else is refused with its fourcc.

#include "index_check.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace cfaiss_check {
namespace {

struct Failure {
    Defect defect;
    std::string message;
};

[[noreturn]] void refuse(Defect defect, std::string message) { throw Failure{defect, std::move(message)}; }

constexpr uint32_t fourcc(const char (&s)[5]) {
    return uint32_t(uint8_t(s[0])) | uint32_t(uint8_t(s[1])) << 8 | uint32_t(uint8_t(s[2])) << 16 |
           uint32_t(uint8_t(s[3])) << 24;
}

std::string fourcc_name(uint32_t h) {
    std::string name;
    for (int i = 0; i < 4; i++) {
        char c = char((h >> (8 * i)) & 0xff);
        name += (c >= 0x20 && c < 0x7f) ? c : '?';
    }
    return "'" + name + "'";
}

template <typename T>
std::string str(T value) {
    return std::to_string(value);
}

constexpr uint64_t max_count = uint64_t{1} << 40;  // FAISS's own limit on a stored vector's length

// A position in the file's bytes; every read is bounds-checked against what is left.
class Cursor {
   public:
    Cursor(const uint8_t* data, size_t size) : data_(data), size_(size) {}

    size_t position() const { return pos_; }
    size_t left() const { return size_ - pos_; }

    void need(uint64_t bytes, const std::string& what) const {
        if (bytes > left())
            refuse(Defect::truncated, "the file ends inside " + what + " (byte " + str(pos_) + ": " + str(bytes) +
                                          " bytes needed, " + str(left()) + " left)");
    }

    template <typename T>
    T read(const std::string& what) {
        need(sizeof(T), what);
        T value;
        std::memcpy(&value, data_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return value;
    }

    bool read_bool(const std::string& what) {
        uint8_t b = read<uint8_t>(what);
        if (b > 1) refuse(Defect::out_of_range, what + " is " + str(int(b)) + ", not 0 or 1");
        return b == 1;
    }

    // A FAISS vector: a 64-bit element count, then the elements. Returns the count; `start` gets the elements.
    uint64_t array(size_t element_size, const std::string& what, const uint8_t** start = nullptr) {
        uint64_t count = read<uint64_t>(what + " length");
        if (count >= max_count) refuse(Defect::out_of_range, what + " length " + str(count) + " is not below 2^40");
        if (count > left() / element_size)
            refuse(Defect::truncated, "the file ends inside " + what + ": " + str(count) + " entries of " +
                                          str(element_size) + " bytes, " + str(left()) + " bytes left");
        if (start) *start = data_ + pos_;
        pos_ += size_t(count * element_size);
        return count;
    }

    void skip(uint64_t bytes, const std::string& what) {
        need(bytes, what);
        pos_ += size_t(bytes);
    }

    const uint8_t* here() const { return data_ + pos_; }

   private:
    const uint8_t* data_;
    size_t size_;
    size_t pos_ = 0;
};

template <typename T>
T element(const uint8_t* base, uint64_t i) {
    T value;
    std::memcpy(&value, base + i * sizeof(T), sizeof(T));
    return value;
}

// Where an index sits decides which types may appear there.
enum class Role { top, idmap_inner, ivf_quantizer, hnsw_flat_storage, hnsw_pq_storage, hnsw_sq_storage };

struct Info {
    uint32_t type = 0;
    int64_t d = 0;
    int64_t ntotal = 0;
    bool trained = false;
    int32_t metric = 0;
    uint64_t pq_M = 0, pq_ksub = 0;  // PQ storage only
    int64_t max_list_id = -1;        // IVF only: the largest id in the inverted lists
};

struct Checker {
    Cursor cursor;
    size_t budget;

    Info header(uint32_t type, const std::string& name) {
        Info info;
        info.type = type;
        int32_t d = cursor.read<int32_t>(name + " dimension");
        if (d < 1 || d > max_dimension)
            refuse(Defect::out_of_range, name + ": dimension " + str(d) + " is outside 1..." + str(max_dimension));
        info.d = d;
        info.ntotal = cursor.read<int64_t>(name + " ntotal");
        if (info.ntotal < 0 || uint64_t(info.ntotal) >= max_count)
            refuse(Defect::out_of_range, name + ": ntotal " + str(info.ntotal) + " is outside 0 ..< 2^40");
        cursor.skip(16, name + " header");
        info.trained = cursor.read_bool(name + " is_trained");
        info.metric = cursor.read<int32_t>(name + " metric type");
        if (info.metric != 0 && info.metric != 1)
            refuse(Defect::out_of_range, name + ": metric type " + str(info.metric) +
                                             " is not supported (0 inner product or 1 L2)");
        return info;
    }

    void expect(bool ok, const std::string& message) {
        if (!ok) refuse(Defect::inconsistent, message);
    }

    // Codecs whose search reads trained parameters may hold vectors only once trained.
    void expect_trained_if_filled(const Info& info, const std::string& name) {
        expect(info.trained || info.ntotal == 0, name + ": an untrained index holds " + str(info.ntotal) + " vectors");
    }

    Info index(Role role, const std::string& where) {
        uint32_t h = cursor.read<uint32_t>(where + " type");
        std::string name = where + " " + fourcc_name(h);
        bool flat = h == fourcc("IxFI") || h == fourcc("IxF2") || h == fourcc("IxFl");
        bool hnsw = h == fourcc("IHNf") || h == fourcc("IHNp") || h == fourcc("IHNs");
        bool ivf = h == fourcc("IwFl") || h == fourcc("IwPQ") || h == fourcc("IwSQ") || h == fourcc("IwSq");
        bool pq = h == fourcc("IxPq") || h == fourcc("IxPQ") || h == fourcc("IxPo");
        bool sq = h == fourcc("IxSQ");
        bool lsh = h == fourcc("IxHe");
        bool idmap = h == fourcc("IxMp") || h == fourcc("IxM2");
        if (!(flat || hnsw || ivf || pq || sq || lsh || idmap))
            refuse(Defect::unknown_type, name + " is not an index type DMLKit reads (Flat, IDMap, HNSW, IVF Flat/PQ/SQ, "
                                                "PQ, SQ, LSH)");
        bool allowed = true;
        switch (role) {
            case Role::top: break;
            case Role::idmap_inner: allowed = !idmap; break;
            case Role::ivf_quantizer: allowed = flat || h == fourcc("IHNf"); break;
            case Role::hnsw_flat_storage: allowed = flat; break;
            case Role::hnsw_pq_storage: allowed = pq; break;
            case Role::hnsw_sq_storage: allowed = sq; break;
        }
        if (!allowed) refuse(Defect::unknown_type, name + " cannot appear here");
        if (flat) return check_flat(h, name);
        if (hnsw) return check_hnsw(h, name);
        if (ivf) return check_ivf(h, name);
        if (pq) return check_pq_index(h, name);
        if (sq) return check_sq_index(h, name);
        if (lsh) return check_lsh(h, name);
        return check_idmap(h, name);
    }

    Info check_flat(uint32_t h, const std::string& name) {
        Info info = header(h, name);
        expect(!(h == fourcc("IxFI") && info.metric != 0) && !(h == fourcc("IxF2") && info.metric != 1),
               name + ": the type names one metric, the header another (" + str(info.metric) + ")");
        uint64_t floats = cursor.array(4, name + " vectors");
        expect(floats == uint64_t(info.ntotal) * uint64_t(info.d),
               name + ": ntotal " + str(info.ntotal) + " x dimension " + str(info.d) + " needs " +
                   str(uint64_t(info.ntotal) * uint64_t(info.d)) + " floats, the file stores " + str(floats));
        return info;
    }

    // ---- quantizers ----

    struct PQ {
        uint64_t M, nbits, ksub, code_size;
    };

    PQ product_quantizer(const Info& index, const std::string& name) {
        uint64_t d = cursor.read<uint64_t>(name + " PQ dimension");
        uint64_t M = cursor.read<uint64_t>(name + " PQ M");
        uint64_t nbits = cursor.read<uint64_t>(name + " PQ nbits");
        expect(d == uint64_t(index.d), name + ": PQ dimension " + str(d) + " differs from the index dimension " + str(index.d));
        if (M < 1 || M > d) refuse(Defect::out_of_range, name + ": PQ M " + str(M) + " is outside 1..." + str(d));
        expect(d % M == 0, name + ": PQ M " + str(M) + " does not divide the dimension " + str(d));
        if (nbits < 1 || nbits > 16) refuse(Defect::out_of_range, name + ": PQ nbits " + str(nbits) + " is outside 1...16");
        PQ pq{M, nbits, uint64_t{1} << nbits, (nbits * M + 7) / 8};
        uint64_t centroids = cursor.array(4, name + " PQ centroids");
        expect(centroids == d * pq.ksub, name + ": PQ centroids hold " + str(centroids) + " floats, dimension x 2^nbits is " +
                                             str(d * pq.ksub));
        return pq;
    }

    uint64_t scalar_quantizer(const Info& index, const std::string& name) {
        int32_t qtype = cursor.read<int32_t>(name + " SQ type");
        if (qtype < 0 || qtype > 6) refuse(Defect::out_of_range, name + ": scalar quantizer type " + str(qtype) + " is unknown");
        int32_t rangestat = cursor.read<int32_t>(name + " SQ range statistic");
        if (rangestat < 0 || rangestat > 3)
            refuse(Defect::out_of_range, name + ": scalar quantizer range statistic " + str(rangestat) + " is unknown");
        cursor.read<float>(name + " SQ range argument");
        uint64_t d = cursor.read<uint64_t>(name + " SQ dimension");
        uint64_t code_size = cursor.read<uint64_t>(name + " SQ code size");
        expect(d == uint64_t(index.d), name + ": SQ dimension " + str(d) + " differs from the index dimension " + str(index.d));
        uint64_t expected_code = 0, expected_trained = 0;
        switch (qtype) {
            case 0: expected_code = d; expected_trained = 2 * d; break;            // 8 bit
            case 1: expected_code = (d + 1) / 2; expected_trained = 2 * d; break;  // 4 bit
            case 2: expected_code = d; expected_trained = 2; break;                // 8 bit uniform
            case 3: expected_code = (d + 1) / 2; expected_trained = 2; break;      // 4 bit uniform
            case 4: expected_code = 2 * d; break;                                  // fp16
            case 5: expected_code = d; break;                                      // 8 bit direct
            default: expected_code = (d * 6 + 7) / 8; expected_trained = 2 * d;    // 6 bit
        }
        expect(code_size == expected_code, name + ": SQ code size " + str(code_size) + " should be " + str(expected_code));
        uint64_t trained = cursor.array(4, name + " SQ ranges");
        expect(trained == expected_trained || (!index.trained && trained == 0),
               name + ": SQ ranges hold " + str(trained) + " floats, expected " + str(expected_trained));
        return code_size;
    }

    // ---- plain codecs ----

    Info check_pq_index(uint32_t h, const std::string& name) {
        Info info = header(h, name);
        PQ pq = product_quantizer(info, name);
        uint64_t codes = cursor.array(1, name + " codes");
        expect(codes == uint64_t(info.ntotal) * pq.code_size,
               name + ": ntotal " + str(info.ntotal) + " needs " + str(uint64_t(info.ntotal) * pq.code_size) +
                   " code bytes, the file stores " + str(codes));
        if (h != fourcc("IxPQ")) {
            int32_t search_type = cursor.read<int32_t>(name + " search type");
            if (search_type != 0)
                refuse(Defect::out_of_range, name + ": PQ search type " + str(search_type) + " is not supported (only 0)");
            cursor.read_bool(name + " encode_signs");
            cursor.read<int32_t>(name + " polysemous_ht");
        }
        if (h != fourcc("IxPq")) info.metric = 1;  // FAISS forces L2 on the legacy formats
        expect_trained_if_filled(info, name);
        info.pq_M = pq.M;
        info.pq_ksub = pq.ksub;
        return info;
    }

    Info check_sq_index(uint32_t h, const std::string& name) {
        Info info = header(h, name);
        uint64_t code_size = scalar_quantizer(info, name);
        uint64_t codes = cursor.array(1, name + " codes");
        expect(codes == uint64_t(info.ntotal) * code_size,
               name + ": ntotal " + str(info.ntotal) + " needs " + str(uint64_t(info.ntotal) * code_size) +
                   " code bytes, the file stores " + str(codes));
        expect_trained_if_filled(info, name);  // decoding reads the trained ranges
        return info;
    }

    Info check_lsh(uint32_t h, const std::string& name) {
        Info info = header(h, name);
        int32_t nbits = cursor.read<int32_t>(name + " nbits");
        if (nbits < 1 || nbits > max_dimension)
            refuse(Defect::out_of_range, name + ": nbits " + str(nbits) + " is outside 1..." + str(max_dimension));
        bool rotate = cursor.read_bool(name + " rotate_data");
        bool train_thresholds = cursor.read_bool(name + " train_thresholds");
        uint64_t thresholds = cursor.array(4, name + " thresholds");
        expect(thresholds == (train_thresholds ? uint64_t(nbits) : 0) || (!info.trained && thresholds == 0),
               name + ": " + str(thresholds) + " thresholds for " + str(nbits) + " bits");
        int32_t code_size = cursor.read<int32_t>(name + " code size");
        expect(code_size == (nbits + 7) / 8, name + ": code size " + str(code_size) + " should be " + str((nbits + 7) / 8));
        uint32_t t = cursor.read<uint32_t>(name + " rotation type");
        if (t != fourcc("rrot")) refuse(Defect::unknown_type, name + ": expected a random rotation 'rrot', found " + fourcc_name(t));
        bool bias = cursor.read_bool(name + " rotation have_bias");
        uint64_t a = cursor.array(4, name + " rotation matrix");
        uint64_t b = cursor.array(4, name + " rotation bias");
        int32_t d_in = cursor.read<int32_t>(name + " rotation input dimension");
        int32_t d_out = cursor.read<int32_t>(name + " rotation output dimension");
        bool rotation_trained = cursor.read_bool(name + " rotation is_trained");
        expect(d_in == info.d && d_out == nbits, name + ": the rotation maps " + str(d_in) + " to " + str(d_out) +
                                                     " dimensions, the index " + str(info.d) + " to " + str(nbits));
        uint64_t full = uint64_t(d_in) * uint64_t(d_out);
        expect(a == full || (!rotation_trained && a == 0), name + ": rotation matrix holds " + str(a) + " floats, expected " + str(full));
        expect(!rotate || rotation_trained, name + ": rotates data with an untrained rotation");
        // Without rotation FAISS keeps the first nbits components (and asserts nbits <= d).
        expect(rotate || nbits <= info.d, name + ": " + str(nbits) + " bits from " + str(info.d) + " dimensions without rotation");
        expect(!bias || b >= uint64_t(d_out), name + ": rotation bias holds " + str(b) + " floats, expected " + str(d_out));
        uint64_t codes = cursor.array(1, name + " codes");
        expect(codes == uint64_t(info.ntotal) * uint64_t(code_size),
               name + ": ntotal " + str(info.ntotal) + " needs " + str(uint64_t(info.ntotal) * uint64_t(code_size)) +
                   " code bytes, the file stores " + str(codes));
        expect_trained_if_filled(info, name);  // searching reads the trained thresholds
        return info;
    }

    // ---- wrappers ----

    Info check_idmap(uint32_t h, const std::string& name) {
        Info info = header(h, name);
        Info inner = index(Role::idmap_inner, name + " > inner index");
        expect(inner.d == info.d, name + ": inner index dimension " + str(inner.d) + " differs from " + str(info.d));
        expect(inner.metric == info.metric, name + ": inner index metric differs from the map's");
        expect(inner.ntotal == info.ntotal, name + ": ntotal " + str(info.ntotal) + " but the inner index holds " + str(inner.ntotal));
        // Under a map, an IVF's list ids are positions into the id map.
        expect(inner.max_list_id < info.ntotal,
               name + ": the inner index stores position " + str(inner.max_list_id) + " for an id map of " + str(info.ntotal));
        const uint8_t* ids = nullptr;
        uint64_t count = cursor.array(8, name + " id map", &ids);
        expect(count == uint64_t(info.ntotal), name + ": the id map holds " + str(count) + " ids for ntotal " + str(info.ntotal));
        std::vector<int64_t> sorted;
        if (h == fourcc("IxM2")) sorted.reserve(size_t(count));
        for (uint64_t i = 0; i < count; i++) {
            int64_t id = element<int64_t>(ids, i);
            if (id < 0) refuse(Defect::out_of_range, name + ": id map entry " + str(i) + " is negative (" + str(id) + ")");
            if (h == fourcc("IxM2")) sorted.push_back(id);
        }
        std::sort(sorted.begin(), sorted.end());
        auto dup = std::adjacent_find(sorted.begin(), sorted.end());
        if (dup != sorted.end()) refuse(Defect::inconsistent, name + ": id " + str(*dup) + " appears twice in the id map");
        expect(!info.trained || inner.trained, name + ": the map is trained but its inner index is not");
        return info;
    }

    Info check_hnsw(uint32_t h, const std::string& name) {
        Info info = header(h, name);
        uint64_t n = uint64_t(info.ntotal);
        const uint8_t *probas, *cum, *levels, *offsets, *neighbors;
        uint64_t n_probas = cursor.array(8, name + " level probabilities", &probas);
        uint64_t n_cum = cursor.array(4, name + " neighbours per level", &cum);
        uint64_t n_levels = cursor.array(4, name + " node levels", &levels);
        uint64_t n_offsets = cursor.array(8, name + " neighbour offsets", &offsets);
        uint64_t n_neighbors = cursor.array(4, name + " neighbour lists", &neighbors);
        int32_t entry = cursor.read<int32_t>(name + " entry point");
        int32_t max_level = cursor.read<int32_t>(name + " max level");
        int32_t ef_construction = cursor.read<int32_t>(name + " efConstruction");
        int32_t ef_search = cursor.read<int32_t>(name + " efSearch");
        int32_t upper_beam = cursor.read<int32_t>(name + " upper_beam");

        expect(n_cum >= 2 && n_probas == n_cum - 1,
               name + ": " + str(n_probas) + " level probabilities for " + str(n_cum) + " cumulative neighbour counts");
        for (uint64_t l = 0; l < n_probas; l++) {
            double p = element<double>(probas, l);
            if (!(p >= 0 && p <= 1)) refuse(Defect::out_of_range, name + ": level probability " + str(l) + " is not in 0...1");
        }
        int32_t previous = 0;
        for (uint64_t l = 0; l < n_cum; l++) {
            int32_t c = element<int32_t>(cum, l);
            expect(l == 0 ? c == 0 : c >= previous, name + ": cumulative neighbour counts are not increasing from 0");
            previous = c;
        }
        int64_t level_count = int64_t(n_cum) - 1;
        expect(n_levels == n, name + ": " + str(n_levels) + " node levels for ntotal " + str(n));
        expect(n_offsets == n + 1, name + ": " + str(n_offsets) + " neighbour offsets for ntotal " + str(n));
        expect(element<uint64_t>(offsets, 0) == 0, name + ": the first neighbour offset is not 0");
        for (uint64_t i = 0; i < n; i++) {
            int32_t level = element<int32_t>(levels, i);
            if (level < 1 || level > level_count)
                refuse(Defect::out_of_range, name + ": node " + str(i) + " has level " + str(level) + ", outside 1..." + str(level_count));
            uint64_t begin = element<uint64_t>(offsets, i), end = element<uint64_t>(offsets, i + 1);
            expect(end >= begin && end - begin == uint64_t(element<int32_t>(cum, uint64_t(level))),
                   name + ": node " + str(i) + " has " + str(end - begin) + " neighbour slots for level " + str(level));
        }
        expect(element<uint64_t>(offsets, n) == n_neighbors,
               name + ": offsets end at " + str(element<uint64_t>(offsets, n)) + " but " + str(n_neighbors) + " neighbours are stored");
        // Every link points into the graph, at a node that lives on the link's level.
        for (uint64_t i = 0; i < n; i++) {
            int32_t level = element<int32_t>(levels, i);
            uint64_t base = element<uint64_t>(offsets, i);
            for (int32_t l = 0; l < level; l++) {
                uint64_t from = base + uint64_t(element<int32_t>(cum, uint64_t(l)));
                uint64_t to = base + uint64_t(element<int32_t>(cum, uint64_t(l + 1)));
                for (uint64_t j = from; j < to; j++) {
                    int32_t v = element<int32_t>(neighbors, j);
                    if (v < 0) continue;
                    expect(uint64_t(v) < n, name + ": node " + str(i) + " links to node " + str(v) + " of " + str(n));
                    expect(element<int32_t>(levels, uint64_t(v)) > l,
                           name + ": node " + str(i) + " links on level " + str(l) + " to node " + str(v) + " below it");
                }
            }
        }
        if (n == 0) {
            expect(entry == -1 && max_level == -1, name + ": an empty graph with entry point " + str(entry) + ", max level " + str(max_level));
        } else {
            expect(entry >= 0 && uint64_t(entry) < n, name + ": entry point " + str(entry) + " is outside the " + str(n) + " nodes");
            expect(max_level == element<int32_t>(levels, uint64_t(entry)) - 1,
                   name + ": max level " + str(max_level) + " is not the entry point's level");
        }
        for (auto [value, field] : {std::pair{ef_construction, "efConstruction"}, {ef_search, "efSearch"}, {upper_beam, "upper_beam"}}) {
            if (value < 1 || value > max_ef)
                refuse(Defect::out_of_range, name + ": " + field + " " + str(value) + " is outside 1..." + str(max_ef));
        }

        Role role = h == fourcc("IHNf") ? Role::hnsw_flat_storage : h == fourcc("IHNp") ? Role::hnsw_pq_storage : Role::hnsw_sq_storage;
        Info storage = index(role, name + " > storage");
        expect(storage.d == info.d, name + ": storage dimension " + str(storage.d) + " differs from " + str(info.d));
        expect(storage.ntotal == info.ntotal, name + ": ntotal " + str(info.ntotal) + " but the storage holds " + str(storage.ntotal));
        expect(storage.metric == info.metric, name + ": storage metric differs from the graph's");
        expect(!info.trained || storage.trained, name + ": the graph is trained but its storage is not");
        if (role == Role::hnsw_pq_storage) {
            // FAISS builds an M x ksub x ksub float table for HNSW over PQ.
            uint64_t table = storage.pq_M * storage.pq_ksub * storage.pq_ksub * 4;
            if (table > budget)
                refuse(Defect::out_of_range, name + ": the PQ distance table would take " + str(table) + " bytes");
        }
        return info;
    }

    // ---- IVF ----

    struct ListEntry {
        int64_t value;  // (list << 32 | offset), or -1
        uint64_t index;
    };

    Info check_ivf(uint32_t h, const std::string& name) {
        Info info = header(h, name);
        uint64_t nlist = cursor.read<uint64_t>(name + " nlist");
        if (nlist < 1 || nlist > (uint64_t{1} << 32))
            refuse(Defect::out_of_range, name + ": nlist " + str(nlist) + " is outside 1...2^32");
        if (nlist * 64 > budget)
            refuse(Defect::out_of_range, name + ": nlist " + str(nlist) + " is too large for a " + str(cursor.position() + cursor.left()) +
                                             "-byte file");
        uint64_t nprobe = cursor.read<uint64_t>(name + " nprobe");
        if (nprobe < 1 || nprobe >= max_count) refuse(Defect::out_of_range, name + ": nprobe " + str(nprobe) + " is outside 1 ..< 2^40");
        Info quantizer = index(Role::ivf_quantizer, name + " > quantizer");
        expect(quantizer.d == info.d, name + ": quantizer dimension " + str(quantizer.d) + " differs from " + str(info.d));
        expect(uint64_t(quantizer.ntotal) == nlist || (!info.trained && quantizer.ntotal == 0),
               name + ": the quantizer holds " + str(quantizer.ntotal) + " centroids for nlist " + str(nlist));
        expect(info.trained || info.ntotal == 0, name + ": an untrained index holds " + str(info.ntotal) + " vectors");

        // Direct map: none, an array indexed by id, or a hash table of (id, list entry).
        std::vector<ListEntry> entries;
        int8_t map_type = cursor.read<int8_t>(name + " direct map type");
        if (map_type < 0 || map_type > 2) refuse(Defect::out_of_range, name + ": direct map type " + str(int(map_type)) + " is unknown");
        const uint8_t* array = nullptr;
        uint64_t array_size = cursor.array(8, name + " direct map", &array);
        expect(map_type == 1 ? array_size == uint64_t(info.ntotal) : array_size == 0,
               name + ": direct map of type " + str(int(map_type)) + " holds " + str(array_size) + " entries");
        for (uint64_t i = 0; i < array_size; i++) entries.push_back({element<int64_t>(array, i), i});
        if (map_type == 2) {
            const uint8_t* pairs = nullptr;
            uint64_t count = cursor.array(16, name + " direct map table", &pairs);
            expect(count <= uint64_t(info.ntotal), name + ": direct map table holds " + str(count) + " entries");
            for (uint64_t i = 0; i < count; i++) entries.push_back({element<int64_t>(pairs, 2 * i + 1), i});
        }

        uint64_t code_size = 0;
        if (h == fourcc("IwFl")) {
            code_size = uint64_t(info.d) * 4;
        } else if (h == fourcc("IwPQ")) {
            cursor.read_bool(name + " by_residual");
            code_size = cursor.read<uint64_t>(name + " code size");
            PQ pq = product_quantizer(info, name);
            expect(code_size == pq.code_size, name + ": code size " + str(code_size) + " but the PQ makes " + str(pq.code_size));
        } else {
            uint64_t sq_code = scalar_quantizer(info, name);
            code_size = cursor.read<uint64_t>(name + " code size");
            expect(code_size == sq_code, name + ": code size " + str(code_size) + " but the SQ makes " + str(sq_code));
            if (h == fourcc("IwSq")) cursor.read_bool(name + " by_residual");
        }
        std::vector<uint64_t> sizes = inverted_lists(info, nlist, code_size, name, &info.max_list_id);
        for (const auto& e : entries) {
            if (e.value == -1) continue;
            uint64_t list = uint64_t(e.value) >> 32, offset = uint64_t(e.value) & 0xffffffffu;
            expect(e.value >= 0 && list < nlist && offset < sizes[size_t(list)],
                   name + ": direct map entry " + str(e.index) + " points outside the inverted lists");
        }
        return info;
    }

    std::vector<uint64_t> inverted_lists(const Info& info, uint64_t nlist, uint64_t code_size, const std::string& ivf,
                                         int64_t* max_id) {
        std::string name = ivf + " > inverted lists";
        uint32_t h = cursor.read<uint32_t>(name + " type");
        if (h != fourcc("ilar"))
            refuse(Defect::unknown_type, name + " of type " + fourcc_name(h) + " are not supported (only 'ilar' arrays)");
        uint64_t lists = cursor.read<uint64_t>(name + " count");
        uint64_t stored_code_size = cursor.read<uint64_t>(name + " code size");
        expect(lists == nlist, name + ": " + str(lists) + " lists for nlist " + str(nlist));
        expect(stored_code_size == code_size, name + ": code size " + str(stored_code_size) + ", the index says " + str(code_size));
        std::vector<uint64_t> sizes(size_t(nlist), 0);
        uint32_t layout = cursor.read<uint32_t>(name + " layout");
        const uint8_t* table = nullptr;
        if (layout == fourcc("full")) {
            uint64_t count = cursor.array(8, name + " sizes", &table);
            expect(count == nlist, name + ": " + str(count) + " list sizes for nlist " + str(nlist));
            for (uint64_t i = 0; i < count; i++) sizes[size_t(i)] = element<uint64_t>(table, i);
        } else if (layout == fourcc("sprs")) {
            uint64_t count = cursor.array(8, name + " sizes", &table);
            expect(count % 2 == 0, name + ": the sparse size table has an odd length " + str(count));
            for (uint64_t i = 0; i < count; i += 2) {
                uint64_t list = element<uint64_t>(table, i);
                if (list >= nlist) refuse(Defect::out_of_range, name + ": size given for list " + str(list) + " of " + str(nlist));
                sizes[size_t(list)] = element<uint64_t>(table, i + 1);
            }
        } else {
            refuse(Defect::unknown_type, name + ": size table layout " + fourcc_name(layout) + " is unknown");
        }
        uint64_t total = 0;
        for (uint64_t i = 0; i < nlist; i++) {
            if (sizes[size_t(i)] > uint64_t(info.ntotal) - total)
                refuse(Defect::inconsistent, name + ": list sizes add up to more than ntotal " + str(info.ntotal));
            total += sizes[size_t(i)];
        }
        expect(total == uint64_t(info.ntotal), name + ": list sizes add up to " + str(total) + ", ntotal is " + str(info.ntotal));
        for (uint64_t i = 0; i < nlist; i++) {
            uint64_t n = sizes[size_t(i)];
            if (n == 0) continue;
            cursor.skip(n * code_size, name + " list " + str(i) + " codes");
            cursor.need(n * 8, name + " list " + str(i) + " ids");
            const uint8_t* ids = cursor.here();
            for (uint64_t j = 0; j < n; j++) {
                int64_t id = element<int64_t>(ids, j);
                if (id < 0) refuse(Defect::out_of_range, name + ": list " + str(i) + " holds a negative id (" + str(id) + ")");
                *max_id = std::max(*max_id, id);
            }
            cursor.skip(n * 8, name + " list " + str(i) + " ids");
        }
        return sizes;
    }
};

}  // namespace

size_t derived_budget(size_t file_size) {
    size_t minimum = size_t{64} << 20;
    return file_size > minimum / 8 ? std::max(minimum, std::min(file_size, SIZE_MAX / 8) * 8) : minimum;
}

Result check_index(const uint8_t* data, size_t size) {
    Checker checker{Cursor(data, size), derived_budget(size)};
    try {
        checker.index(Role::top, "index");
        if (checker.cursor.left() > 0)
            refuse(Defect::trailing_bytes, str(checker.cursor.left()) + " bytes follow the index (at byte " +
                                               str(checker.cursor.position()) + ")");
    } catch (const Failure& f) {
        return Result{f.defect, f.message};
    }
    return Result{};
}

}  // namespace cfaiss_check
