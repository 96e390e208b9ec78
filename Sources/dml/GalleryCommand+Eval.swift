import ArgumentParser
import DMLKit
import DMLNpy
import Foundation

/// `dml gallery eval`: leave-one-out graded metrics of the image space, with the pose distance as the label distance.
struct GalleryEvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Graded metrics of the image space against pose distance (leave-one-out).")

    @Argument(help: "Gallery directory.") var directory: String
    @Option(help: "Query items, drawn at random without replacement.") var queries = 200
    @Option(help: "Random seed for the query draw.") var seed: UInt64 = 0
    @Option(help: "Embedding space to evaluate.") var space = "image"
    @Flag(help: "Print as JSON.") var json = false

    func run() throws {
        let report = try GalleryEvaluation(reader: try openReader(directory)).evaluate(space: space, queries: queries, seed: seed)
        if json { return try printJSON(report) }
        print(report.table(title: space))
        print(report.idealRow("ideal (ranked by pose distance)"))
    }
}

/// Evaluation of a stored space against pose distance; shared with `dml demo`.
struct GalleryEvaluation {
    let reader: GalleryReader

    struct Report: Encodable {
        var space: String
        var queries: Int
        var skippedQueries: Int
        var ndcg: [String: Double]
        var meanPoseDistance: [String: Double]
        /// The floor: mean pose distance of the K nearest items by pose distance itself.
        var idealMeanPoseDistance: [String: Double]
        var spearman: Double?

        enum CodingKeys: String, CodingKey {
            case space, queries, skippedQueries = "skipped_queries", ndcg, meanPoseDistance = "mean_pose_distance",
                 idealMeanPoseDistance = "ideal_mean_pose_distance", spearman
        }

        /// A Markdown table row set for one space.
        func table(title: String) -> String {
            let ks = ndcg.keys.compactMap(Int.init).sorted()
            var lines = ["| space | " + ks.map { "nDCG@\($0)" }.joined(separator: " | ") + " | "
                + ks.map { "pose d@\($0)" }.joined(separator: " | ") + " | Spearman | queries |"]
            lines.append("|---|" + String(repeating: "---|", count: 2 * ks.count + 2))
            lines.append(row(title))
            return lines.joined(separator: "\n")
        }

        /// The row a perfect ranking (by pose distance itself) would get.
        func idealRow(_ title: String) -> String {
            let ks = ndcg.keys.compactMap(Int.init).sorted()
            let cells = ks.map { _ in "1" } + ks.map { String(format: "%.4f", idealMeanPoseDistance[String($0)] ?? .nan) }
            return "| \(title) | " + cells.joined(separator: " | ") + " | 1 | \(queries) |"
        }

        func row(_ title: String) -> String {
            let ks = ndcg.keys.compactMap(Int.init).sorted()
            let cells = ks.map { String(format: "%.4f", ndcg[String($0)] ?? .nan) } + ks.map { String(format: "%.4f", meanPoseDistance[String($0)] ?? .nan) }
            return "| \(title) | " + cells.joined(separator: " | ") + " | " + (spearman.map { String(format: "%.4f", $0) } ?? "-")
                + " | \(queries) |"
        }
    }

    func evaluate(space: String, queries: Int, seed: UInt64, ks: [Int] = [1, 10, 50]) throws -> Report {
        let (ids, vectors) = try reader.embeddings(space: space)
        guard let dimension = try reader.spaces().first(where: { $0.name == space })?.dimension, !ids.isEmpty else {
            throw CLIError("the gallery has no '\(space)' embeddings")
        }
        return try evaluate(FloatMatrix(rows: ids.count, columns: dimension, values: vectors), ids: ids, name: space,
                            queries: queries, seed: seed, ks: ks)
    }

    /// Evaluates any embeddings of the gallery's items (rows in `ids` order), e.g. a random baseline.
    func evaluate(_ embeddings: FloatMatrix, ids: [Int64], name: String, queries: Int, seed: UInt64, ks: [Int] = [1, 10, 50]) throws -> Report {
        guard queries >= 1 else { throw CLIError("--queries must be at least 1") }
        let poses = Dictionary(try reader.items().map { ($0.id, $0.item.pose) }, uniquingKeysWith: { a, _ in a })
        let normalized = ids.map { id in poses[id].flatMap { $0 }.flatMap { try? $0.normalized() } }
        let n = ids.count
        guard n >= 2 else { throw CLIError("evaluation needs at least 2 items") }
        var rng = SplitMix64(seed: seed)
        var order = Array(0..<n)
        let drawn = min(queries, n)
        for i in 0..<drawn { order.swapAt(i, i + Int(rng.next() % UInt64(n - i))) }
        let usable = ks.filter { $0 <= n - 1 }
        guard !usable.isEmpty else { throw CLIError("the gallery is too small for K = \(ks)") }
        let report = try RetrievalMetrics.gradedMetrics(embeddings: embeddings, queries: Array(order.prefix(drawn)), ks: usable) { i, j in
            guard let a = normalized[i], let b = normalized[j] else { return nil }
            return try? a.distance(to: b)
        }
        let m = report.metrics
        return Report(
            space: name, queries: report.queryCount, skippedQueries: report.skippedQueries,
            ndcg: Dictionary(uniqueKeysWithValues: m.ndcg.map { (String($0.key), $0.value) }),
            meanPoseDistance: Dictionary(uniqueKeysWithValues: m.labelDistance.map { (String($0.key), $0.value) }),
            idealMeanPoseDistance: Dictionary(uniqueKeysWithValues: report.idealLabelDistance.map { (String($0.key), $0.value) }),
            spearman: m.spearman.isNaN ? nil : m.spearman)
    }
}
