@testable import DMLIndex
@testable import DMLKit
import Foundation
import Testing

// Damaged derived indexes, read-only handles, lost stores and huge numbers: the store stays the source of truth,
// read paths write nothing, and every refusal is the exact `GalleryError` case.

private let dim = 6
private let space = EmbeddingSpace(name: "image", dimension: dim, fingerprint: "model-R")

private func person(_ i: Int) -> Pose {
    let base: [Double] = [
        0, -3, 0.3, -3.2, -0.3, -3.2, 0.6, -3, -0.6, -3, 1, -2, -1, -2, 1.5, -1, -1.5, -1, 2, 0, -2, 0, 1, 0, -1, 0, 1, 2, -1, 2,
        1, 4, -1, 4,
    ]
    var rng = Rng(state: UInt64(1000 + i))
    var values: [Double] = []
    for j in 0..<17 {
        let x: Double = base[2 * j] + rng.next() - 0.5
        let y: Double = base[2 * j + 1] + rng.next() - 0.5
        values += [x, y, 2]
    }
    return try! Pose(coco: values)
}

private func people(_ n: Int, seed: UInt64, prefix: String = "p") -> ([GalleryItem], [Float]) {
    var rng = Rng(state: seed)
    let items = (0..<n).map { GalleryItem(key: "\(prefix)-\($0)", caption: "person \($0)", pose: person($0 + Int(seed) * 100)) }
    return (items, (0..<(n * dim)).map { _ in Float(rng.next() - 0.5) })
}

/// A fresh directory holding a closed gallery of `n` items (indexes saved), its items and vectors.
private func makeGallery(_ n: Int = 30, seed: UInt64 = 1) throws -> (URL, [GalleryItem], [Float]) {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("dmlkit-reliability-\(UUID().uuidString)")
    let (items, vectors) = people(n, seed: seed)
    try Gallery(directory: url, spaces: [space]).add(items, embeddings: ["image": vectors])
    return (url, items, vectors)
}

/// Keys ranked by cosine similarity to `query`, computed here as the reference.
private func bruteForce(_ query: [Float], _ items: [GalleryItem], _ vectors: [Float]) -> [String] {
    func cosine(_ i: Int) -> Double {
        let v = vectors[i * dim..<(i + 1) * dim].map(Double.init)
        let q = query.map(Double.init)
        let dot = zip(q, v).map(*).reduce(0, +)
        return dot / (q.map { $0 * $0 }.reduce(0, +).squareRoot() * v.map { $0 * $0 }.reduce(0, +).squareRoot())
    }
    return items.indices.sorted { cosine($0) > cosine($1) }.map { items[$0].key }
}

/// Every file of the directory with its bytes: what "writes nothing" compares. SQLite's lock files are left out:
/// a read-only connection creates an empty `-wal` and the `-shm` wal-index beside the store where the directory
/// allows (that is how it coordinates with a concurrent writer) and leaves them; the WAL must stay empty.
private func snapshot(_ url: URL) throws -> [String: Data] {
    var files: [String: Data] = [:]
    for name in try FileManager.default.contentsOfDirectory(atPath: url.path) where !name.hasSuffix("-shm") {
        let data = try Data(contentsOf: url.appendingPathComponent(name))
        if name.hasSuffix("-wal") && data.isEmpty { continue }
        files[name] = data
    }
    return files
}

/// Searching `url` finds exactly what brute force over the stored items finds, by embedding and by pose.
private func expectCorrectSearches(_ gallery: Gallery, _ items: [GalleryItem], _ vectors: [Float]) throws {
    let query = Array(vectors[3 * dim..<4 * dim])
    let hits = try gallery.search(embedding: query, space: "image", k: items.count)
    #expect(hits.map(\.item.key) == bruteForce(query, items, vectors))
    let poseHits = try gallery.search(pose: items[5].pose!, k: 3)
    #expect(poseHits.first?.item.key == items[5].key)
    #expect(try gallery.search(pose: items[5].pose!, k: items.count).count == items.count)
}

