import DMLIndex
import Foundation

/// Deterministic pseudo-random numbers (SplitMix64) so test data is the same on every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// `n` vectors of dimension `d` around `clusters` centres, row-major.
func clusteredVectors(_ n: Int, _ d: Int, clusters: Int = 20, seed: UInt64 = 1) -> [Float] {
    var rng = SeededGenerator(seed: seed)
    let centres = (0..<clusters * d).map { _ in Float.random(in: -1...1, using: &rng) }
    var out = [Float](repeating: 0, count: n * d)
    for i in 0..<n {
        let c = Int.random(in: 0..<clusters, using: &rng)
        for j in 0..<d { out[i * d + j] = centres[c * d + j] + Float.random(in: -0.3...0.3, using: &rng) }
    }
    return out
}

/// Exact k-NN computed here, independently of FAISS: (id, score) per query, best first.
func bruteForce(base: [Float], ids: [Int64]? = nil, queries: [Float], d: Int, k: Int, metric: Metric,
                allowed: Set<Int64>? = nil) -> [[Neighbor]]
{
    let n = base.count / d
    func norm(_ v: ArraySlice<Float>) -> Float { v.reduce(0) { $0 + $1 * $1 }.squareRoot() }
    return stride(from: 0, to: queries.count, by: d).map { qStart in
        let q = queries[qStart..<qStart + d]
        var scored: [Neighbor] = []
        for i in 0..<n {
            let id = ids?[i] ?? Int64(i)
            if let allowed, !allowed.contains(id) { continue }
            let b = base[i * d..<(i + 1) * d]
            var score: Float = 0
            switch metric {
            case .l2: for j in 0..<d { let diff = q[qStart + j] - b[i * d + j]; score += diff * diff }
            case .innerProduct: for j in 0..<d { score += q[qStart + j] * b[i * d + j] }
            case .cosine:
                for j in 0..<d { score += q[qStart + j] * b[i * d + j] }
                score /= norm(q) * norm(b)
            }
            scored.append(Neighbor(id: id, distance: score))
        }
        scored.sort { metric.higherIsCloser ? $0.distance > $1.distance : $0.distance < $1.distance }
        return Array(scored.prefix(k))
    }
}

/// Fraction of the exact top-k ids that an approximate result found.
func recall(_ approximate: SearchResults, exact: [[Neighbor]]) -> Double {
    var hits = 0, total = 0
    for (q, truth) in exact.enumerated() {
        let found = Set(approximate.neighbors(ofQuery: q).map(\.id))
        hits += truth.filter { found.contains($0.id) }.count
        total += truth.count
    }
    return Double(hits) / Double(max(total, 1))
}

func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("dmlindex-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
