import DMLIndex
import Foundation
import Testing

private let d = 24

@Suite struct ExactSearchMatchesBruteForce {
    @Test(arguments: [Metric.l2, .innerProduct, .cosine])
    func flatIndexReturnsTheExactNeighbours(metric: Metric) throws {
        let base = clusteredVectors(600, d, seed: 3)
        let queries = clusteredVectors(25, d, seed: 4)
        let index = try VectorIndex(dimension: d, factory: "Flat", metric: metric)
        #expect(try index.add(base) == 0..<600)
        let results = try index.search(queries, k: 10)
        let exact = bruteForce(base: base, queries: queries, d: d, k: 10, metric: metric)
        for q in 0..<25 {
            let got = results.neighbors(ofQuery: q)
            #expect(got.map(\.id) == exact[q].map(\.id))
            for (a, b) in zip(got, exact[q]) { #expect(abs(a.distance - b.distance) <= 1e-4 * max(1, abs(b.distance))) }
        }
    }

    @Test(arguments: [Metric.l2, .innerProduct, .cosine])
    func everyBatchSizeGivesTheExactNeighbours(metric: Metric) throws {
        // Single queries and small batches take one-query rows, larger batches the GEMM tile (CDMLKernels'
        // dml_flat_search); `distanceBLASThreshold` still steers FAISS's own path (range search, DMLKIT_SEARCH=faiss).
        #expect(VectorIndex.distanceBLASThreshold == 2)
        let base = clusteredVectors(500, d, seed: 7)
        let queries = clusteredVectors(19, d, seed: 8)
        let index = try VectorIndex(dimension: d, factory: "Flat", metric: metric)
        try index.add(base)
        let exact = bruteForce(base: base, queries: queries, d: d, k: 7, metric: metric)
        for batch in [1, 2, 5, 19] {
            for start in stride(from: 0, to: 19, by: batch) {
                let count = min(batch, 19 - start)
                let results = try index.search(Array(queries[start * d..<(start + count) * d]), k: 7)
                for q in 0..<count {
                    let got = results.neighbors(ofQuery: q)
                    #expect(got.map(\.id) == exact[start + q].map(\.id))
                    for (a, b) in zip(got, exact[start + q]) { #expect(abs(a.distance - b.distance) <= 1e-4 * max(1, abs(b.distance))) }
                }
            }
        }
    }

    @Test func callerGivenIDsComeBackFromSearch() throws {
        let base = clusteredVectors(300, d, seed: 5)
        let ids = (0..<300).map { Int64($0) * 1_000_003 + (1 << 40) }
        let index = try VectorIndex(dimension: d, factory: "Flat", metric: .l2)
        try index.add(base, ids: ids)
        let queries = Array(base[0..<(3 * d)])
        let exact = bruteForce(base: base, ids: ids, queries: queries, d: d, k: 5, metric: .l2)
        let results = try index.search(queries, k: 5)
        for q in 0..<3 { #expect(results.neighbors(ofQuery: q).map(\.id) == exact[q].map(\.id)) }
        #expect(results.neighbors(ofQuery: 0).first?.id == ids[0])
        // Automatic ids continue after the largest id given.
        #expect(try index.add(Array(base[0..<d])) == ids.max()! + 1..<ids.max()! + 2)
    }

    @Test func rangeSearchFindsExactlyTheVectorsWithinTheRadius() throws {
        let base = clusteredVectors(400, d, seed: 6)
        let index = try VectorIndex(dimension: d, factory: "Flat", metric: .l2)
        try index.add(base)
        let query = Array(base[0..<d])
        let all = bruteForce(base: base, queries: query, d: d, k: 400, metric: .l2)[0]
        // 30 inside; halfway to the 31st, so float rounding of the kernels (SIMD order vs this loop) cannot flip one.
        let radius = (all[29].distance + all[30].distance) / 2
        try #require(all[29].distance < radius && radius < all[30].distance)
        let expected = Set(all.filter { $0.distance < radius }.map(\.id))
        let found = try index.rangeSearch(vector: query, radius: radius)
        #expect(Set(found.map(\.id)) == expected)
        #expect(found.map(\.distance) == found.map(\.distance).sorted())
    }
}

@Suite struct ApproximateIndexes {
    let base = clusteredVectors(4000, d, clusters: 40, seed: 7)
    let queries = clusteredVectors(50, d, clusters: 40, seed: 8)

    @Test func hnswRecallAt10IsHighAndGrowsWithEfSearch() throws {
        let index = try VectorIndex(dimension: d, factory: "HNSW32", metric: .l2)
        try index.add(base)
        let exact = bruteForce(base: base, queries: queries, d: d, k: 10, metric: .l2)
        let low = recall(try index.search(queries, k: 10, parameters: .init(efSearch: 10)), exact: exact)
        let high = recall(try index.search(queries, k: 10, parameters: .init(efSearch: 200)), exact: exact)
        #expect(high >= 0.97)
        #expect(high >= low)
    }

    @Test func ivfWithAllListsProbedIsExact() throws {
        let index = try VectorIndex(dimension: d, factory: "IVF16,Flat", metric: .innerProduct)
        #expect(!index.isTrained)
        try index.train(base)
        try index.add(base)
        let exact = bruteForce(base: base, queries: queries, d: d, k: 10, metric: .innerProduct)
        let one = recall(try index.search(queries, k: 10, parameters: .init(nprobe: 1)), exact: exact)
        let all = recall(try index.search(queries, k: 10, parameters: .init(nprobe: 16)), exact: exact)
        #expect(all == 1.0)
        #expect(one < all)
        // Per-call parameters do not change the index's default (nprobe 1).
        #expect(recall(try index.search(queries, k: 10), exact: exact) == one)
    }

    @Test(arguments: ["Flat", "HNSW32", "IVF8,Flat", "SQ8", "PQ4", "IDMap,Flat"])
    func filteredSearchReturnsOnlyAllowedIDs(factory: String) throws {
        let index = try VectorIndex(dimension: d, factory: factory, metric: .l2)
        let ids = (0..<Int64(4000)).map { $0 * 7 + 3 }
        if !index.isTrained { try index.train(base) }
        try index.add(base, ids: ids)
        let allowed = Array(ids.shuffled(using: &rngForFilter)[0..<300])
        let results = try index.search(queries, k: 10, parameters: .init(nprobe: factory.hasPrefix("IVF") ? 8 : nil, allowedIDs: allowed))
        let allowedSet = Set(allowed)
        for q in 0..<queries.count / d {
            let hits = results.neighbors(ofQuery: q)
            #expect(hits.count == 10)
            #expect(hits.allSatisfy { allowedSet.contains($0.id) })
        }
        if factory == "Flat" || factory == "IDMap,Flat" || factory == "IVF8,Flat" {
            let exact = bruteForce(base: base, ids: ids, queries: queries, d: d, k: 10, metric: .l2, allowed: allowedSet)
            #expect(recall(results, exact: exact) == 1.0)
        }
    }
}

nonisolated(unsafe) private var rngForFilter = SeededGenerator(seed: 99)

@Suite struct RemovingAndReconstructing {
    @Test func removedIDsAreNeverReturnedAgain() throws {
        let base = clusteredVectors(200, d, seed: 9)
        let index = try VectorIndex(dimension: d, factory: "Flat", metric: .l2)
        try index.add(base)
        #expect(try index.remove(ids: [0, 1, 2, 999]) == 3)
        #expect(index.count == 197)
        let hits = try index.search(vector: Array(base[0..<d]), k: 20)
        #expect(!hits.contains { [0, 1, 2].contains($0.id) })
        #expect(throws: VectorIndexError.unknownID(1)) { try index.reconstruct(id: 1) }
    }

    @Test(arguments: ["Flat", "IVF4,Flat", "HNSW16"])
    func reconstructReturnsTheStoredVector(factory: String) throws {
        let base = clusteredVectors(300, d, seed: 10)
        let index = try VectorIndex(dimension: d, factory: factory, metric: .l2)
        if !index.isTrained { try index.train(base) }
        try index.add(base, ids: (0..<300).map { Int64($0) + 500 })
        #expect(try index.reconstruct(id: 517) == Array(base[17 * d..<18 * d]))
        #expect(throws: VectorIndexError.unknownID(5)) { try index.reconstruct(id: 5) }
    }

    @Test func hnswCannotRemoveAndSaysSo() throws {
        let index = try VectorIndex(dimension: d, factory: "HNSW16", metric: .l2)
        try index.add(clusteredVectors(50, d))
        #expect(throws: VectorIndexError.self) { try index.remove(ids: [1]) }
        #expect(index.count == 50)
    }

    @Test func resetEmptiesTheIndex() throws {
        let index = try VectorIndex(dimension: d, metric: .l2)
        try index.add(clusteredVectors(10, d))
        try index.reset()
        #expect(index.count == 0)
        #expect(throws: VectorIndexError.emptyIndex) { try index.search(clusteredVectors(1, d), k: 1) }
    }
}

@Suite struct Persistence {
    @Test(arguments: [("Flat", Metric.cosine), ("HNSW16", .l2), ("IVF8,Flat", .innerProduct)])
    func fileRoundTripGivesIdenticalResults(factory: String, metric: Metric) throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = clusteredVectors(800, d, seed: 11)
        let queries = clusteredVectors(10, d, seed: 12)
        let index = try VectorIndex(dimension: d, factory: factory, metric: metric)
        if !index.isTrained { try index.train(base) }
        try index.add(base)
        let before = try index.search(queries, k: 8)
        let url = dir.appendingPathComponent("index.faiss")
        try index.save(to: url)
        let loaded = try VectorIndex.load(contentsOf: url)
        #expect(loaded.metric == metric && loaded.count == 800 && loaded.factory == factory)
        #expect(try loaded.search(queries, k: 8) == before)
        let fromData = try VectorIndex(serialized: try index.serialized(), metric: metric)
        #expect(try fromData.search(queries, k: 8) == before)
        // Only the index and its sidecar: no temporary files left behind.
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(names == ["index.faiss", "index.faiss.dml.json"])
    }

    @Test func memoryMappedIVFSearchesTheSame() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = clusteredVectors(1000, d, seed: 13)
        let index = try VectorIndex(dimension: d, factory: "IVF8,Flat", metric: .l2)
        try index.train(base)
        try index.add(base)
        let url = dir.appendingPathComponent("ivf.faiss")
        try index.save(to: url)
        let mapped = try VectorIndex.load(contentsOf: url, mmap: true)
        let queries = clusteredVectors(5, d, seed: 14)
        #expect(try mapped.search(queries, k: 5, parameters: .init(nprobe: 4)) == index.search(queries, k: 5, parameters: .init(nprobe: 4)))
    }

    @Test func savingOverAnExistingFileReplacesItWhole() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("x.faiss")
        let small = try VectorIndex(dimension: d, metric: .l2)
        try small.add(clusteredVectors(5, d))
        try small.save(to: url)
        let big = try VectorIndex(dimension: d, metric: .l2)
        try big.add(clusteredVectors(500, d))
        try big.save(to: url)
        #expect(try VectorIndex.load(contentsOf: url).count == 500)
    }