private func stateOfIndex(_ url: URL, _ name: String) throws -> (generation: Int64?, record: IndexRecord?, store: Int64) {
    let db = try SQLiteDatabase(path: url.appendingPathComponent("gallery.sqlite").path, readOnly: true)
    return (try GallerySchema.indexGeneration(db, space: name), try GallerySchema.indexRecord(db, space: name),
            try GallerySchema.generation(db))
}

@Suite struct DamagedIndexFiles {
    /// Ways an index file can differ from what the gallery saved, each leaving the recorded generation current.
    enum Damage: String, CaseIterable {
        case truncated, empty, garbage, flippedVectorByte, otherGallerysIndex, fewerItems, removedFile
    }

    private func damage(_ kind: Damage, _ file: URL, otherIndex: URL) throws {
        let data = try Data(contentsOf: file)
        switch kind {
        case .truncated: try data.prefix(data.count / 2).write(to: file)
        case .empty: try Data().write(to: file)
        case .garbage: try Data((0..<data.count).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }).write(to: file)
        case .flippedVectorByte:
            var bytes = data
            bytes[bytes.count / 2] ^= 0x40  // inside the vectors: FAISS reads it fine, the hash does not match
            try bytes.write(to: file)
        case .otherGallerysIndex: try FileManager.default.removeItem(at: file); try FileManager.default.copyItem(at: otherIndex, to: file)
        case .fewerItems:
            let short = try VectorIndex.load(contentsOf: file)
            _ = try short.remove(ids: [1, 2, 3])
            try short.save(to: file)
        case .removedFile: try FileManager.default.removeItem(at: file)
        }
    }

    @Test(arguments: Damage.allCases)
    func aDamagedIndexIsRebuiltFromTheStore(kind: Damage) throws {
        let (url, items, vectors) = try makeGallery()
        let (other, _, _) = try makeGallery(seed: 2)  // same ids and count, other vectors and poses
        defer { for u in [url, other] { try? FileManager.default.removeItem(at: u) } }
        for name in ["image", "pose"] {
            try damage(kind, url.appendingPathComponent("\(name).faiss"), otherIndex: other.appendingPathComponent("\(name).faiss"))
        }
        let before = stateOfIndex
        #expect(try before(url, "image").generation == before(url, "image").store)  // the damage left it "current"

        // Read-only: right answers, and the damaged files are left exactly as they were.
        let damaged = try snapshot(url)
        try expectCorrectSearches(try Gallery(directory: url, spaces: [space], access: .readOnly), items, vectors)
        #expect(try snapshot(url) == damaged)

        // Writable: rebuilt and saved; the next open uses the saved files.
        try expectCorrectSearches(try Gallery(directory: url, spaces: [space]), items, vectors)
        for name in ["image", "pose"] {
            let (generation, record, store) = try stateOfIndex(url, name)
            let file = try Data(contentsOf: url.appendingPathComponent("\(name).faiss"))
            #expect(generation == store && record?.matches(file: file) == true && record?.count == items.count)
        }
        let saved = try snapshot(url)
        try expectCorrectSearches(try Gallery(directory: url, spaces: [space], access: .readOnly), items, vectors)
        #expect(try snapshot(url) == saved)
    }

    @Test func aRecordedFileHoldingFewerItemsThanItsRecordIsRebuilt() throws {
        // A writer that saved a short file without noticing, and recorded that file, is caught by the count.
        let (url, items, vectors) = try makeGallery()
        defer { try? FileManager.default.removeItem(at: url) }
        let file = url.appendingPathComponent("image.faiss")
        let short = try VectorIndex.load(contentsOf: file)
        _ = try short.remove(ids: [4, 5])
        try short.save(to: file)
        let db = try SQLiteDatabase(path: url.appendingPathComponent("gallery.sqlite").path)
        let old = try #require(try GallerySchema.indexRecord(db, space: "image"))
        let rewritten = try IndexRecord(fileAt: file, count: old.count, storeIDs: old.storeIDs)
        try GallerySchema.setIndexRecord(db, space: "image", generation: try GallerySchema.generation(db), rewritten)
        try expectCorrectSearches(try Gallery(directory: url, spaces: [space], access: .readOnly), items, vectors)
    }

    @Test func storeRowsChangedWithoutAGenerationBumpAreNoticed() throws {
        // Another tool deleting a row leaves the generation alone; the recorded store ids no longer match.
        let (url, items, vectors) = try makeGallery()
        defer { try? FileManager.default.removeItem(at: url) }
        let db = try SQLiteDatabase(path: url.appendingPathComponent("gallery.sqlite").path)
        try db.execute("PRAGMA foreign_keys=ON; DELETE FROM items WHERE key = 'p-7'")
        let kept = items.indices.filter { $0 != 7 }
        let keptVectors = kept.flatMap { vectors[$0 * dim..<($0 + 1) * dim] }
        let gallery = try Gallery(directory: url, spaces: [space], access: .readOnly)
        try expectCorrectSearches(gallery, kept.map { items[$0] }, keptVectors)
    }

    @Test func aWritableOpenThatCannotSaveTheRebuiltIndexWorksFromMemory() throws {
        // As on a full disk: the rebuilt index cannot be written (here a directory stands where the file goes).
        let (url, items, vectors) = try makeGallery()
        defer { try? FileManager.default.removeItem(at: url) }
        let file = url.appendingPathComponent("image.faiss")
        try FileManager.default.removeItem(at: file)
        try FileManager.default.createDirectory(at: file.appendingPathComponent("blocker"), withIntermediateDirectories: true)
        let gallery = try Gallery(directory: url, spaces: [space])
        try expectCorrectSearches(gallery, items, vectors)
        #expect(try GalleryReader(directory: url).indexIsCurrent("image") == false)
        #expect(try GalleryReader(directory: url).indexIsCurrent("pose"))
    }

    @Test func galleriesSavedWithoutARecordAreRebuiltOnceThenLoaded() throws {
        // Stores written before index records existed: rebuilt (and, by a writable open, recorded).
        let (url, items, vectors) = try makeGallery()
        defer { try? FileManager.default.removeItem(at: url) }
        let db = try SQLiteDatabase(path: url.appendingPathComponent("gallery.sqlite").path)
        try db.execute("DELETE FROM meta WHERE key LIKE 'index_check:%'")
        try expectCorrectSearches(try Gallery(directory: url, spaces: [space], access: .readOnly), items, vectors)
        #expect(try GallerySchema.indexRecord(db, space: "image") == nil)
        try expectCorrectSearches(try Gallery(directory: url, spaces: [space]), items, vectors)
        #expect(try GallerySchema.indexRecord(db, space: "image") != nil)
    }
}

