@testable import DMLKit
import Dispatch
import Foundation
import Testing

private let dim = 8
private let space = EmbeddingSpace(name: "image", dimension: dim, fingerprint: "model-A")

/// A standing person (COCO order, image coordinates) to jitter.
private let basePose: [Double] = [
    0, -3, 0.3, -3.2, -0.3, -3.2, 0.6, -3, -0.6, -3, 1, -2, -1, -2, 1.5, -1, -1.5, -1, 2, 0, -2, 0, 1, 0, -1, 0, 1, 2, -1, 2,
    1, 4, -1, 4,
]

private func randomItems(_ n: Int, seed: UInt64, keyPrefix: String = "item") -> ([GalleryItem], [Float]) {
    var rng = Rng(state: seed)
    var items: [GalleryItem] = []
    var vectors: [Float] = []
    for i in 0..<n {
        var values: [Double] = []
        for j in 0..<17 {
            let hidden = j > 12 && rng.next() < 0.2  // some legs unlabelled
            values += [basePose[2 * j] + (rng.next() - 0.5) * 1.2, basePose[2 * j + 1] + (rng.next() - 0.5) * 1.2, hidden ? 0 : 2]
            if hidden { values[values.count - 3] = 0; values[values.count - 2] = 0 }
        }
        let pose = try? Pose(coco: values)
        items.append(GalleryItem(key: "\(keyPrefix)-\(i)", image: "img/\(i).png", caption: "person \(i)", pose: pose,
                                 classLabel: Int64(i % 5), metadata: #"{"n": \#(i)}"#))
        vectors += (0..<dim).map { _ in Float(rng.next() - 0.5) }
    }
    return (items, vectors)
}

private func temporaryGallery() -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("dmlkit-gallery-\(UUID().uuidString)")
}

private func cosineRanking(_ query: [Float], _ vectors: [Float], keys: [String]) -> [String] {
    func norm(_ v: ArraySlice<Float>) -> Float { v.reduce(0) { $0 + $1 * $1 }.squareRoot() }
    let scores = keys.indices.map { i -> Float in
        let v = vectors[i * dim..<(i + 1) * dim]
        return zip(query, v).reduce(0) { $0 + $1.0 * $1.1 } / (norm(query[...]) * norm(v))
    }
    return keys.indices.sorted { scores[$0] > scores[$1] }.map { keys[$0] }
}

@Suite struct GalleryStoreAndSearch {
    @Test func embeddingSearchMatchesBruteForceAndItemsRoundTrip() throws {
        let url = temporaryGallery()
        defer { try? FileManager.default.removeItem(at: url) }
        let gallery = try Gallery(directory: url, spaces: [space])
        let (items, vectors) = randomItems(120, seed: 1)
        let ids = try gallery.add(items, embeddings: ["image": vectors])
        #expect(ids.count == 120 && gallery.count == 120 && gallery.generation == 1)
        let query = Array(vectors[5 * dim..<6 * dim])
        let hits = try gallery.search(embedding: query, space: "image", k: 10)
        #expect(hits.map(\.item.key) == Array(cosineRanking(query, vectors, keys: items.map(\.key)).prefix(10)))
        #expect(hits[0].item == items[5])
        #expect(try gallery.item(key: "item-7") == items[7])
        let filtered = try gallery.search(embedding: query, space: "image", k: 3, allowedKeys: ["item-1", "item-2", "item-3"])
        #expect(Set(filtered.map(\.item.key)) == ["item-1", "item-2", "item-3"])
    }

    @Test func poseSearchEqualsAnExhaustiveRankingByPoseDistance() throws {
        let url = temporaryGallery()
        defer { try? FileManager.default.removeItem(at: url) }
        let gallery = try Gallery(directory: url, spaces: [space])
        let (items, vectors) = randomItems(150, seed: 2)
        try gallery.add(items, embeddings: ["image": vectors])
        let query = try #require(randomItems(1, seed: 99).0[0].pose)
        for mirror in [false, true] {
            let hits = try gallery.search(pose: query, k: 8, mirror: mirror)
            let exact = items.compactMap { item -> (String, Double)? in
                guard let p = item.pose, let d = try? Pose.distance(query, p, mirror: mirror) else { return nil }
                return (item.key, d)
            }.sorted { $0.1 < $1.1 }
            #expect(hits.map(\.item.key) == exact.prefix(8).map(\.0))
            for (hit, truth) in zip(hits, exact) { #expect(abs(hit.poseDistance! - truth.1) < 1e-12) }
        }
    }

    @Test func removedItemsAreGoneFromStoreAndSearch() throws {
        let url = temporaryGallery()
        defer { try? FileManager.default.removeItem(at: url) }
        let gallery = try Gallery(directory: url, spaces: [space])
        let (items, vectors) = randomItems(40, seed: 3)
        try gallery.add(items, embeddings: ["image": vectors])
        #expect(try gallery.remove(keys: ["item-5", "nope"]) == 1)
        #expect(gallery.count == 39)
        let hits = try gallery.search(embedding: Array(vectors[5 * dim..<6 * dim]), space: "image", k: 39)
        #expect(!hits.contains { $0.item.key == "item-5" })
        #expect(throws: GalleryError.unknownKey("item-5")) { try gallery.item(key: "item-5") }
    }
}

@Suite struct GalleryDurability {
    @Test func reopeningGivesTheSameResultsAndRebuildsDeletedIndexes() throws {
        let url = temporaryGallery()
        defer { try? FileManager.default.removeItem(at: url) }
        let (items, vectors) = randomItems(60, seed: 4)
        let query = Array(vectors[0..<dim])
        let before: [GalleryHit]
        do {
            let gallery = try Gallery(directory: url, spaces: [space])
            try gallery.add(items, embeddings: ["image": vectors])
            before = try gallery.search(embedding: query, space: "image", k: 5)
        }
        try FileManager.default.removeItem(at: url.appendingPathComponent("image.faiss"))
        try FileManager.default.removeItem(at: url.appendingPathComponent("pose.faiss"))
        let reopened = try Gallery(directory: url, spaces: [space])
        #expect(try reopened.search(embedding: query, space: "image", k: 5) == before)
        #expect(FileManager.default.fileExists(atPath: url.appendingPathComponent("image.faiss").path))
        #expect(try reopened.search(pose: items[0].pose!, k: 1).first?.item.key == "item-0")
    }

    @Test func aStaleIndexFromBeforeACommittedAddIsRebuilt() throws {
        // As if the process died after committing to SQLite but before writing the index.
        let url = temporaryGallery()
        defer { try? FileManager.default.removeItem(at: url) }
        let (first, firstVectors) = randomItems(30, seed: 5)
        let (second, secondVectors) = randomItems(30, seed: 6, keyPrefix: "late")
        let indexURL = url.appendingPathComponent("image.faiss")
        do {
            let gallery = try Gallery(directory: url, spaces: [space])
            try gallery.add(first, embeddings: ["image": firstVectors])
            let old = try Data(contentsOf: indexURL)
            try gallery.add(second, embeddings: ["image": secondVectors])
            // Put back the index file and its recorded generation from before the second add.
            try old.write(to: indexURL)
            let db = try SQLiteDatabase(path: url.appendingPathComponent("gallery.sqlite").path)
            try db.query("UPDATE meta SET value = '1' WHERE key = 'index_generation:image'")
        }
        let reopened = try Gallery(directory: url, spaces: [space])
        let hit = try reopened.search(embedding: Array(secondVectors[0..<dim]), space: "image", k: 1)
        #expect(hit.first?.item.key == "late-0")
    }

    @Test func deferredIndexSavesAreRebuiltWhenDroppedAndLoadedWhenSaved() throws {
        let url = temporaryGallery()
        defer { try? FileManager.default.removeItem(at: url) }
        let (items, vectors) = randomItems(90, seed: 12)
        let keys = items.map(\.key)
        let query = Array(vectors[7 * dim..<8 * dim])
        let queryPose = try #require(randomItems(1, seed: 98).0[0].pose)
        func recorded() throws -> [String: Int64] { try GalleryReader(directory: url).indexGenerations() }
        func check(_ gallery: Gallery) throws {
            #expect(try gallery.search(embedding: query, space: "image", k: 90).map(\.item.key) == cosineRanking(query, vectors, keys: keys))
            let exact = items.compactMap { item in (try? Pose.distance(queryPose, item.pose!)).map { (item.key, $0) } }.sorted { $0.1 < $1.1 }
            #expect(try gallery.search(pose: queryPose, k: 10).map(\.item.key) == exact.prefix(10).map(\.0))
        }
        do {
            let gallery = try Gallery(directory: url, spaces: [space])
            try gallery.add(Array(items[0..<30]), embeddings: ["image": Array(vectors[0..<30 * dim])])  // saved
            for start in stride(from: 30, to: 90, by: 20) {
                try gallery.add(Array(items[start..<start + 20]), embeddings: ["image": Array(vectors[start * dim..<(start + 20) * dim])],
                                saveIndexes: false)
            }
            try check(gallery)  // the handle sees its unsaved items
            #expect(gallery.generation == 4)
            #expect(try recorded() == ["image": 1, "pose": 1])
            // Dropped without saving, as if killed: the files still hold the first batch only.
        }
        do {
            let reopened = try Gallery(directory: url, spaces: [space])
            #expect(try recorded() == ["image": 4, "pose": 4])  // rebuilt from the store
            try check(reopened)
        }
        // Deferred adds, then saveIndexes: the next open loads the files as they are.
        let (more, moreVectors) = randomItems(20, seed: 13, keyPrefix: "more")
        do {
            let gallery = try Gallery(directory: url, spaces: [space])
            try gallery.add(more, embeddings: ["image": moreVectors], saveIndexes: false)
            #expect(try recorded() == ["image": 4, "pose": 4])
            try gallery.saveIndexes()
            #expect(try recorded() == ["image": 5, "pose": 5])
        }
        let before = try Data(contentsOf: url.appendingPathComponent("image.faiss"))
        let modified = try FileManager.default.attributesOfItem(atPath: url.appendingPathComponent("image.faiss").path)[.modificationDate] as? Date
        let reopened = try Gallery(directory: url, spaces: [space])
        #expect(try Data(contentsOf: url.appendingPathComponent("image.faiss")) == before)
        #expect(try FileManager.default.attributesOfItem(atPath: url.appendingPathComponent("image.faiss").path)[.modificationDate] as? Date == modified)
        #expect(try recorded() == ["image": 5, "pose": 5])
        let all = keys + more.map(\.key)
        #expect(try reopened.search(embedding: query, space: "image", k: 110).map(\.item.key)
            == cosineRanking(query, vectors + moreVectors, keys: all))
    }

    @Test func aSchema1StoreWithTextPosesIsReadAndConverted() throws {
        let url = temporaryGallery()
        defer { try? FileManager.default.removeItem(at: url) }
        let (items, vectors) = randomItems(40, seed: 15)
        try Gallery(directory: url, spaces: [space]).add(items, embeddings: ["image": vectors])
        let path = url.appendingPathComponent("gallery.sqlite").path
        do {  // rewrite the poses as schema 1 stored them
            let db = try SQLiteDatabase(path: path)
            for (i, item) in items.enumerated() {
                let text = item.pose!.cocoValues.map { "\($0)" }.joined(separator: ",")
                try db.query("UPDATE items SET pose = ? WHERE key = ?", [.text(text), .text(items[i].key)])
            }
            try db.query("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        }
        let generations = try GalleryReader(directory: url).indexGenerations()
        #expect(try GalleryReader(directory: url).items().map(\.item) == items)  // read-only: text decoded
        let gallery = try Gallery(directory: url, spaces: [space])
        let db = try SQLiteDatabase(path: path, readOnly: true)
        #expect(try db.query("SELECT value FROM meta WHERE key = 'schema_version'").first?.text(0) == "3")
        #expect(try db.query("SELECT COUNT(*) FROM items WHERE typeof(pose) != 'blob'").first?.int(0) == 0)
        #expect(try GalleryReader(directory: url).items().map(\.item) == items)
        #expect(try GalleryReader(directory: url).indexGenerations() == generations)  // same data: indexes stay current
        let query = try #require(randomItems(1, seed: 97).0[0].pose)
        let exact = items.compactMap { item in (try? Pose.distance(query, item.pose!)).map { (item.key, $0) } }.sorted { $0.1 < $1.1 }
        #expect(try gallery.search(pose: query, k: 10).map(\.item.key) == exact.prefix(10).map(\.0))
    }

    @Test func indexesMissingAnotherHandlesCommitAreLeftStale() throws {
        let url = temporaryGallery()
        defer { try? FileManager.default.removeItem(at: url) }
        let (items, vectors) = randomItems(30, seed: 14)
        let first = try Gallery(directory: url, spaces: [space])
        let second = try Gallery(directory: url, spaces: [space])
        try second.add(Array(items[0..<10]), embeddings: ["image": Array(vectors[0..<10 * dim])])
        // `first` never saw that batch: its saved files must not claim the store's generation.
        try first.add(Array(items[10..<30]), embeddings: ["image": Array(vectors[10 * dim..<30 * dim])])
        #expect(try GalleryReader(directory: url).indexGenerations() == ["image": -1, "pose": -1])
        let reopened = try Gallery(directory: url, spaces: [space])
        let query = Array(vectors[0..<dim])
        #expect(try reopened.search(embedding: query, space: "image", k: 30).map(\.item.key) == cosineRanking(query, vectors, keys: items.map(\.key)))
    }

    @Test func aGalleryFromAnotherModelIsRefused() throws {
        let url = temporaryGallery()
        defer { try? FileManager.default.removeItem(at: url) }
        _ = try Gallery(directory: url, spaces: [space])
        let other = EmbeddingSpace(name: "image", dimension: dim, fingerprint: "model-B")
        #expect {
            try Gallery(directory: url, spaces: [other])
        } throws: { error in
            guard case GalleryError.fingerprintMismatch(let s, let stored, let given) = error else { return false }
            return s == "image" && stored == "model-A" && given == "model-B"
        }
    }

    @Test func aCorruptDatabaseGivesAClearError() throws {
        let url = temporaryGallery()
        defer { try? FileManager.default.removeItem(at: url) }
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 7919) }).write(to: url.appendingPathComponent("gallery.sqlite"))
        let notADatabase = GalleryError.storage("SQLite error 26: \(url.appendingPathComponent("gallery.sqlite").path): file is not a database")
        #expect(throws: notADatabase) { try Gallery(directory: url, spaces: [space]) }
        #expect(throws: notADatabase) { try GalleryReader(directory: url) }
    }

    @Test func aDamagedPageIsFoundByVerifyAndBeforeAnyRebuild() throws {
        let url = temporaryGallery()
        defer { try? FileManager.default.removeItem(at: url) }
        let (items, vectors) = randomItems(300, seed: 16)
        try Gallery(directory: url, spaces: [space]).add(items, embeddings: ["image": vectors])  // closed: WAL checkpointed
        let file = url.appendingPathComponent("gallery.sqlite")
        var bytes = try Data(contentsOf: file)
        let pageSize = Int(bytes[16]) << 8 | Int(bytes[17])
        let pages = bytes.count / pageSize
        #expect(pages > 8)
        // Scribble over a page in the middle (an items or embeddings page), leaving the header and schema intact.
        let page = pages / 2
        for i in 0..<pageSize { bytes[page * pageSize + i] = UInt8(truncatingIfNeeded: i &* 31 &+ 7) }
        try bytes.write(to: file)
        // Opening with current index files reads neither page: it works; verify finds the damage.
        let gallery = try Gallery(directory: url, spaces: [space])
        #expect { try gallery.verify() } throws: { "\($0)".contains("integrity check failed") }
        #expect { try GalleryReader(directory: url).verify() } throws: { "\($0)".contains("integrity check failed") }
        // An open that must rebuild an index checks first and refuses with the same clear error.
        try FileManager.default.removeItem(at: url.appendingPathComponent("image.faiss"))
        #expect { try Gallery(directory: url, spaces: [space]) } throws: { "\($0)".contains("integrity check failed") }
        #expect(!FileManager.default.fileExists(atPath: url.appendingPathComponent("image.faiss").path))
    }
}

