import DMLKit
import DMLNpy
import Foundation
import Testing

/// Cases computed by training/dmlkit/evaluation.py (checked there against pytorch-metric-learning);
/// written by Tests/Fixtures/evaluation/make_fixtures.py.
private struct Case: Decodable {
    let kind: String
    let query: [[Float]]
    let query_labels: AnyLabels
    let reference: [[Float]]?
    let reference_labels: AnyLabels?
    let ks: [Int]
    let expected: [String: Double]
}

/// Class labels are integers, graded labels are vectors.
private enum AnyLabels: Decodable {
    case classes([Int64])
    case vectors([[Float]])
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let ints = try? c.decode([Int64].self) { self = .classes(ints) } else { self = .vectors(try c.decode([[Float]].self)) }
    }
}

private func matrix(_ rows: [[Float]]) -> FloatMatrix {
    FloatMatrix(rows: rows.count, columns: rows.first?.count ?? 0, values: rows.flatMap { $0 })
}

private func load(_ name: String) throws -> Case {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/evaluation/\(name).json")
    return try JSONDecoder().decode(Case.self, from: Data(contentsOf: url))
}

@Suite struct RetrievalMetricsMatchThePythonSide {
    @Test(arguments: ["class_leave_one_out", "class_query_reference"])
    func classMetrics(name: String) throws {
        let c = try load(name)
        guard case .classes(let ql) = c.query_labels else { Issue.record("labels"); return }
        var rl: [Int64]?
        if case .classes(let r)? = c.reference_labels { rl = r }
        let m = try RetrievalMetrics.classMetrics(
            query: matrix(c.query), queryLabels: ql, reference: c.reference.map(matrix), referenceLabels: rl, ks: c.ks)
        for k in c.ks { #expect(abs(m.recall[k]! - c.expected["recall@\(k)"]!) < 1e-12) }
        #expect(abs(m.rPrecision - c.expected["r_precision"]!) < 1e-12)
        #expect(abs(m.mapAtR - c.expected["map@r"]!) < 1e-12)
        #expect(Double(m.queryCount) == c.expected["num_queries"]!)
    }

    @Test(arguments: ["graded_leave_one_out", "graded_query_reference"])
    func gradedMetrics(name: String) throws {
        let c = try load(name)
        guard case .vectors(let ql) = c.query_labels else { Issue.record("labels"); return }
        var rl: FloatMatrix?
        if case .vectors(let r)? = c.reference_labels { rl = matrix(r) }
        let m = try RetrievalMetrics.gradedMetrics(
            query: matrix(c.query), queryLabels: matrix(ql), reference: c.reference.map(matrix), referenceLabels: rl, ks: c.ks)
        for k in c.ks {
            #expect(abs(m.ndcg[k]! - c.expected["ndcg@\(k)"]!) < 1e-9)
            #expect(abs(m.labelDistance[k]! - c.expected["label_distance@\(k)"]!) < 1e-6)
        }
        #expect(abs(m.spearman - c.expected["spearman"]!) < 1e-9)
    }
}

@Suite struct RetrievalMetricsByHand {
    @Test func classMetricsOnALine() throws {
        // Query at 0 (class 0); references at 1 (class 1), 2 (class 0), 3 (class 0), 4 (class 1).
        let m = try RetrievalMetrics.classMetrics(
            query: FloatMatrix(rows: 1, columns: 1, values: [0]), queryLabels: [0],
            reference: FloatMatrix(rows: 4, columns: 1, values: [1, 2, 3, 4]), referenceLabels: [1, 0, 0, 1], ks: [1, 2])
        #expect(m.recall[1] == 0 && m.recall[2] == 1)
        #expect(m.rPrecision == 0.5)
        #expect(m.mapAtR == 0.25)
    }

    @Test func gradedMetricsOnALine() throws {
        // Retrieved in the order of label distances 2, 0.5, 1.
        let m = try RetrievalMetrics.gradedMetrics(
            query: FloatMatrix(rows: 1, columns: 1, values: [0]), queryLabels: FloatMatrix(rows: 1, columns: 1, values: [0]),
            reference: FloatMatrix(rows: 3, columns: 1, values: [1, 2, 3]),
            referenceLabels: FloatMatrix(rows: 3, columns: 1, values: [2, 0.5, 1]), ks: [1, 2])
        let g = { (d: Double) in 1 / (1 + d) }
        #expect(abs(m.ndcg[1]! - g(2) / g(0.5)) < 1e-12)
        #expect(abs(m.ndcg[2]! - (g(2) + g(0.5) / log2(3)) / (g(0.5) + g(1) / log2(3))) < 1e-12)
        #expect(abs(m.labelDistance[2]! - 1.25) < 1e-12)
        #expect(abs(m.spearman - (-0.5)) < 1e-12)  // ranks (1,2,3) vs (3,1,2)
    }

    @Test func badInputIsRefused() {
        let x = FloatMatrix(rows: 3, columns: 1, values: [0, 0.1, 5])
        #expect(throws: EvaluationError.self) { try RetrievalMetrics.classMetrics(query: x, queryLabels: [0, 0]) }
        #expect(throws: EvaluationError.nothingRelevant) { try RetrievalMetrics.classMetrics(query: x, queryLabels: [0, 1, 2]) }
        #expect(throws: EvaluationError.self) {
            try RetrievalMetrics.classMetrics(query: FloatMatrix(rows: 2, columns: 1, values: [.nan, 1]), queryLabels: [0, 0])
        }
        #expect(throws: EvaluationError.self) {
            try RetrievalMetrics.gradedMetrics(query: x, queryLabels: x, ks: [3])  // only 2 others to rank
        }
        #expect(throws: EvaluationError.self) {
            try RetrievalMetrics.classMetrics(query: FloatMatrix(rows: 1, columns: 1, values: [0]), queryLabels: [0])
        }
    }
}