@Suite struct ReadOnlyGalleries {
    @Test func aReadOnlyHandleSearchesAStaleGalleryAndWritesNothing() throws {
        let (url, items, vectors) = try makeGallery(20)
        defer { try? FileManager.default.removeItem(at: url) }
        // More items stored but the index files left stale (as after a bulk load killed before its save).
        let (more, moreVectors) = people(10, seed: 3, prefix: "q")
        try Gallery(directory: url, spaces: [space]).add(more, embeddings: ["image": moreVectors], saveIndexes: false)
        let before = try snapshot(url)
        var gallery: Gallery? = try Gallery(directory: url, spaces: [space], access: .readOnly)
        try expectCorrectSearches(gallery!, items + more, vectors + moreVectors)
        #expect(try snapshot(url) == before)
        let refused = GalleryError.readOnly("the gallery at \(url.path) was opened read-only")
        let (extra, extraVectors) = people(1, seed: 4, prefix: "x")
        #expect(throws: refused) { try gallery!.add(extra, embeddings: ["image": extraVectors]) }
        #expect(throws: refused) { try gallery!.remove(keys: ["p-1"]) }
        #expect(throws: refused) { try gallery!.saveIndexes() }
        #expect(throws: refused) { try gallery!.calibrate(space: "image") }
        gallery = nil
        #expect(try snapshot(url) == before)
        #expect("\(refused)".contains("nothing can be changed"))
    }