@Suite struct GalleryBadInput {
    @Test func badBatchesAreRefusedWholeAndLeaveTheGalleryAsItWas() throws {
        let url = temporaryGallery()
        defer { try? FileManager.default.removeItem(at: url) }
        let gallery = try Gallery(directory: url, spaces: [space])
        let (items, vectors) = randomItems(10, seed: 7)
        try gallery.add(items, embeddings: ["image": vectors])
        let (more, moreVectors) = randomItems(3, seed: 8, keyPrefix: "more")
        var nan = moreVectors
        nan[4] = .nan
        #expect(throws: GalleryError.invalidItem("'image' embedding of 'more-0' has NaN or infinity")) { try gallery.add(more, embeddings: ["image": nan]) }
        #expect(throws: GalleryError.invalidItem("'image' embeddings hold 23 floats, expected 3 x 8")) { try gallery.add(more, embeddings: ["image": Array(moreVectors.dropLast())]) }
        #expect(throws: GalleryError.invalidItem("no 'image' embeddings given")) { try gallery.add(more, embeddings: [:]) }
        #expect(throws: GalleryError.duplicateKey("item-0")) { try gallery.add([items[0]], embeddings: ["image": Array(vectors[0..<dim])]) }
        #expect(throws: GalleryError.duplicateKey("more-0")) { try gallery.add(more + [more[0]], embeddings: ["image": moreVectors + moreVectors[0..<dim]]) }
        #expect(gallery.count == 10 && gallery.generation == 1)
    }

