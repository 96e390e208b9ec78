import CFaiss
import DMLFiles
import Foundation

/// A FAISS vector index with 64-bit ids, validated input and safe concurrent use.
///
/// Searches may run on many threads at once; `train`, `add`, `remove` and `reset` wait for them and run alone.
/// Batch calls take contiguous row-major buffers (`count * dimension` floats) and copy nothing unless the metric
/// is cosine (which normalises a copy). Scores follow `Metric`: inner product / cosine similarity (higher is
/// closer) or squared L2 (lower is closer), exactly as FAISS reports them.
public final class VectorIndex: @unchecked Sendable {
    /// Vector length.
    public let dimension: Int
    /// How vectors are compared.
    public let metric: Metric
    /// The factory string the index was built from, when known (indexes from other tools may not say).
    public let factory: String?

    /// Largest accepted vector dimension (the FAISS file check refuses larger ones too).
    public static let maxDimension = 1 << 16
    /// Largest accepted HNSW efSearch (FAISS allocates a heap of this many entries per query).
    public static let maxEfSearch = 1 << 20

    private let handle: OpaquePointer
    private let lock = ReadWriteLock()
    /// The id `add` without ids gives next; nil once the largest stored id is `Int64.max`.
    private var nextID: Int64?

    // MARK: Creating

    /// Builds an empty index from a FAISS factory string such as `"Flat"`, `"HNSW32"`, `"IVF1024,Flat"`, `"SQ8"`.
    /// Index types that do not store ids themselves are wrapped in an `IDMap2` so every index takes 64-bit ids.
    public convenience init(dimension: Int, factory: String = "Flat", metric: Metric = .innerProduct) throws {
        guard dimension > 0, dimension <= Self.maxDimension else { throw VectorIndexError.invalidDimension(dimension) }
        let trimmed = factory.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { throw VectorIndexError.invalidFactory(factory, reason: "empty factory string") }
        try FactoryString.validate(trimmed, dimension: dimension, metric: metric)
        var raw: OpaquePointer?
        let faissMetric = metric == .l2 ? CFAISS_METRIC_L2 : CFAISS_METRIC_INNER_PRODUCT
        let status = cfaiss_index_factory(Int32(clamping: dimension), trimmed, faissMetric, &raw)
        guard status == CFAISS_OK, var index = raw else {
            throw VectorIndexError.invalidFactory(factory, reason: String(cString: cfaiss_last_error()))
        }
        if cfaiss_index_has_own_ids(index) == 0 {
            var wrapped: OpaquePointer?
            guard cfaiss_index_wrap_idmap(index, &wrapped) == CFAISS_OK, let map = wrapped else {
                cfaiss_index_free(index)
                throw VectorIndexError.faiss(String(cString: cfaiss_last_error()))
            }
            index = map
        }
        self.init(handle: index, metric: metric, factory: trimmed)
    }

    private init(handle: OpaquePointer, metric: Metric, factory: String?) {
        self.handle = handle
        self.dimension = Int(cfaiss_index_dimension(handle))
        self.metric = metric
        self.factory = factory
        var maxID: Int64 = -1
        _ = cfaiss_index_max_id(handle, &maxID)
        self.nextID = maxID == Int64.max ? nil : maxID + 1
    }

    deinit { cfaiss_index_free(handle) }

    // MARK: Properties

