@testable import DMLKit
import Foundation
import Testing

// Bad input and failing storage: each gives a clear error and loses nothing.

private let dim = 4
private let space = EmbeddingSpace(name: "image", dimension: dim, fingerprint: "model-A")

private func pose(shift: Double = 0, labelled: Int = 17) -> Pose {
    let base: [Double] = [
        0, -3, 0.3, -3.2, -0.3, -3.2, 0.6, -3, -0.6, -3, 1, -2, -1, -2, 1.5, -1, -1.5, -1, 2, 0, -2, 0, 1, 0, -1, 0, 1, 2, -1, 2,
        1, 4, -1, 4,
    ]
    // The torso joints (5, 6, 11, 12) first, then the others, up to `labelled`.
    let order = [5, 6, 11, 12] + (0..<17).filter { ![5, 6, 11, 12].contains($0) }
    let kept = Set(order.prefix(labelled))
    var values: [Double] = []
    for j in 0..<17 {
        let x: Double = base[2 * j] + shift * Double(j % 3)
        values += kept.contains(j) ? [x, base[2 * j + 1], 2] : [0, 0, 0]
    }
    return try! Pose(coco: values)
}

private func items(_ n: Int, prefix: String = "k") -> ([GalleryItem], [Float]) {
    let items = (0..<n).map { GalleryItem(key: "\(prefix)-\($0)", caption: "caption \($0)", pose: pose(shift: Double($0) * 0.01)) }
    return (items, (0..<(n * dim)).map { Float($0 % 7) + 1 })
}

private func withGallery(_ body: (Gallery, URL) throws -> Void) throws {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("dmlkit-failure-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: url) }
    let gallery = try Gallery(directory: url, spaces: [space], busyTimeout: 0.2)
    let (first, vectors) = items(10)
    try gallery.add(first, embeddings: ["image": vectors])
    try body(gallery, url)
}

@Suite struct GalleryFailures {
    @Test func aLockedDatabaseFailsAfterTheBusyTimeoutAndLosesNothing() throws {
        try withGallery { gallery, url throws in
            let other = try SQLiteDatabase(path: url.appendingPathComponent("gallery.sqlite").path)
            try other.execute("BEGIN IMMEDIATE")  // another writer holds the write lock
            let (more, vectors) = items(3, prefix: "more")
            #expect {
                try gallery.add(more, embeddings: ["image": vectors])
            } throws: { error in
                guard case GalleryError.locked = error else { return false }
                return "\(error)".contains("locked")
            }
            #expect(throws: GalleryError.locked("SQLite error 5: database is locked")) { try gallery.remove(keys: ["k-1"]) }
            try other.execute("ROLLBACK")
            #expect(gallery.count == 10 && gallery.generation == 1)
            try gallery.add(more, embeddings: ["image": vectors])
            #expect(gallery.count == 13)
            #expect(try gallery.search(pose: more[0].pose!, k: 13).count == 13)
        }
    }

    @Test func posesThatCanNeverBeComparedAreRefusedOnAdd() throws {
        try withGallery { gallery, _ throws in
            let few = GalleryItem(key: "few", pose: pose(labelled: 4))
            #expect(throws: GalleryError.invalidItem("the pose of 'few' has 4 labelled joints, at least 5 are needed (leave the pose out if it is unknown)")) { try gallery.add([few], embeddings: ["image": [1, 2, 3, 4]]) }
            var noHip = pose()
            noHip.keypoints[11].visibility = 0
            #expect(throws: GalleryError.invalidItem("the pose of 'nohip': pose distance needs both hips and both shoulders; unlabelled: left_hip")) { try gallery.add([GalleryItem(key: "nohip", pose: noHip)], embeddings: ["image": [1, 2, 3, 4]]) }
            // Five labelled joints with the torso is enough.
            try gallery.add([GalleryItem(key: "five", pose: pose(labelled: 5))], embeddings: ["image": [1, 2, 3, 4]])
            #expect(gallery.count == 11)
        }
    }

    @Test func emptyCaptionsAreRefusedOnAdd() throws {
        try withGallery { gallery, _ throws in
            for caption in ["", "  \n"] {
                #expect(throws: GalleryError.invalidItem("'e' has an empty caption (leave it out instead)")) { try gallery.add([GalleryItem(key: "e", caption: caption)], embeddings: ["image": [1, 2, 3, 4]]) }
            }
            #expect(gallery.count == 10)
        }
    }

    @Test func anUnknownKeyRefusesTheWholeRemoval() throws {
        try withGallery { gallery, _ throws in
            #expect {
                try gallery.remove(keys: ["k-1", "k-2", "no-such-key"], requireAll: true)
            } throws: { error in
                guard case GalleryError.unknownKey(let key) = error else { return false }
                return key == "no-such-key"
            }
            #expect(gallery.count == 10 && gallery.generation == 1)
            #expect(try gallery.item(key: "k-1").key == "k-1")
            #expect(try gallery.remove(keys: ["k-1", "k-2"], requireAll: true) == 2)
            #expect(gallery.count == 8)
            let left = try gallery.search(pose: pose(), within: 100).map(\.item.key)
            #expect(Set(left) == Set(["k-0"] + (3..<10).map { "k-\($0)" }))
        }
    }

    @Test func aPoseWithTooFewLabelledJointsIsARefusedQuery() throws {
        try withGallery { gallery, _ throws in
            #expect(throws: GalleryError.invalidQuery("the pose has 4 labelled joints; a pose distance needs at least 5")) { try gallery.search(pose: pose(labelled: 4), k: 3) }
            #expect(throws: GalleryError.invalidQuery("the pose has 4 labelled joints; a pose distance needs at least 5")) { try gallery.search(pose: pose(labelled: 4), within: 1) }
            #expect(try gallery.search(pose: pose(labelled: 5), k: 3).count == 3)
        }
    }

    @Test func openingAGalleryWithASubsetOfItsSpacesCannotAddItems() throws {
        try withGallery { _, url throws in
            let caption = EmbeddingSpace(name: "caption", dimension: 2, fingerprint: "text")
            let both = url.appendingPathExtension("both")
            defer { try? FileManager.default.removeItem(at: both) }
            let full = try Gallery(directory: both, spaces: [space, caption])
            try full.add([GalleryItem(key: "a")], embeddings: ["image": [1, 2, 3, 4], "caption": [1, 0]])
            let partial = try Gallery(directory: both, spaces: [space])
            #expect(throws: GalleryError.invalidItem("the gallery also has space 'caption': open it with every stored space to add items")) { try partial.add([GalleryItem(key: "b")], embeddings: ["image": [1, 2, 3, 4]]) }
            #expect(partial.count == 1)
        }
    }
}

