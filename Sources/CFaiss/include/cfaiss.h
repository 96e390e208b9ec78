/*
 * cfaiss.h — DMLKit's C API over the FAISS C++ library.
 *
 * Debian's libfaiss.a ships no faiss_* C symbols, so this header sits over a small C++ shim (cfaiss.cpp).
 * Rules: no C++ exception crosses this boundary. Every fallible call returns a cfaiss_status; on failure the
 * message is kept per thread and read with cfaiss_last_error() on the same thread.
 * Thread safety: const calls (search, range search, reconstruct, write) may run concurrently on one index;
 * mutating calls (train, add, remove, reset) need exclusive access — DMLIndex's VectorIndex serialises them.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** An opaque FAISS index. */
typedef struct cfaiss_index cfaiss_index;

typedef enum {
    CFAISS_OK = 0,
    CFAISS_INVALID_ARGUMENT = 1, /* rejected by the shim before FAISS saw it */
    CFAISS_FAISS_ERROR = 2,      /* FAISS threw (message says why) */
    CFAISS_IO_ERROR = 3,         /* reading or writing a file or buffer failed */
    CFAISS_OUT_OF_MEMORY = 4,
    CFAISS_UNSUPPORTED = 5,      /* the index type cannot do this */
    CFAISS_BAD_FILE = 6          /* index bytes refused before FAISS read them: cfaiss_last_file_defect() says how */
} cfaiss_status;

/** Why index bytes were refused (after CFAISS_BAD_FILE). */
typedef enum {
    CFAISS_DEFECT_NONE = 0,
    CFAISS_DEFECT_TRUNCATED = 1,      /* the bytes end inside a field or an array (or there are none) */
    CFAISS_DEFECT_UNKNOWN_TYPE = 2,   /* an index, inverted-list or transform type DMLKit does not read */
    CFAISS_DEFECT_OUT_OF_RANGE = 3,   /* a field outside its sane limits (dimension, nbits, efSearch, ids, ...) */
    CFAISS_DEFECT_INCONSISTENT = 4,   /* fields that must agree do not (ntotal vs stored vectors, graph links, ...) */
    CFAISS_DEFECT_TRAILING_BYTES = 5  /* bytes follow the index */
} cfaiss_file_defect;

/** FAISS metric types (values match faiss::MetricType). */
typedef enum { CFAISS_METRIC_INNER_PRODUCT = 0, CFAISS_METRIC_L2 = 1 } cfaiss_metric;

/** The last error message on the calling thread ("" when none). Valid until the next call on this thread. */
const char *cfaiss_last_error(void);

/* ---- lifetime ---- */

/** Builds an index from a factory string (e.g. "Flat", "HNSW32", "IVF1024,Flat"). */
cfaiss_status cfaiss_index_factory(int dimension, const char *description, cfaiss_metric metric, cfaiss_index **out);
/** Wraps an index in an IndexIDMap2 so it accepts arbitrary 64-bit ids (takes ownership of `inner`). */
cfaiss_status cfaiss_index_wrap_idmap(cfaiss_index *inner, cfaiss_index **out);
void cfaiss_index_free(cfaiss_index *index);
/** A deep copy. */
cfaiss_status cfaiss_index_clone(const cfaiss_index *index, cfaiss_index **out);

/* ---- properties ---- */

int cfaiss_index_dimension(const cfaiss_index *index);
int64_t cfaiss_index_ntotal(const cfaiss_index *index);
int cfaiss_index_is_trained(const cfaiss_index *index);
cfaiss_metric cfaiss_index_metric(const cfaiss_index *index);
/** 1 when the index stores caller-given ids (IDMap, IVF); 0 when ids are insertion positions. */
int cfaiss_index_has_own_ids(const cfaiss_index *index);
/** A short type name such as "IDMap2(HNSWFlat)" or "IVFFlat". Copied into buf (NUL-terminated, truncated). */
void cfaiss_index_type_name(const cfaiss_index *index, char *buf, size_t buf_size);
/** The largest stored id, or -1 when the index is empty. */
cfaiss_status cfaiss_index_max_id(const cfaiss_index *index, int64_t *out);
/** The first of `ids` that the index already stores, or -1 when none is (indexes with their own ids only). */
cfaiss_status cfaiss_index_first_present_id(const cfaiss_index *index, int64_t n, const int64_t *ids, int64_t *out);

