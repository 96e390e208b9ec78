import DMLNpy
import Foundation

/// Why an evaluation could not run.
public enum EvaluationError: Error, Equatable, CustomStringConvertible {
    case dimensionMismatch(String)
    case countMismatch(String)
    case nonFinite(String)
    case tooFew(String)
    case nothingRelevant
    case invalidK(String)

    public var description: String {
        switch self {
        case .dimensionMismatch(let s), .countMismatch(let s), .nonFinite(let s), .tooFew(let s), .invalidK(let s): return s
        case .nothingRelevant: return "no query has a same-class item in the reference set"
        }
    }
}

/// Class-label retrieval metrics (Recall@K, R-precision, MAP@R), as pytorch-metric-learning's AccuracyCalculator.
public struct ClassMetrics: Codable, Equatable, Sendable {
    /// Fraction of queries with a same-class item among the top K, per K.
    public var recall: [Int: Double]
    public var rPrecision: Double
    public var mapAtR: Double
    /// Queries with at least one same-class reference item (the others are skipped).
    public var queryCount: Int
}

/// Continuous-label retrieval metrics: graded relevance with gain 1 / (1 + label distance).
public struct GradedMetrics: Codable, Equatable, Sendable {
    public var ndcg: [Int: Double]
    /// Mean label distance of the top K.
    public var labelDistance: [Int: Double]
    /// Mean per-query Spearman correlation between embedding and label distances (NaN when never defined).
    public var spearman: Double
}

/// Retrieval evaluation with exactly the definitions of `training/dmlkit/evaluation.py` (tested on shared fixtures).
///
/// Each query ranks the reference set by Euclidean embedding distance, ascending, ties broken by reference index.
/// Without a reference set, the queries are their own reference and each query's own row is left out.
/// Distances are computed in double precision, as the Python side does.
public enum RetrievalMetrics {
    /// Recall@K, R-precision and MAP@R for class labels.
    public static func classMetrics(
        query: FloatMatrix, queryLabels: [Int64], reference: FloatMatrix? = nil, referenceLabels: [Int64]? = nil,
        ks: [Int] = [1, 2, 4, 8]
    ) throws -> ClassMetrics {
        let setup = try Setup(query: query, queryCount: queryLabels.count, reference: reference,
                              referenceCount: referenceLabels?.count)
        let refLabels = setup.leaveOneOut ? queryLabels : (referenceLabels ?? [])
        let ks = Array(Set(ks)).sorted()
        guard let first = ks.first, first >= 1 else { throw EvaluationError.invalidK("ks must be positive, got \(ks)") }
        var hits = [Int: Int](uniqueKeysWithValues: ks.map { ($0, 0) })
        var rPrecision = 0.0, mapAtR = 0.0, counted = 0
        for q in 0..<query.rows {
            let order = setup.ranking(ofQuery: q).order
            let relevant = order.map { refLabels[$0] == queryLabels[q] }
            let r = relevant.reduce(0) { $0 + ($1 ? 1 : 0) }
            guard r > 0 else { continue }
            counted += 1
            for k in ks where relevant.prefix(k).contains(true) { hits[k, default: 0] += 1 }
            var found = 0
            var precisionSum = 0.0
            for i in 0..<r where relevant[i] {
                found += 1
                precisionSum += Double(found) / Double(i + 1)
            }
            rPrecision += Double(found) / Double(r)
            mapAtR += precisionSum / Double(r)
        }
        guard counted > 0 else { throw EvaluationError.nothingRelevant }
        return ClassMetrics(
            recall: hits.mapValues { Double($0) / Double(counted) }, rPrecision: rPrecision / Double(counted),
            mapAtR: mapAtR / Double(counted), queryCount: counted)
    }

    /// nDCG@K, mean label distance@K and Spearman for continuous labels (vectors compared by Euclidean distance).
    public static func gradedMetrics(
        query: FloatMatrix, queryLabels: FloatMatrix, reference: FloatMatrix? = nil, referenceLabels: FloatMatrix? = nil,
        ks: [Int] = [1, 5, 10]
    ) throws -> GradedMetrics {
        let setup = try Setup(query: query, queryCount: queryLabels.rows, reference: reference,
                              referenceCount: referenceLabels?.rows)
        let refLabels = setup.leaveOneOut ? queryLabels : (referenceLabels ?? queryLabels)
        guard queryLabels.columns == refLabels.columns else {
            throw EvaluationError.dimensionMismatch("query and reference labels have different widths")
        }
        try checkFinite(queryLabels, "query labels")
        try checkFinite(refLabels, "reference labels")
        let available = setup.referenceRows - (setup.leaveOneOut ? 1 : 0)
        let ks = Array(Set(ks)).sorted()
        guard let first = ks.first, let last = ks.last, first >= 1, last <= available else {
            throw EvaluationError.invalidK("every K must be in [1, \(available)], got \(ks)")
        }
        let discount = (0..<last).map { 1 / log2(Double($0) + 2) }
        var ndcg = [Int: Double](uniqueKeysWithValues: ks.map { ($0, 0) })
        var distance = ndcg
        var rhoSum = 0.0, rhoCount = 0
        for q in 0..<query.rows {
            let (order, embedding) = setup.ranking(ofQuery: q)
            let labelDistances = order.map { euclidean(queryLabels, q, refLabels, $0) }
            let ideal = labelDistances.sorted()
            for k in ks {
                var dcg = 0.0, idcg = 0.0, sum = 0.0
                for i in 0..<k {
                    dcg += discount[i] / (1 + labelDistances[i])
                    idcg += discount[i] / (1 + ideal[i])
                    sum += labelDistances[i]
                }
                ndcg[k, default: 0] += dcg / idcg
                distance[k, default: 0] += sum / Double(k)
            }
            let embeddingDistances = order.map { embedding[$0] }
            if let rho = spearman(embeddingDistances, labelDistances) {
                rhoSum += rho
                rhoCount += 1
            }
        }
        let n = Double(query.rows)
        return GradedMetrics(
            ndcg: ndcg.mapValues { $0 / n }, labelDistance: distance.mapValues { $0 / n },
            spearman: rhoCount > 0 ? rhoSum / Double(rhoCount) : .nan)
    }

