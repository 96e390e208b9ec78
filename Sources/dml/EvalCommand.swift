import ArgumentParser
import DMLKit
import DMLNpy
import Foundation

/// `dml eval`: retrieval metrics from embeddings and labels. Integer labels are classes (Recall@K, R-precision,
/// MAP@R); float labels are continuous (nDCG@K with gain 1/(1+d), mean label distance@K, Spearman).
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Class or graded retrieval metrics from embeddings and labels (.npy).")

    @Option(help: "Query embeddings (n, d) .npy.") var embeddings: String
    @Option(help: "Query labels: int64 (n,) classes, or float (n,) / (n, L) continuous labels.") var labels: String
    @Option(help: "Reference embeddings; default: the queries, each query leaving itself out.") var reference: String?
    @Option(help: "Reference labels, same kind as --labels.") var referenceLabels: String?
    @Option(help: "Cut-offs K, comma-separated (default 1,2,4,8 for classes, 1,5,10 for graded).") var ks: String?
    @Flag(help: "Print as JSON.") var json = false

    func run() throws {
        guard (reference == nil) == (referenceLabels == nil) else {
            throw CLIError("--reference and --reference-labels go together")
        }
        let query = try Npy.readMatrix(contentsOf: fileURL(embeddings))
        let queryLabels = try Npy.read(contentsOf: fileURL(labels))
        let ref = try reference.map { try Npy.readMatrix(contentsOf: fileURL($0)) }
        let refLabels = try referenceLabels.map { try Npy.read(contentsOf: fileURL($0)) }
        let cutoffs = try ks.map(parseKs)
        switch queryLabels.dtype {
        case .int64, .int32:
            let m = try RetrievalMetrics.classMetrics(
                query: query, queryLabels: try queryLabels.int64s(), reference: ref,
                referenceLabels: try refLabels?.int64s(), ks: cutoffs ?? [1, 2, 4, 8])
            var rows = m.recall.keys.sorted().map { ("recall@\($0)", m.recall[$0]!) }
            rows += [("r_precision", m.rPrecision), ("map@r", m.mapAtR)]
            try report(rows, extra: ["num_queries": Double(m.queryCount)])
        case .float32, .float64:
            let m = try RetrievalMetrics.gradedMetrics(
                query: query, queryLabels: try labelMatrix(queryLabels), reference: ref,
                referenceLabels: try refLabels.map(labelMatrix), ks: cutoffs ?? [1, 5, 10])
            var rows = m.ndcg.keys.sorted().map { ("ndcg@\($0)", m.ndcg[$0]!) }
            rows += m.labelDistance.keys.sorted().map { ("label_distance@\($0)", m.labelDistance[$0]!) }
            rows.append(("spearman", m.spearman))
            try report(rows, extra: [:])
        case .uint8:
            throw CLIError("\(labels): labels must be int64 (classes) or float (continuous), not uint8")
        }
    }

    private func labelMatrix(_ array: NpyArray) throws -> FloatMatrix {
        let values = try array.floats()
        switch array.shape.count {
        case 1: return FloatMatrix(rows: array.shape[0], columns: 1, values: values)
        case 2: return FloatMatrix(rows: array.shape[0], columns: array.shape[1], values: values)
        default: throw CLIError("continuous labels must be 1-D or 2-D, got shape \(array.shape)")
        }
    }

    private func parseKs(_ text: String) throws -> [Int] {
        let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) >= 1 }) else { throw CLIError("--ks expects positive integers like 1,5,10") }
        return values.compactMap { $0 }
    }

    private func report(_ rows: [(String, Double)], extra: [String: Double]) throws {
        if json {
            var dict = Dictionary(uniqueKeysWithValues: rows)
            dict.merge(extra) { a, _ in a }
            try printJSON(dict.mapValues { $0.isFinite ? Optional($0) : nil })
        } else {
            for (name, value) in rows { print("\(name.padding(toLength: 20, withPad: " ", startingAt: 0)) \(String(format: "%.4f", value))") }
            for (name, value) in extra.sorted(by: { $0.key < $1.key }) { print("\(name.padding(toLength: 20, withPad: " ", startingAt: 0)) \(Int(value))") }
        }
    }
}
