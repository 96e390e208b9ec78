// index_check.h — walks the bytes of a FAISS index file and checks every count and size before FAISS reads it.
// Internal to the shim (not part of the C API).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace cfaiss_check {

/// Why a file was refused (values match cfaiss_file_defect in cfaiss.h).
enum class Defect {
    none = 0,
    truncated = 1,     // the file ends inside a field or an array
    unknown_type = 2,  // a fourcc (index, inverted lists, transform) this reader does not accept
    out_of_range = 3,  // a field outside its sane limits (dimension 0, nbits 40, efSearch -3, ...)
    inconsistent = 4,  // fields that must agree do not (ntotal vs the stored vectors, ids vs ntotal, ...)
    trailing_bytes = 5 // bytes left after the index
};

/// The outcome of a check: `defect == none` when FAISS may read the bytes.
struct Result {
    Defect defect = Defect::none;
    std::string message;
};

/// Largest vector dimension accepted in a file (and by the shim's factory).
constexpr int64_t max_dimension = 1 << 16;
/// Largest HNSW efSearch / efConstruction / upper_beam accepted (FAISS allocates this many heap entries per query).
constexpr int64_t max_ef = 1 << 20;

/// How many bytes FAISS may allocate beyond what the file itself holds (derived tables, inverted-list headers):
/// a few times the file's size, at least 64 MiB.
size_t derived_budget(size_t file_size);

/// Checks `size` bytes holding one FAISS index (and nothing after it).
Result check_index(const uint8_t* data, size_t size);

}  // namespace cfaiss_check
