import DMLIndex
import DMLKit
import Foundation
import FuzzSeeds
import FuzzSupport

/// A gallery directory whose `gallery.sqlite` is the fuzzer's input, beside valid index files of the seed gallery:
/// `GalleryReader` reads everything it offers, then a `Gallery` opened with the seed's spaces runs a pose search
/// and a search in each space (what `dml gallery search` does).
private let template: [(name: String, bytes: Data)] = {
    removeStaleScratch()
    let url = scratchRoot().appendingPathComponent("template-\(getpid())")
    try? FileManager.default.removeItem(at: url)
    defer { try? FileManager.default.removeItem(at: url) }
    do {
        try SeedGallery.build(at: url)
        // Held in memory and written back per input: FileManager.copyItem allocated a 1 MB buffer per file,
        // which cost more than the gallery code under test.
        let names = try FileManager.default.contentsOfDirectory(atPath: url.path).filter { !$0.hasPrefix(storeName) }
        return try names.sorted().map { ($0, try Data(contentsOf: url.appendingPathComponent($0))) }
    } catch {
        fatalError("cannot build the seed gallery: \(error)")
    }
}()

private let storeName = "gallery.sqlite"

private let work = scratchRoot().appendingPathComponent("work-\(getpid())")

/// A tmpfs where there is one: the gallery fsyncs every save.
private func scratchRoot() -> URL {
    let shm = URL(fileURLWithPath: "/dev/shm", isDirectory: true)
    let root = FileManager.default.fileExists(atPath: shm.path) ? shm : FileManager.default.temporaryDirectory
    return root.appendingPathComponent("dmlkit-fuzz-gallery", isDirectory: true)
}

/// Fork mode starts a process per job, and a crashing one leaves its folders: remove those of dead processes.
private func removeStaleScratch() {
    let root = scratchRoot()
    for name in (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? [] {
        guard let pid = name.split(separator: "-").last.flatMap({ pid_t($0) }), kill(pid, 0) != 0 else { continue }
        try? FileManager.default.removeItem(at: root.appendingPathComponent(name))
    }
}

/// One work directory per process, reused: whatever the last input's gallery wrote or renamed there is removed,
/// the seed's index files are written back, and the input becomes the store.
private func prepareWork(with input: Data) {
    let files = FileManager.default
    do {
        try files.createDirectory(at: work, withIntermediateDirectories: true)
        let expected = Set(template.map(\.name))
        for name in try files.contentsOfDirectory(atPath: work.path) where !expected.contains(name) {
            try files.removeItem(at: work.appendingPathComponent(name))
        }
        for file in template { try file.bytes.write(to: work.appendingPathComponent(file.name)) }
        try input.write(to: work.appendingPathComponent(storeName))
    } catch {
        fatalError("cannot prepare the gallery directory: \(error)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGallery(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    VectorIndex.setThreadCount(1)
    prepareWork(with: fuzzData(start, count))
    if let reader = try? GalleryReader(directory: work) {
        _ = try? reader.spaces()
        _ = try? reader.count()
        _ = try? reader.generation()
        _ = try? reader.indexGenerations()
        if let items = try? reader.items(), let first = items.first {
            _ = try? reader.item(key: first.item.key)
        }
        for space in SeedGallery.spaces { _ = try? reader.embeddings(space: space.name) }
    }
    guard let gallery = try? Gallery(directory: work, spaces: SeedGallery.spaces, busyTimeout: 0) else { return 0 }
    if let hits = try? gallery.search(pose: SeedGallery.pose(0), k: 3) {
        invariant(hits.count <= 3, "pose search returned \(hits.count) hits for k = 3")
        invariant(hits.allSatisfy { $0.poseDistance.map { $0.isFinite && $0 >= 0 } ?? false }, "pose hit without a finite distance")
    }
    for space in SeedGallery.spaces {
        let query = (0..<space.dimension).map { Float($0 + 1) }
        if let hits = try? gallery.search(embedding: query, space: space.name, k: 3) {
            invariant(hits.count <= 3, "\(space.name) search returned \(hits.count) hits for k = 3")
        }
    }
    return 0
}