    @Test func badQueries() throws {
        let url = temporaryGallery()
        defer { try? FileManager.default.removeItem(at: url) }
        let gallery = try Gallery(directory: url, spaces: [space])
        #expect(throws: GalleryError.emptyGallery) { try gallery.search(embedding: [Float](repeating: 1, count: dim), space: "image", k: 3) }
        let (items, vectors) = randomItems(10, seed: 9)
        try gallery.add(items, embeddings: ["image": vectors])
        #expect(throws: GalleryError.index(.dimensionMismatch(expected: 8, actual: 2))) { try gallery.search(embedding: [1, 2], space: "image", k: 3) }
        #expect(throws: GalleryError.unknownSpace("text")) { try gallery.search(embedding: [Float](repeating: 1, count: dim), space: "text", k: 3) }
        var noHips: [Double] = (0..<17).flatMap { j in [basePose[2 * j], basePose[2 * j + 1], 2.0] }
        noHips[3 * 11 + 2] = 0  // left hip unlabelled: the pose has no centre
        #expect(throws: GalleryError.invalidQuery("pose distance needs both hips and both shoulders; unlabelled: left_hip")) { try gallery.search(pose: try Pose(coco: noHips), k: 3) }
    }

    /// Readers searching while a writer adds batches each see a committed state: the base items plus a whole
    /// number of batches, in exactly the brute-force order over those items. (Also run under ThreadSanitizer by
    /// `make test-tsan`.)
    @Test func concurrentSearchesWhileAdding() throws {
        let url = temporaryGallery()
        defer { try? FileManager.default.removeItem(at: url) }
        let gallery = try Gallery(directory: url, spaces: [space])
        let (items, vectors) = randomItems(50, seed: 10)
        try gallery.add(items, embeddings: ["image": vectors])
        let batches = (0..<5).map { randomItems(10, seed: UInt64(100 + $0), keyPrefix: "batch\($0)") }
        let query = Array(vectors[0..<dim])
        // What a reader may see after b batches were committed, for every b.
        let expected = (0...batches.count).map { b -> [String] in
            let keys = items.map(\.key) + batches.prefix(b).flatMap { $0.0.map(\.key) }
            return cosineRanking(query, vectors + batches.prefix(b).flatMap(\.1), keys: keys)
        }
        let problems = Problems()
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            if worker == 0 {
                for (more, moreVectors) in batches {
                    do { try gallery.add(more, embeddings: ["image": moreVectors]) } catch { problems.add("add: \(error)") }
                }
            } else {
                for round in 0..<20 {
                    do {
                        let keys = try gallery.search(embedding: query, space: "image", k: 1000).map(\.item.key)
                        let b = (keys.count - items.count) / 10
                        if !(0...batches.count).contains(b) || keys != expected[b] {
                            problems.add("reader \(worker) round \(round): \(keys.count) hits, not a committed state")
                        }
                    } catch {
                        problems.add("reader \(worker): \(error)")
                    }
                }
            }
        }
        #expect(problems.all.isEmpty, "\(problems.all)")
        #expect(gallery.count == 100)
        #expect(try gallery.search(embedding: query, space: "image", k: 1000).map(\.item.key) == expected[batches.count])
    }
}

