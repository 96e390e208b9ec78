import DMLNpy
import Foundation

/// Leave-one-out graded retrieval metrics of a stored embedding space, with the pose distance between items as the
/// label distance (gain 1/(1+d)): what `dml gallery eval` and `dml demo` report.
public struct GalleryEvaluation: Sendable {
    /// The gallery read.
    public let reader: GalleryReader

    /// Evaluates the gallery `reader` reads.
    public init(reader: GalleryReader) { self.reader = reader }

    /// One space's metrics; dictionaries are keyed by K written as a string.
    public struct Report: Sendable, Codable, Equatable {
        /// The space (or the name given to other embeddings).
        public var space: String
        /// Queries evaluated.
        public var queries: Int
        /// Drawn queries without any comparable pose, left out.
        public var skippedQueries: Int
        /// nDCG@K.
        public var ndcg: [String: Double]
        /// Mean pose distance of the top K (torso lengths).
        public var meanPoseDistance: [String: Double]
        /// The floor: mean pose distance of the K nearest items by pose distance itself.
        public var idealMeanPoseDistance: [String: Double]
        /// Spearman correlation of embedding and pose distance (nil when undefined).
        public var spearman: Double?

        enum CodingKeys: String, CodingKey {
            case space, queries, skippedQueries = "skipped_queries", ndcg, meanPoseDistance = "mean_pose_distance",
                 idealMeanPoseDistance = "ideal_mean_pose_distance", spearman
        }

        /// A Markdown table (header and this space's row).
        public func table(title: String) -> String {
            let ks = ndcg.keys.compactMap(Int.init).sorted()
            var lines = ["| space | " + ks.map { "nDCG@\($0)" }.joined(separator: " | ") + " | "
                + ks.map { "pose d@\($0)" }.joined(separator: " | ") + " | Spearman | queries |"]
            lines.append("|---|" + String(repeating: "---|", count: 2 * ks.count + 2))
            lines.append(row(title))
            return lines.joined(separator: "\n")
        }

        /// The row a perfect ranking (by pose distance itself) would get.
        public func idealRow(_ title: String) -> String {
            let ks = ndcg.keys.compactMap(Int.init).sorted()
            let cells = ks.map { _ in "1" } + ks.map { String(format: "%.4f", idealMeanPoseDistance[String($0)] ?? .nan) }
            return "| \(title) | " + cells.joined(separator: " | ") + " | 1 | \(queries) |"
        }

        /// This space's Markdown row.
        public func row(_ title: String) -> String {
            let ks = ndcg.keys.compactMap(Int.init).sorted()
            let cells = ks.map { String(format: "%.4f", ndcg[String($0)] ?? .nan) } + ks.map { String(format: "%.4f", meanPoseDistance[String($0)] ?? .nan) }
            return "| \(title) | " + cells.joined(separator: " | ") + " | " + (spearman.map { String(format: "%.4f", $0) } ?? "-")
                + " | \(queries) |"
        }
    }

    /// Metrics of the stored space `space` over `queries` items drawn at random (seeded) without replacement.
    public func evaluate(space: String, queries: Int, seed: UInt64, ks: [Int] = [1, 10, 50]) throws -> Report {
        let (ids, vectors) = try reader.embeddings(space: space)
        guard let dimension = try reader.spaces().first(where: { $0.name == space })?.dimension, !ids.isEmpty else {
            throw PipelineError("the gallery has no '\(space)' embeddings")
        }
        return try evaluate(FloatMatrix(rows: ids.count, columns: dimension, values: vectors), ids: ids, name: space,
                            queries: queries, seed: seed, ks: ks)
    }

    /// Evaluates any embeddings of the gallery's items (rows in `ids` order), e.g. a random baseline.
    public func evaluate(_ embeddings: FloatMatrix, ids: [Int64], name: String, queries: Int, seed: UInt64, ks: [Int] = [1, 10, 50]) throws -> Report {
        guard queries >= 1 else { throw PipelineError("--queries must be at least 1") }
        let poses = Dictionary(try reader.items().map { ($0.id, $0.item.pose) }, uniquingKeysWith: { a, _ in a })
        let normalized = ids.map { id in poses[id].flatMap { $0 }.flatMap { try? $0.normalized() } }
        let n = ids.count
        guard n >= 2 else { throw PipelineError("evaluation needs at least 2 items") }
        var rng = SplitMix64(seed: seed)
        var order = Array(0..<n)
        let drawn = min(queries, n)
        for i in 0..<drawn { order.swapAt(i, i + Int(rng.next() % UInt64(n - i))) }
        let usable = ks.filter { $0 <= n - 1 }
        guard !usable.isEmpty else { throw PipelineError("the gallery is too small for K = \(ks)") }
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

extension GalleryEvaluation {
    /// `evaluate(space:queries:seed:ks:)` off the calling task.
    public func evaluate(space: String, queries: Int, seed: UInt64, ks: [Int] = [1, 10, 50]) async throws -> Report {
        try await Task.detached { try self.evaluate(space: space, queries: queries, seed: seed, ks: ks) }.value
    }
}