    @Test func savingIntoAMissingDirectoryFailsWithoutWritingAnything() throws {
        let index = try VectorIndex(dimension: d)
        let url = URL(fileURLWithPath: "/nonexistent-\(UUID().uuidString)/x.faiss")
        #expect(throws: VectorIndexError.self) { try index.save(to: url) }
    }
}

@Suite struct BadInputIsRefusedWithATypedError {
    @Test func unknownFactoryString() {
        #expect {
            try VectorIndex(dimension: d, factory: "NoSuchIndex42")
        } throws: { error in
            guard case VectorIndexError.invalidFactory(let s, let reason) = error else { return false }
            return s == "NoSuchIndex42" && !reason.isEmpty
        }
        #expect(throws: VectorIndexError.self) { try VectorIndex(dimension: 10, factory: "PQ16") }  // 10 % 16 != 0
        #expect(throws: VectorIndexError.invalidDimension(0)) { try VectorIndex(dimension: 0) }
    }

    @Test func wrongDimension() throws {
        let index = try VectorIndex(dimension: d, metric: .l2)
        #expect(throws: VectorIndexError.dimensionMismatch(expected: d, actual: 5)) { try index.add([Float](repeating: 1, count: d + 5)) }
        try index.add(clusteredVectors(10, d))
        #expect(throws: VectorIndexError.dimensionMismatch(expected: d, actual: 3)) { try index.search(vector: [1, 2, 3], k: 1) }
    }

    @Test func nanAndInfinityInVectorsAndQueries() throws {
        let index = try VectorIndex(dimension: d, metric: .l2)
        var bad = clusteredVectors(3, d)
        bad[d + 4] = .nan
        #expect(throws: VectorIndexError.nonFiniteValue(row: 1, column: 4)) { try index.add(bad) }
        #expect(index.count == 0)
        try index.add(clusteredVectors(3, d))
        var query = clusteredVectors(1, d)
        query[2] = .infinity
        #expect(throws: VectorIndexError.nonFiniteValue(row: 0, column: 2)) { try index.search(vector: query, k: 1) }
    }

    @Test func kOutOfRange() throws {
        let index = try VectorIndex(dimension: d, metric: .l2)
        try index.add(clusteredVectors(5, d))
        #expect(throws: VectorIndexError.kExceedsCount(k: 6, count: 5)) { try index.search(clusteredVectors(1, d), k: 6) }
        #expect(throws: VectorIndexError.invalidK(0)) { try index.search(clusteredVectors(1, d), k: 0) }
    }

    @Test func emptyAndUntrainedIndexes() throws {
        let empty = try VectorIndex(dimension: d, metric: .l2)
        #expect(throws: VectorIndexError.emptyIndex) { try empty.search(clusteredVectors(1, d), k: 1) }
        let ivf = try VectorIndex(dimension: d, factory: "IVF8,Flat", metric: .l2)
        #expect(throws: VectorIndexError.notTrained) { try ivf.add(clusteredVectors(5, d)) }
        #expect(throws: VectorIndexError.notTrained) { try ivf.search(clusteredVectors(1, d), k: 1) }
    }

    @Test func badIDs() throws {
        let index = try VectorIndex(dimension: d, metric: .l2)
        let two = clusteredVectors(2, d)
        #expect(throws: VectorIndexError.idCountMismatch(vectors: 2, ids: 1)) { try index.add(two, ids: [1]) }
        #expect(throws: VectorIndexError.self) { try index.add(two, ids: [4, 4]) }
        #expect(throws: VectorIndexError.self) { try index.add(two, ids: [-1, 3]) }
        #expect(index.count == 0)
    }

    @Test func zeroVectorUnderCosine() throws {
        let index = try VectorIndex(dimension: d, metric: .cosine)
        #expect(throws: VectorIndexError.zeroVector(row: 0)) { try index.add([Float](repeating: 0, count: d)) }
    }

    @Test func parametersThatDoNotApply() throws {
        let index = try VectorIndex(dimension: d, factory: "Flat", metric: .l2)
        try index.add(clusteredVectors(20, d))
        #expect(throws: VectorIndexError.self) { try index.search(clusteredVectors(1, d), k: 1, parameters: .init(efSearch: 16)) }
        #expect(throws: VectorIndexError.self) { try index.search(clusteredVectors(1, d), k: 1, parameters: .init(nprobe: 0)) }
    }

    @Test func truncatedRandomAndMissingIndexFiles() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let index = try VectorIndex(dimension: d, factory: "HNSW16", metric: .l2)
        try index.add(clusteredVectors(300, d))
        let full = try index.serialized()
        for cut in [3, 40, full.count / 2, full.count - 1] {
            let url = dir.appendingPathComponent("cut\(cut).faiss")
            try full.prefix(cut).write(to: url)
            #expect(throws: VectorIndexError.self) { try VectorIndex.load(contentsOf: url) }
            #expect(throws: VectorIndexError.self) { try VectorIndex(serialized: full.prefix(cut)) }
        }
        var rng = SeededGenerator(seed: 5)
        let junk = dir.appendingPathComponent("junk.faiss")
        try Data((0..<4096).map { _ in UInt8.random(in: 0...255, using: &rng) }).write(to: junk)
        #expect(throws: VectorIndexError.self) { try VectorIndex.load(contentsOf: junk) }
        #expect(throws: VectorIndexError.self) { try VectorIndex.load(contentsOf: dir.appendingPathComponent("missing.faiss")) }
        #expect(throws: VectorIndexError.self) { try VectorIndex(serialized: Data()) }
    }
}