/// Failures seen on worker threads, collected behind a lock and checked on the test's thread.
private final class Problems: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func add(_ problem: String) { lock.withLock { list.append(problem) } }
    var all: [String] { lock.withLock { list } }
}

/// Factories whose index cannot take a change in place: HNSW cannot remove ids, SQ8 must be trained before its
/// first add. The gallery rebuilds such an index from the store, so searches stay right after the change.
@Suite struct GalleryIndexKinds {
    @Test(arguments: ["HNSW16", "SQ8"])
    func addAndRemoveKeepSearchesRight(factory: String) throws {
        let url = temporaryGallery()
        defer { try? FileManager.default.removeItem(at: url) }
        let kindSpace = EmbeddingSpace(name: "image", dimension: dim, fingerprint: "model-A", factory: factory)
        let gallery = try Gallery(directory: url, spaces: [kindSpace])
        let (items, vectors) = randomItems(60, seed: 7)
        try gallery.add(Array(items[..<30]), embeddings: ["image": Array(vectors[..<(30 * dim)])])
        try gallery.add(Array(items[30...]), embeddings: ["image": Array(vectors[(30 * dim)...])])
        #expect(gallery.count == 60)
        #expect(try gallery.remove(keys: ["item-3", "item-40"], requireAll: true) == 2)
        let kept = items.indices.filter { $0 != 3 && $0 != 40 }
        let keptKeys = kept.map { items[$0].key }
        let keptVectors = kept.flatMap { Array(vectors[$0 * dim..<($0 + 1) * dim]) }
        let query = Array(vectors[3 * dim..<4 * dim])
        let hits = try gallery.search(embedding: query, space: "image", k: 5)
        #expect(!hits.contains { $0.item.key == "item-3" || $0.item.key == "item-40" })
        // 58 items: HNSW is exact at this size; SQ8 rounding may swap near-ties, so compare as sets of the top 3.
        let expected = Array(cosineRanking(query, keptVectors, keys: keptKeys).prefix(5))
        #expect(Set(hits.prefix(3).map(\.item.key)).isSubset(of: Set(expected)))
        // The saved files are current: a new handle loads them and answers the same.
        let reopened = try Gallery(directory: url, spaces: [kindSpace])
        #expect(try reopened.search(embedding: query, space: "image", k: 5).map(\.item.key) == hits.map(\.item.key))
    }
}
