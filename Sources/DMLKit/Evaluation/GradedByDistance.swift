import DMLNpy
import Foundation

/// Graded metrics where the label distance is given as a function (e.g. the pose distance) instead of label vectors.
public struct GradedReport: Codable, Equatable, Sendable {
    /// nDCG@K, mean label distance@K and Spearman, averaged over the queries counted.
    public var metrics: GradedMetrics
    /// The best possible mean label distance@K: the K references with the smallest label distances, averaged
    /// like `metrics.labelDistance` (the floor a perfect embedding would reach).
    public var idealLabelDistance: [Int: Double]
    /// Queries evaluated.
    public var queryCount: Int
    /// Queries left out because fewer than the largest K references had a defined label distance to them.
    public var skippedQueries: Int
}

extension RetrievalMetrics {
    /// Leave-one-out graded metrics over `embeddings` (one row per item) for the items `queries`, with the same
    /// definitions as `gradedMetrics` (Euclidean embedding distance, stable ranking, gain 1 / (1 + d), Spearman
    /// between embedding and label distances), except that the label distance between items i and j is
    /// `labelDistance(i, j)`. References whose label distance to the query is undefined (nil) are left out of that
    /// query's ranking; a query with fewer than the largest K references left is skipped.
    public static func gradedMetrics(
        embeddings: FloatMatrix, queries: [Int], ks: [Int] = [1, 10, 50], labelDistance: (Int, Int) -> Double?
    ) throws -> GradedReport {
        let n = embeddings.rows
        guard n >= 2 else { throw EvaluationError.tooFew("leave-one-out evaluation needs at least 2 samples") }
        try checkFinite(embeddings, "embeddings")
        if let bad = queries.first(where: { !(0..<n).contains($0) }) {
            throw EvaluationError.countMismatch("query index \(bad) is outside 0..<\(n)")
        }
        return try evaluate(embeddings, queries, ks, labelDistance)
    }

    private static func evaluate(
        _ embeddings: FloatMatrix, _ queries: [Int], _ ks: [Int], _ labelDistance: (Int, Int) -> Double?
    ) throws -> GradedReport {
        let ks = Array(Set(ks)).sorted()
        guard let first = ks.first, let last = ks.last, first >= 1, last <= embeddings.rows - 1 else {
            throw EvaluationError.invalidK("every K must be in [1, \(embeddings.rows - 1)], got \(ks)")
        }
        let discount = (0..<last).map { 1 / log2(Double($0) + 2) }
        var ndcg = [Int: Double](uniqueKeysWithValues: ks.map { ($0, 0) })
        var meanDistance = ndcg
        var idealDistance = ndcg
        var rhoSum = 0.0, rhoCount = 0, counted = 0, skipped = 0
        for q in queries {
            // Only references with a defined label distance take part, ranked by embedding distance (ties by index).
            var candidates: [(index: Int, embedding: Double, label: Double)] = []
            for j in 0..<embeddings.rows where j != q {
                guard let d = labelDistance(q, j), d.isFinite else { continue }
                candidates.append((j, euclidean(embeddings, q, embeddings, j), d))
            }
            guard candidates.count >= last else {
                skipped += 1
                continue
            }
            candidates.sort { $0.embedding < $1.embedding || ($0.embedding == $1.embedding && $0.index < $1.index) }
            let labels = candidates.map(\.label)
            let ideal = labels.sorted()
            for k in ks {
                var dcg = 0.0, idcg = 0.0, sum = 0.0
                for i in 0..<k {
                    dcg += discount[i] / (1 + labels[i])
                    idcg += discount[i] / (1 + ideal[i])
                    sum += labels[i]
                }
                ndcg[k, default: 0] += dcg / idcg
                meanDistance[k, default: 0] += sum / Double(k)
                idealDistance[k, default: 0] += ideal.prefix(k).reduce(0, +) / Double(k)
            }
            if let rho = spearman(candidates.map(\.embedding), labels) {
                rhoSum += rho
                rhoCount += 1
            }
            counted += 1
        }
        guard counted > 0 else {
            throw EvaluationError.tooFew("no query has \(last) references with a defined label distance")
        }
        let c = Double(counted)
        let metrics = GradedMetrics(ndcg: ndcg.mapValues { $0 / c }, labelDistance: meanDistance.mapValues { $0 / c },
                                    spearman: rhoCount > 0 ? rhoSum / Double(rhoCount) : .nan)
        return GradedReport(metrics: metrics, idealLabelDistance: idealDistance.mapValues { $0 / c }, queryCount: counted,
                            skippedQueries: skipped)
    }
}