    @Test func aReadOnlyHandleNeedsAnExistingGalleryWithItsSpaces() throws {
        let absent = FileManager.default.temporaryDirectory.appendingPathComponent("dmlkit-absent-\(UUID().uuidString)")
        #expect(throws: GalleryError.notAGallery("no gallery at \(absent.path) (no gallery.sqlite)")) {
            try Gallery(directory: absent, spaces: [space], access: .readOnly)
        }
        #expect(!FileManager.default.fileExists(atPath: absent.path))
        let (url, _, _) = try makeGallery(5)
        defer { try? FileManager.default.removeItem(at: url) }
        let caption = EmbeddingSpace(name: "caption", dimension: 3, fingerprint: "text")
        #expect(throws: GalleryError.unknownSpace("caption")) { try Gallery(directory: url, spaces: [space, caption], access: .readOnly) }
        let other = EmbeddingSpace(name: "image", dimension: dim, fingerprint: "model-B")
        #expect(throws: GalleryError.fingerprintMismatch(space: "image", stored: "model-R", given: "model-B")) {
            try Gallery(directory: url, spaces: [other], access: .readOnly)
        }
    }

    @Test func aZeroLengthStoreIsRefusedEverywhereAndLeftZeroLength() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dmlkit-empty-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        let store = url.appendingPathComponent("gallery.sqlite")
        try Data().write(to: store)
        let lost = GalleryError.notAGallery(
            "\(store.path) is empty (0 bytes): the store was lost or never written; remove the file to start a new gallery")
        #expect(throws: lost) { try Gallery(directory: url, spaces: [space], access: .readOnly) }
        #expect(throws: lost) { try Gallery(directory: url, spaces: [space]) }
        #expect(throws: lost) { try GalleryReader(directory: url) }
        #expect(try snapshot(url) == ["gallery.sqlite": Data()])
    }

    @Test func aSQLiteFileThatIsNotAGalleryIsRefusedByReaders() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dmlkit-foreign-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        let store = url.appendingPathComponent("gallery.sqlite")
        try SQLiteDatabase(path: store.path).execute("CREATE TABLE t(x)")
        #expect(throws: GalleryError.notAGallery("\(store.path) is not a gallery store (tables missing)")) {
            try GalleryReader(directory: url)
        }
        #expect(throws: GalleryError.notAGallery("\(store.path) is not a gallery store (tables missing)")) {
            try Gallery(directory: url, spaces: [space], access: .readOnly)
        }
    }
}

@Suite struct HugeNumbers {
    @Test func hugeKIsClampedToTheGallery() throws {
        let (url, items, vectors) = try makeGallery(12)
        defer { try? FileManager.default.removeItem(at: url) }
        let gallery = try Gallery(directory: url, spaces: [space], access: .readOnly)
        let query = Array(vectors[0..<dim])
        for k in [Int.max, 1 << 62, 1_000_000_000_000_000_000] {
            #expect(try gallery.search(embedding: query, space: "image", k: k).map(\.item.key) == bruteForce(query, items, vectors))
            #expect(try gallery.search(pose: items[2].pose!, k: k).count == 12)
        }
    }

