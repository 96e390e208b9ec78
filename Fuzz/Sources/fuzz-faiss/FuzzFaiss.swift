import DMLIndex
import Foundation
import FuzzSupport

/// FAISS index bytes through `VectorIndex(serialized:)`, then what `dml index info/search` does with a loaded index:
/// count, type, one k-nearest and one range search, and reconstructing the first hit.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFaiss(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    VectorIndex.setThreadCount(1)
    let data = fuzzData(start, count)
    guard let index = try? VectorIndex(serialized: data) else { return 0 }
    _ = index.typeName
    _ = index.isTrained
    let stored = index.count
    invariant(stored >= 0, "negative count \(stored)")
    // Only small dimensions are queried: the query buffer is the harness's allocation, not the reader's.
    guard index.dimension > 0, index.dimension <= 4096 else { return 0 }
    let query = (0..<index.dimension).map { Float($0 % 7) - 3 }
    if let hits = try? index.search(vector: query, k: 3) {
        // Fewer than k is legitimate (few vectors, IVF probing one list, HNSW); more, or padding ids, is not.
        invariant(hits.count <= 3 && hits.allSatisfy { $0.id >= 0 }, "search returned \(hits) for k = 3")
        if let first = hits.first(where: { $0.id >= 0 }) { _ = try? index.reconstruct(id: first.id) }
    }
    _ = try? index.rangeSearch(vector: query, radius: 1)
    return 0
}