    // MARK: Shared pieces

    /// Inputs checked once, and per-query rankings.
    struct Setup {
        let query: FloatMatrix
        let reference: FloatMatrix
        let leaveOneOut: Bool
        var referenceRows: Int { reference.rows }

        init(query: FloatMatrix, queryCount: Int, reference: FloatMatrix?, referenceCount: Int?) throws {
            self.query = query
            self.reference = reference ?? query
            leaveOneOut = reference == nil
            guard query.columns == self.reference.columns else {
                throw EvaluationError.dimensionMismatch("query dimension \(query.columns) != reference dimension \(self.reference.columns)")
            }
            guard queryCount == query.rows else {
                throw EvaluationError.countMismatch("\(query.rows) query embeddings but \(queryCount) query labels")
            }
            if !leaveOneOut, let referenceCount, referenceCount != self.reference.rows {
                throw EvaluationError.countMismatch("\(self.reference.rows) reference embeddings but \(referenceCount) reference labels")
            }
            if !leaveOneOut && referenceCount == nil {
                throw EvaluationError.countMismatch("reference embeddings given without reference labels")
            }
            guard !leaveOneOut || query.rows >= 2 else {
                throw EvaluationError.tooFew("leave-one-out evaluation needs at least 2 samples")
            }
            guard query.rows >= 1, self.reference.rows >= 1 else { throw EvaluationError.tooFew("no embeddings to evaluate") }
            try checkFinite(query, "query embeddings")
            if !leaveOneOut { try checkFinite(self.reference, "reference embeddings") }
        }

        /// Reference indices by ascending distance (stable), without the query itself when leaving one out,
        /// and the distances to every reference row.
        func ranking(ofQuery q: Int) -> (order: [Int], distances: [Double]) {
            let distances = (0..<reference.rows).map { euclidean(query, q, reference, $0) }
            var order = Array(0..<reference.rows)
            if leaveOneOut { order.remove(at: q) }
            order.sort { distances[$0] < distances[$1] || (distances[$0] == distances[$1] && $0 < $1) }
            return (order, distances)
        }
    }

    static func euclidean(_ a: FloatMatrix, _ i: Int, _ b: FloatMatrix, _ j: Int) -> Double {
        var sum = 0.0
        for c in 0..<a.columns {
            let diff = Double(a.values[i * a.columns + c]) - Double(b.values[j * b.columns + c])
            sum += diff * diff
        }
        return sum.squareRoot()
    }

    static func checkFinite(_ m: FloatMatrix, _ name: String) throws {
        if let bad = m.values.firstIndex(where: { !$0.isFinite }) {
            throw EvaluationError.nonFinite("\(name) contain a NaN or infinite value (row \(bad / max(m.columns, 1)))")
        }
    }

    /// Spearman's rho (Pearson correlation of average ranks); nil when either side is constant.
    static func spearman(_ x: [Double], _ y: [Double]) -> Double? {
        guard let xMin = x.min(), let xMax = x.max(), let yMin = y.min(), let yMax = y.max(), xMax > xMin, yMax > yMin else {
            return nil
        }
        let rx = averageRanks(x), ry = averageRanks(y)
        let mx = rx.reduce(0, +) / Double(rx.count), my = ry.reduce(0, +) / Double(ry.count)
        var sxy = 0.0, sxx = 0.0, syy = 0.0
        for i in 0..<rx.count {
            sxy += (rx[i] - mx) * (ry[i] - my)
            sxx += (rx[i] - mx) * (rx[i] - mx)
            syy += (ry[i] - my) * (ry[i] - my)
        }
        return sxy / (sxx * syy).squareRoot()
    }

    /// 1-based ranks, tied values sharing the mean of their ranks.
    static func averageRanks(_ values: [Double]) -> [Double] {
        let order = values.indices.sorted { values[$0] < values[$1] }
        var ranks = [Double](repeating: 0, count: values.count)
        var start = 0
        while start < order.count {
            var end = start
            while end + 1 < order.count && values[order[end + 1]] == values[order[start]] { end += 1 }
            let rank = Double(start + end) / 2 + 1
            for i in start...end { ranks[order[i]] = rank }
            start = end + 1
        }
        return ranks
    }
}
