@testable import DMLKit
import DMLNpy
import Foundation
import Testing

/// SplitMix64 in [0, 1): the same data on every run.
private struct Uniform {
    var state: UInt64
    mutating func next() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
    }
}

private func randomMatrix(_ rows: Int, _ columns: Int, seed: UInt64) -> FloatMatrix {
    var rng = Uniform(state: seed)
    return FloatMatrix(rows: rows, columns: columns, values: (0..<rows * columns).map { _ in Float(rng.next() - 0.5) })
}

private func distance(_ m: FloatMatrix, _ i: Int, _ j: Int) -> Double {
    (0..<m.columns).reduce(0.0) { sum, c in
        let d = Double(m.values[i * m.columns + c]) - Double(m.values[j * m.columns + c])
        return sum + d * d
    }.squareRoot()
}

/// Pearson correlation of average ranks, written out separately from the library's.
private func bruteSpearman(_ x: [Double], _ y: [Double]) -> Double? {
    func ranks(_ v: [Double]) -> [Double] {
        v.map { value in
            let below = Double(v.filter { $0 < value }.count), equal = Double(v.filter { $0 == value }.count)
            return below + (equal + 1) / 2
        }
    }
    let rx = ranks(x), ry = ranks(y)
    let mx = rx.reduce(0, +) / Double(rx.count), my = ry.reduce(0, +) / Double(ry.count)
    let sxy = zip(rx, ry).reduce(0.0) { $0 + ($1.0 - mx) * ($1.1 - my) }
    let sxx = rx.reduce(0.0) { $0 + ($1 - mx) * ($1 - mx) }, syy = ry.reduce(0.0) { $0 + ($1 - my) * ($1 - my) }
    return sxx > 0 && syy > 0 ? sxy / (sxx * syy).squareRoot() : nil
}

@Suite struct GradedByDistanceTests {
    @Test func matchesLabelVectorMetricsWhenTheClosureIsEuclidean() throws {
        let embeddings = randomMatrix(40, 6, seed: 1), labels = randomMatrix(40, 3, seed: 2)
        let reference = try RetrievalMetrics.gradedMetrics(query: embeddings, queryLabels: labels, ks: [1, 5, 10])
        let report = try RetrievalMetrics.gradedMetrics(embeddings: embeddings, queries: Array(0..<40), ks: [1, 5, 10]) {
            distance(labels, $0, $1)
        }
        #expect(report.queryCount == 40 && report.skippedQueries == 0)
        for k in [1, 5, 10] {
            #expect(abs((report.metrics.ndcg[k] ?? .nan) - (reference.ndcg[k] ?? .nan)) < 1e-12)
            #expect(abs((report.metrics.labelDistance[k] ?? .nan) - (reference.labelDistance[k] ?? .nan)) < 1e-12)
        }
        #expect(abs(report.metrics.spearman - reference.spearman) < 1e-12)
    }

    @Test func undefinedDistancesAreLeftOutAsBruteForceSays() throws {
        let n = 30
        let embeddings = randomMatrix(n, 5, seed: 3), labels = randomMatrix(n, 2, seed: 4)
        // Items divisible by 7 have no label: their distances are undefined, so they rank nowhere and cannot query.
        let undefined: (Int, Int) -> Double? = { i, j in i % 7 == 0 || j % 7 == 0 ? nil : distance(labels, i, j) }
        let queries = [0, 1, 2, 3, 5, 8, 13, 21, 29]
        let ks = [1, 3, 8]
        let report = try RetrievalMetrics.gradedMetrics(embeddings: embeddings, queries: queries, ks: ks, labelDistance: undefined)

        var ndcg = [Double](repeating: 0, count: ks.count), mean = ndcg, floor = ndcg
        var rho = 0.0, counted = 0
        for q in queries where q % 7 != 0 {
            let refs = (0..<n).filter { $0 != q && $0 % 7 != 0 }
                .sorted { (distance(embeddings, q, $0), $0) < (distance(embeddings, q, $1), $1) }
            let d = refs.map { distance(labels, q, $0) }
            let best = d.sorted()
            for (i, k) in ks.enumerated() {
                let dcg = (0..<k).reduce(0.0) { $0 + 1 / (1 + d[$1]) / log2(Double($1) + 2) }
                let idcg = (0..<k).reduce(0.0) { $0 + 1 / (1 + best[$1]) / log2(Double($1) + 2) }
                ndcg[i] += dcg / idcg
                mean[i] += d.prefix(k).reduce(0, +) / Double(k)
                floor[i] += best.prefix(k).reduce(0, +) / Double(k)
            }
            rho += bruteSpearman(refs.map { distance(embeddings, q, $0) }, d) ?? 0
            counted += 1
        }
        #expect(report.queryCount == counted && report.skippedQueries == 2)
        for (i, k) in ks.enumerated() {
            #expect(abs((report.metrics.ndcg[k] ?? .nan) - ndcg[i] / Double(counted)) < 1e-9)
            #expect(abs((report.metrics.labelDistance[k] ?? .nan) - mean[i] / Double(counted)) < 1e-9)
            #expect(abs((report.idealLabelDistance[k] ?? .nan) - floor[i] / Double(counted)) < 1e-9)
        }
        #expect(abs(report.metrics.spearman - rho / Double(counted)) < 1e-9)
    }

    @Test func refusesBadQueriesAndCutoffs() {
        let embeddings = randomMatrix(5, 2, seed: 5)
        #expect(throws: EvaluationError.self) { try RetrievalMetrics.gradedMetrics(embeddings: embeddings, queries: [5], ks: [1]) { _, _ in 1 } }
        #expect(throws: EvaluationError.self) { try RetrievalMetrics.gradedMetrics(embeddings: embeddings, queries: [0], ks: [5]) { _, _ in 1 } }
        #expect(throws: EvaluationError.self) { try RetrievalMetrics.gradedMetrics(embeddings: embeddings, queries: [0], ks: [1]) { _, _ in nil } }
    }
}
