import DMLIndex
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Index fixtures: valid files written by Python FAISS and crafted edits of them
/// (Tests/Fixtures/index/make_fixtures.py, which also records the defect each crafted file must be refused with).
private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/index")

private func validFixtures() throws -> [URL] {
    try FileManager.default.contentsOfDirectory(at: fixtures.appendingPathComponent("valid"), includingPropertiesForKeys: nil)
        .filter { $0.pathExtension == "faiss" }.sorted { $0.path < $1.path }
}

private func expectedDefects() throws -> [String: String] {
    let data = try Data(contentsOf: fixtures.appendingPathComponent("crafted/expected.json"))
    return try JSONDecoder().decode([String: String].self, from: data)
}

private func defect(of error: Error) -> IndexFileDefect? {
    guard case VectorIndexError.invalidIndexFile(let defect, _) = error else { return nil }
    return defect
}

@Suite struct FAISSFilesAreCheckedBeforeFAISSReadsThem {
    @Test func everyValidFixtureLoadsAndSearches() throws {
        let names = try validFixtures().map { $0.deletingPathExtension().lastPathComponent }
        #expect(names.count == 16)
        for url in try validFixtures() {
            let index = try VectorIndex.load(contentsOf: url)
            #expect(index.dimension == 8)
            #expect(VectorIndex.checkFile(bytes: try Data(contentsOf: url)) == nil)
            let k = min(3, index.count)
            let ivf = url.lastPathComponent.contains("ivf")
            let results = try index.search(vector: [Float](repeating: 0.5, count: 8), k: k, parameters: .init(nprobe: ivf ? 16 : nil))
            #expect(results.count == k, "\(url.lastPathComponent)")
        }
    }

    @Test func everyCraftedFixtureIsRefusedWithItsDefect() throws {
        let expected = try expectedDefects()
        #expect(expected.count >= 20)
        for (name, defectName) in expected.sorted(by: { $0.key < $1.key }) {
            let url = fixtures.appendingPathComponent("crafted/\(name).faiss")
            let want = try #require(IndexFileDefect(rawValue: defectName))
            #expect(performing: { try VectorIndex.load(contentsOf: url) }, throws: { defect(of: $0) == want })
            #expect(defect(of: VectorIndex.checkFile(bytes: try Data(contentsOf: url)) ?? .emptyIndex) == want, "\(name)")
        }
    }

    @Test func refusalsNameTheFieldAndTheNumbers() throws {
        let cases: [(String, String)] = [
            ("flat_ntotal_2p31", "ntotal 2147483648 x dimension 8 needs 17179869184 floats, the file stores 192"),
            ("pq_84_bytes", "PQ nbits 40 is outside 1...16"),
            ("ivf_nlist_huge", "nlist 1099511627776 is outside 1...2^32"),
            ("idmap_shorter_than_ntotal", "the id map holds 23 ids for ntotal 24"),
            ("hnsw_level_out_of_range", "node 0 has level 99"),
            ("unknown_fourcc", "'IxZZ' is not an index type DMLKit reads"),
        ]
        for (name, phrase) in cases {
            let bytes = try Data(contentsOf: fixtures.appendingPathComponent("crafted/\(name).faiss"))
            let error = try #require(VectorIndex.checkFile(bytes: bytes))
            #expect("\(error)".contains(phrase), "\(name): \(error)")
            #expect(!"\(error)".contains("(Success)"))
        }
    }

    @Test func everyProperPrefixOfEveryValidFileIsTruncated() throws {
        for url in try validFixtures() {
            let bytes = try Data(contentsOf: url)
            for cut in 0..<bytes.count {
                let error = VectorIndex.checkFile(bytes: bytes.prefix(cut))
                #expect(error.flatMap(defect(of:)) == .truncated, "\(url.lastPathComponent) cut at \(cut): \(String(describing: error))")
            }
            #expect(throws: VectorIndexError.self) { try VectorIndex(serialized: bytes.prefix(bytes.count / 2)) }
        }
    }

    @Test func aFileHoldingIDInt64MaxLoadsAndStopsAutomaticIDs() throws {
        let index = try VectorIndex.load(contentsOf: fixtures.appendingPathComponent("valid/idmap2_max_id.faiss"))
        #expect(index.count == 2)
        #expect(try index.reconstruct(id: Int64.max).count == 8)
        let hit = try index.search(vector: try index.reconstruct(id: Int64.max), k: 1)
        #expect(hit.map(\.id) == [Int64.max])
        #expect(throws: VectorIndexError.idsExhausted) { try index.add([Float](repeating: 1, count: 8)) }
        try index.add([Float](repeating: 1, count: 8), ids: [7])
        #expect(index.count == 3)
    }