    /// Number of stored vectors.
    public var count: Int { lock.reading { Int(cfaiss_index_ntotal(handle)) } }
    /// Whether the index is ready for `add` and `search`.
    public var isTrained: Bool { lock.reading { cfaiss_index_is_trained(handle) != 0 } }
    /// Whether the index stores caller-given ids (every index this type creates does).
    public var storesIDs: Bool { cfaiss_index_has_own_ids(handle) != 0 }
    /// FAISS's concrete type, e.g. `IDMap2(HNSWFlat)` or `IVFFlat`.
    public var typeName: String {
        var buffer = [CChar](repeating: 0, count: 128)
        cfaiss_index_type_name(handle, &buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Sets how many OpenMP threads FAISS and the Flat search use for calls from the calling thread (libgomp keeps
    /// the setting per thread; other threads keep `OMP_NUM_THREADS`). On 2 cores, 2 threads with OpenBLAS at 1.
    public static func setThreadCount(_ threads: Int) { cfaiss_set_num_threads(Int32(clamping: max(1, threads))) }
    /// The OpenMP thread count FAISS will use.
    public static var threadCount: Int { Int(cfaiss_get_num_threads()) }

    /// Where FAISS's own Flat code runs (range searches; k-NN on Flat indexes takes DMLKit's exact search unless
    /// `DMLKIT_SEARCH=faiss`), batches of at least
    /// this many queries compute distances through BLAS, smaller ones with FAISS's loops; process-wide, FAISS's
    /// `distance_compute_blas_threshold`. DMLKit sets 2 (FAISS's default is 20). Set it before searching, not
    /// while searches run.
    public static var distanceBLASThreshold: Int {
        get { Int(cfaiss_get_distance_blas_threshold()) }
        set { cfaiss_set_distance_blas_threshold(Int32(clamping: newValue)) }
    }

    // MARK: Building

    /// Trains the index (IVF, PQ, SQ need it; Flat and HNSW do not) on `vectors`, row-major.
    public func train(_ vectors: UnsafeBufferPointer<Float>) throws {
        try withPrepared(vectors) { pointer, n in
            try lock.writing { try check(cfaiss_index_train(handle, Int64(n), pointer)) }
        }
    }

    /// Adds vectors and returns the ids they were given: consecutive, after the largest id in the index.
    @discardableResult
    public func add(_ vectors: UnsafeBufferPointer<Float>) throws -> Range<Int64> {
        try withPrepared(vectors) { pointer, n in
            try lock.writing {
                guard cfaiss_index_is_trained(handle) != 0 else { throw VectorIndexError.notTrained }
                guard let first = storesIDs ? nextID : Int64(cfaiss_index_ntotal(handle)) else {
                    throw VectorIndexError.idsExhausted
                }
                guard n > 0 else { return first..<first }
                // The last id may be Int64.max itself; the range's end (one past it) may not exist.
                let (last, overflow) = first.addingReportingOverflow(Int64(n - 1))
                guard !overflow, last < Int64.max else { throw VectorIndexError.idsExhausted }
                if storesIDs {
                    let ids = (0..<Int64(n)).map { first + $0 }
                    try check(cfaiss_index_add_with_ids(handle, Int64(n), pointer, ids))
                } else {
                    try check(cfaiss_index_add(handle, Int64(n), pointer))
                }
                nextID = last + 1
                return first..<last + 1
            }
        }
    }

    /// Adds vectors under the given ids (one per vector; non-negative, unique within the call and not already stored).
    public func add(_ vectors: UnsafeBufferPointer<Float>, ids: UnsafeBufferPointer<Int64>) throws {
        let n = try vectorCount(vectors)
        guard ids.count == n else { throw VectorIndexError.idCountMismatch(vectors: n, ids: ids.count) }
        guard storesIDs else { throw VectorIndexError.idsNotSupported }
        var seen = Set<Int64>(minimumCapacity: ids.count)
        for id in ids {
            guard id >= 0 else { throw VectorIndexError.invalidID(id, reason: "ids must be non-negative") }
            guard seen.insert(id).inserted else { throw VectorIndexError.invalidID(id, reason: "given twice") }
        }
        try withPrepared(vectors) { pointer, n in
            try lock.writing {
                guard cfaiss_index_is_trained(handle) != 0 else { throw VectorIndexError.notTrained }
                var present: Int64 = -1
                try check(cfaiss_index_first_present_id(handle, Int64(n), ids.baseAddress, &present))
                guard present < 0 else { throw VectorIndexError.duplicateID(present) }
                try check(cfaiss_index_add_with_ids(handle, Int64(n), pointer, ids.baseAddress))
                if let largest = ids.max(), let next = nextID, largest >= next {
                    nextID = largest == Int64.max ? nil : largest + 1
                }
            }
        }
    }

    /// Removes vectors by id and returns how many were found. HNSW indexes cannot remove (FAISS limitation).
    @discardableResult
    public func remove(ids: [Int64]) throws -> Int {
        try lock.writing {
            var removed: Int64 = 0
            try check(cfaiss_index_remove_ids(handle, Int64(ids.count), ids, &removed))
            return Int(removed)
        }
    }

    /// Removes every vector (training is kept).
    public func reset() throws {
        try lock.writing { try check(cfaiss_index_reset(handle)) }
    }

    // MARK: Searching

    /// The `k` nearest stored vectors of each query in `queries` (row-major).
    public func search(_ queries: UnsafeBufferPointer<Float>, k: Int, parameters: SearchParameters = .init()) throws
        -> SearchResults
    {
        guard k >= 1, k <= Int(Int32.max) else { throw VectorIndexError.invalidK(k) }
        return try withPrepared(queries) { pointer, n in
            try withParameters(parameters) { params in
                try locked(for: params) {
                    try checkSearchable(k: k)
                    let (cells, overflow) = n.multipliedReportingOverflow(by: k)
                    guard !overflow, cells <= Int(Int32.max) * 8 else {
                        throw VectorIndexError.invalidParameter("\(n) queries x k = \(k) results is too many for one call")
                    }
                    var ids = [Int64](repeating: -1, count: cells)
                    var distances = [Float](repeating: 0, count: cells)
                    try check(cfaiss_index_search(handle, Int64(n), pointer, Int64(k), params, &distances, &ids))
                    return SearchResults(queryCount: n, k: k, ids: ids, distances: distances)
                }
            }
        }
    }

    /// All stored vectors within `radius` of each query: squared L2 below `radius`, or similarity above it.
    public func rangeSearch(_ queries: UnsafeBufferPointer<Float>, radius: Float, parameters: SearchParameters = .init())
        throws -> RangeSearchResults
    {
        guard radius.isFinite else { throw VectorIndexError.invalidParameter("radius must be finite") }
        return try withPrepared(queries) { pointer, n in
            try withParameters(parameters) { params in try locked(for: params) {
                guard cfaiss_index_is_trained(handle) != 0 else { throw VectorIndexError.notTrained }
                var result: UnsafeMutablePointer<cfaiss_range_result>?
                try check(cfaiss_index_range_search(handle, Int64(n), pointer, radius, params, &result))
                guard let r = result else { throw VectorIndexError.faiss("range search returned nothing") }
                defer { cfaiss_range_result_free(r) }
                let offsets = (0...n).map { Int(r.pointee.lims[$0]) }
                let total = offsets[n]
                return RangeSearchResults(
                    offsets: offsets,
                    ids: Array(UnsafeBufferPointer(start: r.pointee.labels, count: total)),
                    distances: Array(UnsafeBufferPointer(start: r.pointee.distances, count: total)))
            } }
        }
    }

    /// The stored vector for `id` (normalised, for the cosine metric).
    public func reconstruct(id: Int64) throws -> [Float] {
        try lock.reading {
            var out = [Float](repeating: 0, count: dimension)
            let status = cfaiss_index_reconstruct(handle, id, &out)
            if status == CFAISS_INVALID_ARGUMENT { throw VectorIndexError.unknownID(id) }
            try check(status)
            return out
        }
    }

    // MARK: Single-vector conveniences

    /// Trains on an array of row-major vectors.
    public func train(_ vectors: [Float]) throws { try vectors.withUnsafeBufferPointer { try train($0) } }

    /// Adds an array of row-major vectors with automatic ids.
    @discardableResult
    public func add(_ vectors: [Float]) throws -> Range<Int64> { try vectors.withUnsafeBufferPointer { try add($0) } }

    /// Adds an array of row-major vectors under `ids`.
    public func add(_ vectors: [Float], ids: [Int64]) throws {
        try vectors.withUnsafeBufferPointer { v in try ids.withUnsafeBufferPointer { try add(v, ids: $0) } }
    }

    /// The `k` nearest neighbours of one query vector.
    public func search(vector query: [Float], k: Int, parameters: SearchParameters = .init()) throws -> [Neighbor] {
        guard query.count == dimension else { throw VectorIndexError.dimensionMismatch(expected: dimension, actual: query.count) }
        return try query.withUnsafeBufferPointer { try search($0, k: k, parameters: parameters) }.neighbors(ofQuery: 0)
    }

    /// Batch search over an array of row-major query vectors.
    public func search(_ queries: [Float], k: Int, parameters: SearchParameters = .init()) throws -> SearchResults {
        try queries.withUnsafeBufferPointer { try search($0, k: k, parameters: parameters) }
    }

    /// Range search for one query vector, closest first.
    public func rangeSearch(vector query: [Float], radius: Float, parameters: SearchParameters = .init()) throws -> [Neighbor] {
        guard query.count == dimension else { throw VectorIndexError.dimensionMismatch(expected: dimension, actual: query.count) }
        return try query.withUnsafeBufferPointer { try rangeSearch($0, radius: radius, parameters: parameters) }
            .neighbors(ofQuery: 0, higherIsCloser: metric.higherIsCloser)
    }

    // MARK: Persistence

    /// Writes the index as a plain FAISS file and, beside it, `PATH.dml.json` with what FAISS does not store
    /// (cosine metric, factory string) plus the index file's size and checksum. Both are written to temporary
    /// files, flushed and read back before either replaces anything (`AtomicFile`): a failed save (a full disk)
    /// leaves both old files as they were; a load that finds the two from different saves refuses them.
    public func save(to url: URL) throws {
        try lock.reading {
            let bytes = try serializedUnlocked()
            let sidecar = IndexSidecar(
                metric: metric, factory: factory, indexBytes: bytes.count,
                indexChecksum: bytes.withUnsafeBytes { Checksum.hex($0) })
            do {
                try AtomicFile.write([(bytes, url), (try sidecar.encoded(), IndexSidecar.url(besideIndexAt: url))])
            } catch let error as AtomicFile.Failure {
                throw VectorIndexError.io(error.description)
            }
        }
    }

    /// Opens a FAISS index file, ours or any other tool's. `mmap` maps IVF inverted lists instead of reading them.
    /// The bytes are checked before FAISS reads them (`invalidIndexFile` says why a file is refused); the metric
    /// comes from `PATH.dml.json` when present (which must then describe this very file), otherwise from FAISS.
    public static func load(contentsOf url: URL, mmap: Bool = false) throws -> VectorIndex {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw VectorIndexError.io("no index file at \(url.path)")
        }
        guard !isDirectory.boolValue else { throw VectorIndexError.io("\(url.path) is a directory, not an index file") }
        let sidecar = try IndexSidecar.read(besideIndexAt: url)
        var raw: OpaquePointer?
        let status = cfaiss_read_index_file(url.path, mmap ? 1 : 0, &raw)
        guard status == CFAISS_OK, let handle = raw else {
            if status == CFAISS_IO_ERROR { throw VectorIndexError.io(String(cString: cfaiss_last_error())) }
            if status == CFAISS_BAD_FILE { throw VectorIndexError.fromStatus(status) }
            throw VectorIndexError.corruptIndex("\(url.path): \(String(cString: cfaiss_last_error()))")
        }
        if let sidecar, sidecar.indexBytes != nil {
            do {
                let data = try Data(contentsOf: url, options: .alwaysMapped)
                try sidecar.check(indexBytes: data, indexURL: url)
            } catch {
                cfaiss_index_free(handle)
                if let error = error as? VectorIndexError { throw error }
                throw VectorIndexError.io("cannot read \(url.path): \(error.localizedDescription)")
            }
        }
        return try make(handle: handle, sidecar: sidecar)
    }

    /// Reads an index from the bytes of a FAISS index file (checked first, like `load`).
    public convenience init(serialized data: Data, metric: Metric? = nil) throws {
        guard !data.isEmpty else { throw VectorIndexError.invalidIndexFile(.truncated, reason: "the file is empty") }
        var raw: OpaquePointer?
        let status = data.withUnsafeBytes { bytes in
            cfaiss_read_index_buffer(bytes.bindMemory(to: UInt8.self).baseAddress, bytes.count, &raw)
        }
        guard status == CFAISS_OK, let handle = raw else {
            if status == CFAISS_BAD_FILE { throw VectorIndexError.fromStatus(status) }
            throw VectorIndexError.corruptIndex(String(cString: cfaiss_last_error()))
        }
        let faissMetric: Metric = cfaiss_index_metric(handle) == CFAISS_METRIC_L2 ? .l2 : .innerProduct
        if let metric, metric != faissMetric, !(metric == .cosine && faissMetric == .innerProduct) {
            cfaiss_index_free(handle)
            throw VectorIndexError.corruptIndex("the bytes hold an index with metric \(faissMetric.rawValue), not \(metric.rawValue)")
        }
        self.init(handle: handle, metric: metric ?? faissMetric, factory: nil)
    }

    /// Checks the bytes of a FAISS index file without building an index: nil when `load` would accept them,
    /// otherwise the `invalidIndexFile` error it would throw.
    public static func checkFile(bytes data: Data) -> VectorIndexError? {
        let status = data.withUnsafeBytes { bytes in
            cfaiss_check_index_buffer(bytes.bindMemory(to: UInt8.self).baseAddress ?? UnsafePointer(bitPattern: 1), bytes.count)
        }
        return status == CFAISS_OK ? nil : VectorIndexError.fromStatus(status)
    }

    /// The bytes of the index as a plain FAISS file.
    public func serialized() throws -> Data {
        try lock.reading { try serializedUnlocked() }
    }

    /// The FAISS bytes, handed over without a copy (the caller holds the lock).
    private func serializedUnlocked() throws -> Data {
        var bytes: UnsafeMutablePointer<UInt8>?
        var size = 0
        try check(cfaiss_write_index_buffer(handle, &bytes, &size))
        guard let bytes else { return Data() }
        return Data(bytesNoCopy: bytes, count: size, deallocator: .custom { pointer, _ in cfaiss_buffer_free(pointer.assumingMemoryBound(to: UInt8.self)) })
    }

    private static func make(handle: OpaquePointer, sidecar: IndexSidecar?) throws -> VectorIndex {
        let faissMetric: Metric = cfaiss_index_metric(handle) == CFAISS_METRIC_L2 ? .l2 : .innerProduct
        var metric = faissMetric
        if let saved = sidecar?.metric {
            guard saved == faissMetric || (saved == .cosine && faissMetric == .innerProduct) else {
                cfaiss_index_free(handle)
                throw VectorIndexError.corruptIndex("sidecar says metric \(saved.rawValue) but the FAISS index uses \(faissMetric.rawValue)")
            }
            metric = saved
        }
        return VectorIndex(handle: handle, metric: metric, factory: sidecar?.factory)
    }

    // MARK: Input checks

    private func vectorCount(_ vectors: UnsafeBufferPointer<Float>) throws -> Int {
        guard vectors.count % dimension == 0 else {
            throw VectorIndexError.dimensionMismatch(expected: dimension, actual: vectors.count % dimension)
        }
        return vectors.count / dimension
    }

    /// Checks shape and finiteness, normalises a copy for cosine, and calls `body` with the vectors to hand FAISS.
    private func withPrepared<T>(_ vectors: UnsafeBufferPointer<Float>, _ body: (UnsafePointer<Float>, Int) throws -> T)
        throws -> T
    {
        let n = try vectorCount(vectors)
        guard n > 0, let base = vectors.baseAddress else {
            return try [Float](repeating: 0, count: dimension).withUnsafeBufferPointer { try body($0.baseAddress!, 0) }
        }
        for i in 0..<vectors.count where !base[i].isFinite {
            throw VectorIndexError.nonFiniteValue(row: i / dimension, column: i % dimension)
        }
        guard metric == .cosine else { return try body(base, n) }
        var normalised = [Float](vectors)
        for row in 0..<n {
            var norm: Float = 0
            for j in 0..<dimension { norm += normalised[row * dimension + j] * normalised[row * dimension + j] }
            guard norm > 0 else { throw VectorIndexError.zeroVector(row: row) }
            let scale = 1 / norm.squareRoot()
            for j in 0..<dimension { normalised[row * dimension + j] *= scale }
        }
        return try normalised.withUnsafeBufferPointer { try body($0.baseAddress!, n) }
    }

    /// Searches share the index, except those FAISS can only serve by changing a setting for the call.
    private func locked<T>(for params: UnsafePointer<cfaiss_search_params>, _ body: () throws -> T) throws -> T {
        cfaiss_search_needs_exclusive(handle, params) != 0 ? try lock.writing(body) : try lock.reading(body)
    }

    private func checkSearchable(k: Int) throws {
        guard cfaiss_index_is_trained(handle) != 0 else { throw VectorIndexError.notTrained }
        let total = Int(cfaiss_index_ntotal(handle))
        guard total > 0 else { throw VectorIndexError.emptyIndex }
        guard k <= total else { throw VectorIndexError.kExceedsCount(k: k, count: total) }
    }

    private func withParameters<T>(_ p: SearchParameters, _ body: (UnsafePointer<cfaiss_search_params>) throws -> T) throws -> T {
        if let nprobe = p.nprobe, nprobe < 1 || nprobe > Int(Int32.max) {
            throw VectorIndexError.invalidParameter("nprobe must be 1...\(Int32.max), got \(nprobe)")
        }
        if let ef = p.efSearch, ef < 1 || ef > Self.maxEfSearch {
            throw VectorIndexError.invalidParameter("efSearch must be 1...\(Self.maxEfSearch), got \(ef)")
        }
        let allowed = p.allowedIDs ?? []
        return try allowed.withUnsafeBufferPointer { ids in
            var params = cfaiss_search_params(
                nprobe: Int32(clamping: p.nprobe ?? 0), ef_search: Int32(clamping: p.efSearch ?? 0),
                allowed_ids: ids.baseAddress, allowed_count: p.allowedIDs == nil ? -1 : Int64(ids.count))
            return try body(&params)
        }
    }
}
