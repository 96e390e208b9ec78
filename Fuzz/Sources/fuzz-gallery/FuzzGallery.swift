import DMLIndex
import DMLKit
import Foundation
import FuzzSeeds
import FuzzSupport

/// A gallery directory whose `gallery.sqlite` is the fuzzer's input, beside valid index files of the seed gallery:
/// `GalleryReader` reads everything it offers, then a `Gallery` opened with the seed's spaces runs a pose search
/// and a search in each space (what `dml gallery search` does).
private let template: URL = {
    removeStaleScratch()
    let url = scratchRoot().appendingPathComponent("template-\(getpid())")
    try? FileManager.default.removeItem(at: url)
    do { try SeedGallery.build(at: url) } catch { fatalError("cannot build the seed gallery: \(error)") }
    return url
}()

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

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGallery(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    VectorIndex.setThreadCount(1)
    let files = FileManager.default
    try? files.removeItem(at: work)
    do {
        try files.copyItem(at: template, to: work)
        for name in ["gallery.sqlite", "gallery.sqlite-wal", "gallery.sqlite-shm"] {
            try? files.removeItem(at: work.appendingPathComponent(name))
        }
        try fuzzData(start, count).write(to: work.appendingPathComponent("gallery.sqlite"))
    } catch {
        fatalError("cannot prepare the gallery directory: \(error)")
    }
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