/* ---- building ---- */

cfaiss_status cfaiss_index_train(cfaiss_index *index, int64_t n, const float *x);
cfaiss_status cfaiss_index_add(cfaiss_index *index, int64_t n, const float *x);
cfaiss_status cfaiss_index_add_with_ids(cfaiss_index *index, int64_t n, const float *x, const int64_t *ids);
/** Removes the given ids; `removed` receives how many were found and removed. */
cfaiss_status cfaiss_index_remove_ids(cfaiss_index *index, int64_t n, const int64_t *ids, int64_t *removed);
cfaiss_status cfaiss_index_reset(cfaiss_index *index);

/* ---- searching ---- */

/** Per-call search parameters. Fields <= 0 (or NULL) keep the index's own setting. */
typedef struct {
    int nprobe;                 /* IVF: inverted lists visited */
    int ef_search;              /* HNSW: candidate list size */
    const int64_t *allowed_ids; /* filtered search: only these ids may be returned */
    int64_t allowed_count;      /* < 0: no filter; 0: nothing allowed */
} cfaiss_search_params;

/** 1 when a search with these parameters must not run concurrently with other calls on the index:
 *  FAISS 1.7.3 ignores a per-call HNSW efSearch, so the shim sets it on the index for the duration of the call.
 *  True for every HNSW search that names an efSearch; searches that keep the index's setting run concurrently. */
int cfaiss_search_needs_exclusive(const cfaiss_index *index, const cfaiss_search_params *params);

/** k nearest neighbours of n queries; distances and labels hold n*k entries (label -1 where fewer than k exist). */
cfaiss_status cfaiss_index_search(const cfaiss_index *index, int64_t n, const float *x, int64_t k,
                                  const cfaiss_search_params *params, float *distances, int64_t *labels);

/** Which code runs k-NN searches DMLKit has its own kernels for: plain Flat indexes (IndexFlat, IndexFlatL2,
 *  IndexFlatIP; also under an IDMap, and the exact pass of filtered HNSW-Flat searches, which runs on the HNSW's
 *  Flat storage), filtered or not, through CDMLKernels' dml_flat_search; unfiltered HNSW-Flat searches through
 *  dml_hnsw_search (FAISS's algorithm and results on FAISS's graph). FAISS: FAISS's own code for both. AUTO is
 *  DMLKit's unless the environment has DMLKIT_SEARCH=faiss (for benches and tests; read once, at the first
 *  search). Other indexes ignore it. */
typedef enum { CFAISS_SEARCH_AUTO = 0, CFAISS_SEARCH_OWN = 1, CFAISS_SEARCH_FAISS = 2 } cfaiss_search_path;

/** cfaiss_index_search with the path named (cfaiss_index_search is this with CFAISS_SEARCH_AUTO). */
cfaiss_status cfaiss_index_search_on_path(const cfaiss_index *index, int64_t n, const float *x, int64_t k,
                                          const cfaiss_search_params *params, float *distances, int64_t *labels,
                                          cfaiss_search_path path);

/** cfaiss_index_add / cfaiss_index_add_with_ids with the path named (those are these with CFAISS_SEARCH_AUTO).
 *  OWN: HNSW-Flat (IndexHNSWFlat over a plain Flat storage, also under IDMap/IDMap2) inserts through CDMLKernels'
 *  dml_hnsw_add, FAISS 1.7.3's insertion on FAISS's arrays (on one thread the same graph, entry for entry; on
 *  several, a graph as valid as FAISS's, which is not deterministic either); FAISS: FAISS's own add. AUTO follows
 *  DMLKIT_SEARCH like the searches. Other indexes ignore it. */
cfaiss_status cfaiss_index_add_on_path(cfaiss_index *index, int64_t n, const float *x, cfaiss_search_path path);
cfaiss_status cfaiss_index_add_with_ids_on_path(cfaiss_index *index, int64_t n, const float *x, const int64_t *ids,
                                                cfaiss_search_path path);