    @Test func directoriesAndMissingFilesAreIOErrors() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: VectorIndexError.io("\(dir.path) is a directory, not an index file")) { try VectorIndex.load(contentsOf: dir) }
        let empty = dir.appendingPathComponent("empty.faiss")
        #expect(FileManager.default.createFile(atPath: empty.path, contents: Data()))
        #expect(throws: VectorIndexError.invalidIndexFile(.truncated, reason: "the file is empty")) { try VectorIndex.load(contentsOf: empty) }
    }
}

@Suite struct IDsAreCheckedAcrossCalls {
    @Test(arguments: ["Flat", "IDMap,Flat", "IVF4,Flat"])
    func anIDAlreadyStoredIsRefusedAndNothingIsAdded(factory: String) throws {
        let index = try VectorIndex(dimension: 8, factory: factory, metric: .l2)
        let base = clusteredVectors(200, 8, seed: 21)
        try index.train(base)
        try index.add(clusteredVectors(3, 8), ids: [10, 11, 12])
        #expect(throws: VectorIndexError.duplicateID(11)) { try index.add(clusteredVectors(2, 8), ids: [20, 11]) }
        #expect(index.count == 3)
        try index.add(clusteredVectors(2, 8), ids: [20, 21])
        #expect(index.count == 5)
    }

    @Test func automaticIDsStopCleanlyAtInt64Max() throws {
        let index = try VectorIndex(dimension: 4, metric: .l2)
        try index.add([Float](repeating: 1, count: 4), ids: [Int64.max - 2])
        #expect(try index.add([Float](repeating: 2, count: 4)) == (Int64.max - 1)..<Int64.max)
        // One more id exists (Int64.max itself) but a range cannot end past it: refused, nothing added.
        #expect(throws: VectorIndexError.idsExhausted) { try index.add([Float](repeating: 3, count: 8)) }
        #expect(index.count == 2)
        try index.add([Float](repeating: 3, count: 4), ids: [Int64.max])
        #expect(throws: VectorIndexError.idsExhausted) { try index.add([Float](repeating: 3, count: 4)) }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try index.save(to: dir.appendingPathComponent("max.faiss"))
        let loaded = try VectorIndex.load(contentsOf: dir.appendingPathComponent("max.faiss"))
        #expect(loaded.count == 3)
        #expect(throws: VectorIndexError.idsExhausted) { try loaded.add([Float](repeating: 3, count: 4)) }
    }

    @Test func hugeCountsAreRefusedNotTrapped() throws {
        let index = try VectorIndex(dimension: 4, factory: "HNSW8", metric: .l2)
        try index.add(clusteredVectors(20, 4))
        let q = [Float](repeating: 0, count: 4)
        #expect(throws: VectorIndexError.invalidK(1 << 62)) { try index.search(vector: q, k: 1 << 62) }
        #expect(throws: VectorIndexError.invalidK(Int.max)) { try index.search(vector: q, k: Int.max) }
        #expect(throws: VectorIndexError.invalidParameter("efSearch must be 1...1048576, got \(1 << 40)")) {
            try index.search(vector: q, k: 1, parameters: .init(efSearch: 1 << 40))
        }
        #expect(throws: VectorIndexError.invalidParameter("nprobe must be 1...2147483647, got \(Int.max)")) {
            try index.search(vector: q, k: 1, parameters: .init(nprobe: Int.max))
        }
        #expect(throws: VectorIndexError.invalidDimension(1 << 40)) { try VectorIndex(dimension: 1 << 40) }
        #expect(throws: VectorIndexError.invalidDimension(65537)) { try VectorIndex(dimension: 65537) }
    }
}