@Suite struct GalleryReaderIsReadOnly {
    @Test func theReaderOpensTheStoreReadOnlyAndWritesNothing() throws {
        try withGallery { gallery, url throws in
            let generation = gallery.generation
            let reader = try GalleryReader(directory: url)
            #expect(reader.isReadOnly)
            #expect(throws: SQLiteError.self) { try reader.database.execute("DELETE FROM items") }
            #expect(try reader.count() == 10 && reader.generation() == generation)
            #expect(try reader.item(key: "k-3").caption == "caption 3")
            #expect(throws: GalleryError.unknownKey("nope")) { try reader.item(key: "nope") }
        }
    }

    @Test func aGalleryInAReadOnlyDirectoryCanBeRead() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dmlkit-readonly-\(UUID().uuidString)")
        defer {
            chmod(url.path, 0o755)
            try? FileManager.default.removeItem(at: url)
        }
        do {
            let gallery = try Gallery(directory: url, spaces: [space])
            let (first, vectors) = items(5)
            try gallery.add(first, embeddings: ["image": vectors])
        }  // closed: SQLite removes the -wal and -shm files
        #expect(!FileManager.default.fileExists(atPath: url.appendingPathComponent("gallery.sqlite-wal").path))
        chmod(url.appendingPathComponent("gallery.sqlite").path, 0o444)
        chmod(url.path, 0o555)
        let reader = try GalleryReader(directory: url)
        #expect(try reader.count() == 5)
        #expect(try reader.items().map(\.item.key) == (0..<5).map { "k-\($0)" })
        // Nothing was created beside the store.
        let files = try FileManager.default.contentsOfDirectory(atPath: url.path).filter { $0.hasPrefix("gallery.sqlite") }
        #expect(files == ["gallery.sqlite"] || getuid() == 0)
    }
}