/** IVF indexes whose coarse quantizer is a plain Flat (IVF<n>,Flat|SQ|PQ, also under an IDMap) get DMLKit's exact
 *  search for it (training's k-means, add's assignment and every search's coarse step; files unchanged), following
 *  DMLKIT_SEARCH like the searches above. This names the path for one index (tests; set it before the index is
 *  used from several threads). Returns 0, or -1 where the index has no such quantizer. */
int cfaiss_index_set_quantizer_path(cfaiss_index *index, cfaiss_search_path path);

/** 1 when the index is IVF-Flat (also under an IDMap) scanning its inverted lists with DMLKit's scanner (FAISS's
 *  scan with batched, prefetched distances; the same results), 0 otherwise. The quantizer's path above applies
 *  to this scan too. */
int cfaiss_index_has_own_ivf_scan(const cfaiss_index *index);

/** Range search results: for query i, entries lims[i] ..< lims[i+1] of labels/distances. */
typedef struct {
    int64_t nq;
    int64_t *lims;      /* nq + 1 entries */
    int64_t *labels;
    float *distances;
} cfaiss_range_result;

/** All neighbours within `radius` (L2: squared distance < radius; inner product: similarity > radius). */
cfaiss_status cfaiss_index_range_search(const cfaiss_index *index, int64_t n, const float *x, float radius,
                                        const cfaiss_search_params *params, cfaiss_range_result **out);
void cfaiss_range_result_free(cfaiss_range_result *result);

/** The stored vector for an id (dimension floats). */
cfaiss_status cfaiss_index_reconstruct(const cfaiss_index *index, int64_t id, float *out);

/* ---- persistence (plain FAISS format) ----
 * Reads check the bytes first (cfaiss_check_index_buffer) and give CFAISS_BAD_FILE without calling FAISS when they
 * are refused; FAISS then allocates at most a few times the file's size. Accepted types: Flat, IDMap/IDMap2, HNSW
 * over Flat/PQ/SQ, IVF Flat/PQ/SQ with array inverted lists, PQ, SQ, LSH; dimension at most 65536. */

/** Writes a new file at `path` (truncating one that exists), checking write, fsync and close; on failure the
 *  partial file is removed. Atomic replacement is the caller's job (DMLFiles). */
cfaiss_status cfaiss_write_index_file(const cfaiss_index *index, const char *path);
/** mmap != 0 maps IVF inverted lists from the file instead of reading them (FAISS supports it for IVF only). */
cfaiss_status cfaiss_read_index_file(const char *path, int mmap, cfaiss_index **out);
/** Serialises into a malloc'ed buffer; free it with cfaiss_buffer_free. */
cfaiss_status cfaiss_write_index_buffer(const cfaiss_index *index, uint8_t **data, size_t *size);
cfaiss_status cfaiss_read_index_buffer(const uint8_t *data, size_t size, cfaiss_index **out);
void cfaiss_buffer_free(uint8_t *data);
/** Checks index bytes without reading them into an index: CFAISS_OK, or CFAISS_BAD_FILE with the reason. */
cfaiss_status cfaiss_check_index_buffer(const uint8_t *data, size_t size);
/** The cfaiss_file_defect of the last CFAISS_BAD_FILE on this thread. */
int cfaiss_last_file_defect(void);

/* ---- threads ---- */

/** Sets the OpenMP threads FAISS (and DMLKit's Flat search) use for calls made from the calling thread: libgomp
 *  keeps this setting per thread; other threads keep OMP_NUM_THREADS (or libgomp's default). */
void cfaiss_set_num_threads(int threads);
int cfaiss_get_num_threads(void);

/** FAISS's `distance_compute_blas_threshold`, process-wide: FAISS's Flat k-NN (DMLKIT_SEARCH=faiss) and
 *  range searches of at least this many queries use BLAS, smaller ones FAISS's own loops (scalar in Debian's 1.7.3). The shim sets 2 at load (FAISS: 20). */
void cfaiss_set_distance_blas_threshold(int queries);
int cfaiss_get_distance_blas_threshold(void);

#ifdef __cplusplus
}
#endif
