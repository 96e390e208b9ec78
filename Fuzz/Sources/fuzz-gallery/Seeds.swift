import DMLKit
import Foundation
import FuzzSeeds
import FuzzSupport

/// Seeds: the store of the seed gallery (written by `Gallery`) and of an empty gallery.
@_cdecl("LLVMFuzzerInitialize")
public func initializeGallery(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> CInt {
    writeSeedsIfRequested { save in
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("dmlkit-fuzz-seeds-\(getpid())")
        defer { try? FileManager.default.removeItem(at: root) }
        let seeded = root.appendingPathComponent("seeded"), empty = root.appendingPathComponent("empty")
        try SeedGallery.build(at: seeded)
        _ = try Gallery(directory: empty, spaces: SeedGallery.spaces)
        // The handles are closed here, so the WAL has been checkpointed into gallery.sqlite.
        try save("seed_gallery.sqlite", try Data(contentsOf: seeded.appendingPathComponent("gallery.sqlite")))
        try save("empty_gallery.sqlite", try Data(contentsOf: empty.appendingPathComponent("gallery.sqlite")))
    }
    return 0
}
