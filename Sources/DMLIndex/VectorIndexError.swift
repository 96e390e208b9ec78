import CFaiss
import Foundation

/// How a FAISS file failed the check that runs before FAISS reads it (`cfaiss_file_defect`).
public enum IndexFileDefect: String, Sendable, Equatable, CaseIterable {
    /// The bytes end inside a field or an array (or there are none).
    case truncated
    /// An index, inverted-list or transform type DMLKit does not read (named in the reason).
    case unknownType
    /// A field outside its sane limits: dimension, ntotal, nlist, nbits, HNSW levels or ef, negative ids.
    case outOfRange
    /// Fields that must agree do not: ntotal against the stored vectors, the id map or the lists, graph links.
    case inconsistent
    /// Bytes follow the index.
    case trailingBytes
}

/// Why a `VectorIndex` call was refused or failed. Input is checked before FAISS sees it.
public enum VectorIndexError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The dimension given at creation is not positive.
    case invalidDimension(Int)
    /// FAISS refused the factory string.
    case invalidFactory(String, reason: String)
    /// A buffer's length is not a whole number of vectors, or a vector has the wrong length.
    case dimensionMismatch(expected: Int, actual: Int)
    /// A NaN or infinity in the input.
    case nonFiniteValue(row: Int, column: Int)
    /// A zero vector cannot be normalised for the cosine metric.
    case zeroVector(row: Int)
    /// The index needs `train` before vectors can be added or searched.
    case notTrained
    /// The index holds no vectors.
    case emptyIndex
    /// k must be at least 1 (and fit FAISS's 32-bit heaps).
    case invalidK(Int)
    /// More neighbours were asked for than the index holds.
    case kExceedsCount(k: Int, count: Int)
    /// The number of ids differs from the number of vectors.
    case idCountMismatch(vectors: Int, ids: Int)
    /// An id appears twice in one call, or is negative (FAISS reserves -1 for "no result").
    case invalidID(Int64, reason: String)
    /// The index stores no ids of its own (a plain index from another tool): ids are insertion positions.
    case idsNotSupported
    /// The id is not in the index.
    case unknownID(Int64)
    /// A search parameter does not apply to this index or is out of range.
    case invalidParameter(String)
    /// The index type cannot do this (e.g. remove from HNSW).
    case unsupported(String)
    /// A file could not be read or written.
    case io(String)
    /// The bytes are not a FAISS index FAISS can read.
    case corruptIndex(String)
    /// Any other FAISS failure, with its message.
    case faiss(String)
    /// The bytes were refused before FAISS read them: what is wrong, and where (a sentence).
    case invalidIndexFile(IndexFileDefect, reason: String)
    /// The index file and its `.dml.json` sidecar do not belong together (an interrupted save, or one copied
    /// without the other).
    case sidecarMismatch(String)
    /// The id is already in the index (ids are unique across calls, not only within one).
    case duplicateID(Int64)
    /// Automatic ids continue after the largest stored id, and that is already `Int64.max`.
    case idsExhausted

    public var description: String {
        switch self {
        case .invalidDimension(let d): return "dimension must be 1...\(VectorIndex.maxDimension), got \(d)"
        case .invalidFactory(let s, let reason): return "cannot build an index from factory string '\(s)': \(reason)"
        case .dimensionMismatch(let e, let a): return "dimension mismatch: index has dimension \(e), input has \(a)"
        case .nonFiniteValue(let r, let c): return "vector \(r) has a NaN or infinite value at position \(c)"
        case .zeroVector(let r): return "vector \(r) is all zeros and cannot be normalised for the cosine metric"
        case .notTrained: return "the index is not trained: train it on sample vectors first"
        case .emptyIndex: return "the index is empty: add vectors before searching"
        case .invalidK(let k): return "k must be 1...\(Int32.max), got \(k)"
        case .kExceedsCount(let k, let n): return "k = \(k) is larger than the number of vectors in the index (\(n))"
        case .idCountMismatch(let v, let i): return "\(v) vectors but \(i) ids"
        case .invalidID(let id, let reason): return "invalid id \(id): \(reason)"
        case .idsNotSupported:
            return "this index stores no ids of its own (ids are insertion positions); it cannot take explicit ids"
        case .unknownID(let id): return "id \(id) is not in the index"
        case .invalidParameter(let why): return "invalid search parameter: \(why)"
        case .unsupported(let why): return "not supported by this index type: \(why)"
        case .io(let why): return why
        case .corruptIndex(let why): return "not a readable FAISS index: \(why)"
        case .faiss(let why): return "FAISS error: \(why)"
        case .invalidIndexFile(let defect, let why): return "not a valid FAISS index file (\(defect.rawValue)): \(why)"
        case .sidecarMismatch(let why): return why
        case .duplicateID(let id): return "id \(id) is already in the index"
        case .idsExhausted:
            return "no automatic ids left: the largest id in the index is \(Int64.max); add with explicit ids"
        }
    }

    /// The error for a failed CFaiss call, from its status and the thread's last message.
    static func fromStatus(_ status: cfaiss_status) -> VectorIndexError {
        let message = String(cString: cfaiss_last_error())
        switch status {
        case CFAISS_INVALID_ARGUMENT: return .invalidParameter(message)
        case CFAISS_UNSUPPORTED: return .unsupported(message)
        case CFAISS_IO_ERROR: return .io(message)
        case CFAISS_OUT_OF_MEMORY: return .faiss("out of memory")
        case CFAISS_BAD_FILE: return .invalidIndexFile(IndexFileDefect(code: cfaiss_last_file_defect()), reason: message)
        default: return .faiss(message)
        }
    }
}

/// Throws the matching `VectorIndexError` unless `status` is `CFAISS_OK`.
@inline(__always)
func check(_ status: cfaiss_status) throws {
    if status != CFAISS_OK { throw VectorIndexError.fromStatus(status) }
}

extension VectorIndexError: LocalizedError {
    public var errorDescription: String? { description }
}

extension IndexFileDefect {
    init(code: Int32) {
        switch code {
        case Int32(CFAISS_DEFECT_TRUNCATED.rawValue): self = .truncated
        case Int32(CFAISS_DEFECT_UNKNOWN_TYPE.rawValue): self = .unknownType
        case Int32(CFAISS_DEFECT_OUT_OF_RANGE.rawValue): self = .outOfRange
        case Int32(CFAISS_DEFECT_TRAILING_BYTES.rawValue): self = .trailingBytes
        default: self = .inconsistent
        }
    }
}