@Suite struct FactoryStringsAreValidatedInSwift {
    @Test(arguments: [
        ("HNSW0", "HNSW M (neighbours per node) must be 2...512, got 0"),
        ("HNSW1", "HNSW M (neighbours per node) must be 2...512, got 1"),
        ("HNSW100000", "HNSW M (neighbours per node) must be 2...512, got 100000"),
        ("IVF0,Flat", "IVF nlist must be 1...1048576, got 0"),
        ("IVF,Flat", "IVF needs a number of lists, e.g. IVF1024"),
        ("IVF99999999999999999999,Flat", "IVF needs a number of lists, e.g. IVF1024"),
        ("IVF16", "IVF needs a code after a comma, e.g. IVF1024,Flat"),
        ("PQ3", "PQ M 3 does not divide the dimension 8"),
        ("PQ0", "PQ M must be 1...8 (the dimension), got 0"),
        ("PQ4x0", "PQ nbits must be 1...16, got '0'"),
        ("PQ4x40", "PQ nbits must be 1...16, got '40'"),
        ("IVF4,PQ3", "PQ M 3 does not divide the dimension 8"),
        ("PCA4,Flat", "DMLKit builds Flat, SQ…, PQ…, LSH, HNSW… and IVF… indexes (see FactoryString)"),
        ("IDMap,IDMap,Flat", "an id map inside an id map"),
    ])
    func refusedBeforeFAISSSeesThem(factory: String, reason: String) {
        #expect(throws: VectorIndexError.invalidFactory(factory, reason: reason)) {
            try VectorIndex(dimension: 8, factory: factory, metric: .l2)
        }
    }

    @Test func metricsFAISSIgnoresAreRefused() {
        #expect(throws: VectorIndexError.invalidFactory("LSH", reason: "LSH indexes compare by Hamming distance and need --metric l2")) {
            try VectorIndex(dimension: 8, factory: "LSH", metric: .innerProduct)
        }
        #expect(throws: VectorIndexError.invalidFactory("HNSW16_PQ4", reason: "FAISS builds HNSW over PQ for L2 only; use --metric l2")) {
            try VectorIndex(dimension: 8, factory: "HNSW16_PQ4", metric: .cosine)
        }
    }

    /// Every accepted form builds, trains, fills, saves and loads back: DMLKit reads whatever it writes.
    @Test(arguments: [
        // "np": no polysemous training, which takes seconds and is beside the point here.
        "Flat", "HNSW8,Flat", "HNSW8_SQ8", "HNSW8,PQ4np", "IVF4,Flat", "IVF4_HNSW8,Flat", "IVF4,PQ4x4np", "IVF4,SQ8",
        "PQ2x6np", "SQ4", "SQfp16", "LSHrt", "IDMap2,HNSW8",
    ])
    func acceptedFormsRoundTripThroughAFile(factory: String) throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let index = try VectorIndex(dimension: 8, factory: factory, metric: .l2)
        let base = clusteredVectors(300, 8, seed: 5)
        try index.train(base)
        try index.add(base)
        let url = dir.appendingPathComponent("x.faiss")
        try index.save(to: url)
        let loaded = try VectorIndex.load(contentsOf: url)
        #expect(loaded.count == 300)
        let queries = clusteredVectors(3, 8, seed: 6)
        #expect(try loaded.search(queries, k: 4) == index.search(queries, k: 4))
    }
}

@Suite struct SavesAreOneVerifiedUnit {
    @Test func aSidecarFromAnotherSaveIsDetected() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("c.faiss")
        let sidecar = dir.appendingPathComponent("c.faiss.dml.json")
        let index = try VectorIndex(dimension: 8, metric: .cosine)
        try index.add(clusteredVectors(5, 8))
        try index.save(to: url)
        let oldSidecar = try Data(contentsOf: sidecar)
        try index.add(clusteredVectors(5, 8, seed: 9))
        try index.save(to: url)
        #expect(try VectorIndex.load(contentsOf: url).metric == .cosine)
        try oldSidecar.write(to: sidecar)
        #expect(performing: { try VectorIndex.load(contentsOf: url) }, throws: { error in
            guard case VectorIndexError.sidecarMismatch(let why) = error else { return false }
            return why.contains("is not the index its sidecar c.faiss.dml.json describes")
        })
    }

    @Test func aSidecarWithoutChecksumStillLoads() throws {
        // Format 1 sidecars (before checksums) keep working.
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("old.faiss")
        let index = try VectorIndex(dimension: 8, metric: .cosine)
        try index.add(clusteredVectors(5, 8))
        try index.save(to: url)
        try Data(#"{"format": 1, "metric": "cosine", "factory": "Flat"}"#.utf8).write(to: dir.appendingPathComponent("old.faiss.dml.json"))
        #expect(try VectorIndex.load(contentsOf: url).metric == .cosine)
    }

    @Test func temporaryFilesOfDeadProcessesAreRemovedOnTheNextSave() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("t.faiss")
        // A child that has exited and been reaped: its pid names no process (barring reuse, which keeps the file).
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        let dead = dir.appendingPathComponent(".t.faiss.\(child.processIdentifier).12345.tmp")
        let alive = dir.appendingPathComponent(".t.faiss.\(getpid()).777.tmp")
        let unrelated = dir.appendingPathComponent(".other.faiss.\(child.processIdentifier).1.tmp")
        for file in [dead, alive, unrelated] { #expect(FileManager.default.createFile(atPath: file.path, contents: Data(count: 100))) }
        try VectorIndex(dimension: 4).save(to: url)
        #expect(!FileManager.default.fileExists(atPath: dead.path))
        #expect(FileManager.default.fileExists(atPath: alive.path))
        #expect(FileManager.default.fileExists(atPath: unrelated.path))
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(names == [alive.lastPathComponent, unrelated.lastPathComponent, "t.faiss", "t.faiss.dml.json"].sorted())
    }

    @Test func savingOverADirectoryFailsAndKeepsIt() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let target = dir.appendingPathComponent("sub")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: false)
        #expect(throws: VectorIndexError.io("cannot write \(target.path): it is a directory")) { try VectorIndex(dimension: 4).save(to: target) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["sub"])
    }
}
