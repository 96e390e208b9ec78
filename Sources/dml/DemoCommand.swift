import ArgumentParser
import DMLIndex
import Foundation

/// `dml demo`: the main job on generated data, no arguments needed.
///
/// For now: a labelled set of clustered vectors stands in for embeddings; it is indexed exactly (Flat) and
/// approximately (HNSW32, IVF), searched, scored against the exact answer and the labels, saved and reloaded.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "demo", abstract: "Run the main job on generated data.")

    @Option(help: "Gallery size.") var count = 20_000
    @Option(help: "Vector dimension.") var dim = 64
    @Option(help: "Queries.") var queries = 500
    @Option(help: "Random seed.") var seed: UInt64 = 7

    func run() throws {
        guard count >= 100, dim >= 2, queries >= 1 else { throw CLIError("demo needs --count >= 100, --dim >= 2, --queries >= 1") }
        let classes = 50
        var rng = DemoRandom(seed: seed)
        print("Generating \(count) gallery vectors and \(queries) queries (dimension \(dim), \(classes) classes)…")
        let (gallery, galleryLabels) = labelledVectors(count, classes: classes, rng: &rng)
        let (probe, probeLabels) = labelledVectors(queries, classes: classes, rng: &rng)

        let exact = try VectorIndex(dimension: dim, factory: "Flat", metric: .cosine)
        try exact.add(gallery)
        let truth = try exact.search(probe, k: 10)

        print("\n| index | build | search (\(queries) queries) | recall@10 vs exact | label precision@10 |")
        print("|---|---|---|---|---|")
        for (factory, parameters) in [("Flat", SearchParameters()), ("HNSW32", SearchParameters(efSearch: 64)),
                                      ("IVF256,Flat", SearchParameters(nprobe: 16))] {
            let index = try VectorIndex(dimension: dim, factory: factory, metric: .cosine)
            let build = try timed {
                if !index.isTrained { try index.train(gallery) }
                try index.add(gallery)
            }
            var results: SearchResults?
            let search = try timed { results = try index.search(probe, k: 10, parameters: parameters) }
            guard let results else { continue }
            let recall = recallAt10(results, truth)
            let precision = labelPrecision(results, galleryLabels: galleryLabels, queryLabels: probeLabels)
            print("| \(factory) | \(ms(build)) | \(ms(search)) | \(String(format: "%.3f", recall)) | \(String(format: "%.3f", precision)) |")
        }

        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dml-demo-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("gallery.faiss")
        try exact.save(to: file)
        let reloaded = try VectorIndex.load(contentsOf: file)
        let same = try reloaded.search(probe, k: 10) == truth
        print("\nSaved the exact index as a plain FAISS file and reloaded it: \(reloaded.count) vectors, identical results: \(same ? "yes" : "NO")")
        let first = truth.neighbors(ofQuery: 0).prefix(5).map { "#\($0.id) (class \(galleryLabels[Int($0.id)]), cos \(String(format: "%.3f", $0.distance)))" }
        print("Query 0 (class \(probeLabels[0])) → \(first.joined(separator: ", "))")
        if !same { throw CLIError("reloaded index gave different results") }
    }

    private func labelledVectors(_ n: Int, classes: Int, rng: inout DemoRandom) -> ([Float], [Int]) {
        var centres = DemoRandom(seed: seed &+ 1000)  // same class centres for gallery and queries
        let means = (0..<classes * dim).map { _ in centres.normal() }
        var vectors = [Float](repeating: 0, count: n * dim)
        var labels = [Int](repeating: 0, count: n)
        for i in 0..<n {
            let c = Int(rng.next() % UInt64(classes))
            labels[i] = c
            for j in 0..<dim { vectors[i * dim + j] = means[c * dim + j] + 1.6 * rng.normal() }
        }
        return (vectors, labels)
    }

    private func recallAt10(_ r: SearchResults, _ truth: SearchResults) -> Double {
        var hits = 0
        for q in 0..<r.queryCount {
            hits += Set(r.neighbors(ofQuery: q).map(\.id)).intersection(truth.neighbors(ofQuery: q).map(\.id)).count
        }
        return Double(hits) / Double(r.queryCount * 10)
    }

    private func labelPrecision(_ r: SearchResults, galleryLabels: [Int], queryLabels: [Int]) -> Double {
        var same = 0
        for q in 0..<r.queryCount { same += r.neighbors(ofQuery: q).filter { galleryLabels[Int($0.id)] == queryLabels[q] }.count }
        return Double(same) / Double(r.queryCount * 10)
    }

    private func timed(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    private func ms(_ s: Double) -> String { s >= 1 ? String(format: "%.2f s", s) : String(format: "%.1f ms", s * 1000) }
}

/// SplitMix64 with a Box–Muller normal: reproducible demo data on every platform.
struct DemoRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func normal() -> Float {
        let u1 = max(Double(next() >> 11) / Double(1 << 53), 1e-300)
        let u2 = Double(next() >> 11) / Double(1 << 53)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
    }
}
