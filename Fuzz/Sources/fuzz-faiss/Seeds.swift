import DMLIndex
import Foundation
import FuzzSupport

/// Seeds: small indexes of every family DMLKit builds, serialised by `VectorIndex.serialized()` (plain FAISS bytes).
@_cdecl("LLVMFuzzerInitialize")
public func initializeFaiss(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> CInt {
    writeSeedsIfRequested { save in
        let cases: [(String, Int, String, Metric, Int)] = [
            ("flat_ip", 4, "Flat", .innerProduct, 6), ("flat_l2", 4, "Flat", .l2, 6), ("flat_cos", 8, "Flat", .cosine, 5),
            ("empty_flat", 4, "Flat", .l2, 0), ("hnsw4", 4, "HNSW4", .l2, 12), ("ivf2_flat", 4, "IVF2,Flat", .l2, 20),
            ("ivf2_pq2x4", 4, "IVF2,PQ2x4", .l2, 40), ("pq2x4", 4, "PQ2x4", .innerProduct, 40), ("sq8", 4, "SQ8", .l2, 8),
            ("lsh", 8, "LSH", .l2, 8), ("ivf2_sq8", 4, "IVF2,SQ8", .l2, 20),
        ]
        for (name, dimension, factory, metric, count) in cases {
            let index = try VectorIndex(dimension: dimension, factory: factory, metric: metric)
            let vectors = (0..<count * dimension).map { Float(sin(Double($0) * 1.7)) + 0.05 }
            if !index.isTrained { try index.train(vectors) }
            if count > 0 { try index.add(vectors, ids: (0..<Int64(count)).map { $0 * 3 + 1 }) }
            try save("\(name).faiss", try index.serialized())
        }
    }
    return 0
}
