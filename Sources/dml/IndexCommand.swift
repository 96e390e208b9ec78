import ArgumentParser
import DMLIndex
import DMLNpy
import Foundation

/// `dml index …`: plain FAISS index files, created, filled and searched from `.npy` files.
struct IndexCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index",
        abstract: "Create, train, fill, search and inspect FAISS index files.",
        subcommands: [Create.self, Train.self, Add.self, Search.self, Remove.self, Info.self]
    )

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an empty index file.")
        @Argument(help: "Index file to write.") var out: String
        @Option(help: "Vector dimension.") var dim: Int
        @Option(help: "FAISS factory string, e.g. Flat, HNSW32, IVF1024,Flat, IVF256,PQ16, SQ8.") var factory = "Flat"
        @Option(help: "ip, l2 or cosine.") var metric = "ip"

        func run() throws {
            guard let metric = Metric(rawValue: metric) else { throw CLIError("unknown metric '\(metric)' (use ip, l2 or cosine)") }
            let index = try VectorIndex(dimension: dim, factory: factory, metric: metric)
            try index.save(to: fileURL(out))
            print("created \(out): \(index.typeName), dimension \(dim), metric \(metric.rawValue)\(index.isTrained ? "" : ", needs training")")
        }
    }

    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Train an index (IVF, PQ, SQ) on sample vectors.")
        @Argument(help: "Index file (rewritten in place, atomically).") var index: String
        @Option(help: "Training vectors, .npy float32/float64 (n, d).") var vectors: String
        @OptionGroup var threading: ThreadOptions

        func run() throws {
            try threading.apply()
            let idx = try loadIndex(index)
            let x = try readVectors(vectors, dimension: idx.dimension)
            try idx.train(x.values)
            try idx.save(to: fileURL(index))
            print("trained \(index) on \(x.rows) vectors")
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add vectors, with ids or numbered after the largest id.")
        @Argument(help: "Index file (rewritten in place, atomically).") var index: String
        @Option(help: "Vectors, .npy float32/float64 (n, d).") var vectors: String
        @Option(help: "Ids, .npy int64 (n,).") var ids: String?
        @OptionGroup var threading: ThreadOptions

        func run() throws {
            try threading.apply()
            let idx = try loadIndex(index)
            let x = try readVectors(vectors, dimension: idx.dimension)
            if let ids {
                let given = try Npy.readInt64Vector(contentsOf: fileURL(ids))
                try idx.add(x.values, ids: given)
                print("added \(x.rows) vectors to \(index) (\(idx.count) in all)")
            } else {
                let assigned = try idx.add(x.values)
                print("added \(x.rows) vectors to \(index) as ids \(assigned.lowerBound)..<\(assigned.upperBound) (\(idx.count) in all)")
            }
            try idx.save(to: fileURL(index))
        }
    }

    struct Search: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "k nearest neighbours of query vectors.")
        @Argument(help: "Index file.") var index: String
        @Option(help: "Queries, .npy float32/float64 (n, d).") var queries: String
        @Option(name: .customShort("k"), help: "Neighbours per query.") var k: Int
        @Option(name: .customLong("param"), help: "Search parameter, nprobe=N or efSearch=N (repeatable).")
        var params: [String] = []
        @Option(help: "Only return these ids, .npy int64 (filtered search).") var allowedIds: String?
        @Option(help: "Write ids (n, k) int64 .npy here; -1 where fewer than k qualify.") var idsOut: String?
        @Option(help: "Write distances (n, k) float32 .npy here.") var distancesOut: String?
        @Flag(help: "Print results as JSON.") var json = false
        @OptionGroup var threading: ThreadOptions

        func run() throws {
            try threading.apply()
            let idx = try loadIndex(index)
            let q = try readVectors(queries, dimension: idx.dimension)
            var parameters = try parseSearchParameters(params)
            if let allowedIds { parameters.allowedIDs = try Npy.readInt64Vector(contentsOf: fileURL(allowedIds)) }
            let results = try idx.search(q.values, k: k, parameters: parameters)
            if let idsOut { try Npy.write(results.ids, shape: [q.rows, k], to: fileURL(idsOut)) }
            if let distancesOut { try Npy.write(results.distances, shape: [q.rows, k], to: fileURL(distancesOut)) }
            if json {
                try printJSON(SearchReport(results))
            } else if idsOut == nil && distancesOut == nil {
                for row in 0..<q.rows {
                    let hits = results.neighbors(ofQuery: row).map { "\($0.id) (\(String(format: "%.4f", $0.distance)))" }
                    print("\(row): \(hits.joined(separator: ", "))")
                }
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove vectors by id.")
        @Argument(help: "Index file (rewritten in place, atomically).") var index: String
        @Option(help: "Ids to remove, .npy int64 (n,).") var ids: String

        func run() throws {
            let idx = try loadIndex(index)
            let removed = try idx.remove(ids: try Npy.readInt64Vector(contentsOf: fileURL(ids)))
            try idx.save(to: fileURL(index))
            print("removed \(removed) vectors from \(index) (\(idx.count) left)")
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Describe index files.",
            discussion: "With several files, each is described in turn; a file that cannot be read gets one line on stderr and the exit code is 1.")
        @Argument(help: "Index files.") var indexes: [String]
        @Flag(help: "Print as JSON.") var json = false

        func validate() throws {
            guard !indexes.isEmpty else { throw ValidationError("give at least one index file") }
        }

        func run() throws {
            guard indexes.count > 1 else { return try describe(indexes[0]) }
            var failed = 0
            for index in indexes {
                do {
                    try describe(index)
                } catch {
                    failed += 1
                    FileHandle.standardError.write(Data("dml: \(error)\n".utf8))
                }
            }
            if failed > 0 { throw ExitCode.failure }
        }

        private func describe(_ index: String) throws {
            let idx = try loadIndex(index)
            let size = (try? FileManager.default.attributesOfItem(atPath: index)[.size] as? Int) ?? nil
            let report = IndexReport(
                path: index, type: idx.typeName, factory: idx.factory, dimension: idx.dimension, count: idx.count,
                metric: idx.metric.rawValue, trained: idx.isTrained, storesIDs: idx.storesIDs, fileBytes: size)
            if json {
                try printJSON(report)
            } else {
                print("""
                    \(index): \(report.type)\(report.factory.map { " (factory \($0))" } ?? "")
                      dimension \(report.dimension), \(report.count) vectors, metric \(report.metric), \
                    \(report.trained ? "trained" : "not trained"), \(report.storesIDs ? "64-bit ids" : "ids are positions")
                    """)
            }
        }
    }
}

/// Parses `nprobe=16` / `efSearch=64` into search parameters.
func parseSearchParameters(_ items: [String]) throws -> SearchParameters {
    var parameters = SearchParameters()
    for item in items {
        let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, let value = Int(parts[1]) else { throw CLIError("--param expects NAME=INTEGER, got '\(item)'") }
        switch parts[0] {
        case "nprobe": parameters.nprobe = value
        case "efSearch": parameters.efSearch = value
        default: throw CLIError("unknown search parameter '\(parts[0])' (known: nprobe, efSearch)")
        }
    }
    return parameters
}

struct IndexReport: Encodable {
    let path: String, type: String, factory: String?, dimension: Int, count: Int, metric: String
    let trained: Bool, storesIDs: Bool, fileBytes: Int?
}

struct SearchReport: Encodable {
    struct Query: Encodable {
        let ids: [Int64]
        let distances: [Float]
    }
    let k: Int
    let results: [Query]

    init(_ r: SearchResults) {
        k = r.k
        results = (0..<r.queryCount).map { q in
            let hits = r.neighbors(ofQuery: q)
            return Query(ids: hits.map(\.id), distances: hits.map(\.distance))
        }
    }
}