    @Test func badKAndRadiiAreExactInvalidQueries() throws {
        let (url, items, vectors) = try makeGallery(12)
        defer { try? FileManager.default.removeItem(at: url) }
        let gallery = try Gallery(directory: url, spaces: [space], access: .readOnly)
        let query = Array(vectors[0..<dim])
        let badK = GalleryError.invalidQuery("k must be at least 1")
        for k in [0, -1, Int.min] {
            #expect(throws: badK) { try gallery.search(embedding: query, space: "image", k: k) }
            #expect(throws: badK) { try gallery.search(pose: items[0].pose!, k: k) }
            #expect(throws: badK) { try gallery.search(parts: [.pose(items[0].pose!)], k: k) }
        }
        for radius in [-1, -Double.infinity, .infinity, .nan, -0.000001] {
            #expect(throws: GalleryError.invalidQuery("the pose distance must be a finite number >= 0")) {
                try gallery.search(pose: items[0].pose!, within: radius)
            }
        }
    }

    @Test func combinedQueriesClampKAndRefuseUnusableWeights() throws {
        let (url, items, vectors) = try makeGallery(24)
        defer { try? FileManager.default.removeItem(at: url) }
        let writer = try Gallery(directory: url, spaces: [space])
        try writer.calibrate(space: "image", settings: .init(seed: 1))
        let gallery = try Gallery(directory: url, spaces: [space], access: .readOnly)
        let parts: [QueryPart] = [.pose(items[1].pose!), .embedding(Array(vectors[dim..<2 * dim]), space: "image")]
        let all = try gallery.search(parts: parts, k: 24)
        #expect(all.count == 24)
        for k in [1 << 62, Int.max] {
            #expect(try gallery.search(parts: parts, k: k) == all)
            #expect(try gallery.search(parts: parts, k: k, initialCandidates: Int.max) == all)
        }
        // Weights: scaling them all changes nothing; sums past a Double's range and non-positive ones are refused.
        let scaled: [QueryPart] = [.pose(items[1].pose!, weight: 1e300), .embedding(Array(vectors[dim..<2 * dim]), space: "image", weight: 1e300)]
        #expect(try gallery.search(parts: scaled, k: 24).map(\.id) == all.map(\.id))
        let huge: [QueryPart] = [.pose(items[1].pose!, weight: .greatestFiniteMagnitude), .embedding(Array(vectors[dim..<2 * dim]), space: "image", weight: .greatestFiniteMagnitude)]
        #expect(throws: GalleryError.invalidQuery("the weights add up to more than a Double holds")) { try gallery.search(parts: huge, k: 3) }
        for w in [0, -1, Double.nan, .infinity] {
            #expect(throws: GalleryError.invalidQuery("each part's weight must be a finite number > 0, got \(w)")) {
                try gallery.search(parts: [.pose(items[1].pose!, weight: w)], k: 3)
            }
        }
    }
}

@Suite struct GalleryErrorsAreExact {
    @Test func equalityComparesTheCaseAndItsContents() {
        #expect(GalleryError.unknownKey("a") == .unknownKey("a"))
        #expect(GalleryError.unknownKey("a") != .unknownKey("b"))
        #expect(GalleryError.unknownKey("a") != .unknownSpace("a"))
        #expect(GalleryError.index(.emptyIndex) == .index(.emptyIndex))
        #expect(GalleryError.emptyGallery.localizedDescription == "the gallery is empty")
    }

    @Test func storeFailuresMapToTheirCases() throws {
        let (url, items, vectors) = try makeGallery(4)
        defer { try? FileManager.default.removeItem(at: url) }
        let gallery = try Gallery(directory: url, spaces: [space])
        #expect(throws: GalleryError.duplicateKey("p-0")) { try gallery.add([items[0]], embeddings: ["image": Array(vectors[0..<dim])]) }
        #expect(throws: GalleryError.unknownKey("nope")) { try gallery.remove(keys: ["nope"], requireAll: true) }
        #expect(throws: GalleryError.unknownKey("nope")) { try gallery.item(key: "nope") }
        #expect(throws: GalleryError.unknownSpace("text")) { try gallery.search(embedding: [1], space: "text", k: 1) }
        #expect(throws: GalleryError.notCalibrated(
            "space 'image' has no distance calibration: fit one with `calibrate(space:)` (`dml gallery calibrate`)")) {
            try gallery.search(embedding: Array(vectors[0..<dim]), space: "image", withinPoseDistance: 1)
        }
    }
}
