#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Crash-safe file replacement: write a temporary file beside the target, flush it to disk, rename it over the
/// target, flush the directory. A reader sees the old file or the new one, never a partial write.
public enum AtomicFile {
    /// Why a file could not be written.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Writes `data` to `url` atomically.
    public static func write(_ data: Data, to url: URL) throws {
        try replace(url) { temporary in
            guard FileManager.default.createFile(atPath: temporary.path, contents: data) else {
                throw Failure(description: "cannot write \(temporary.path): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Calls `produce` with a temporary path beside `url`, then flushes and renames it into place.
    /// The temporary file is removed if `produce` or any later step fails.
    public static func replace(_ url: URL, produce: (URL) throws -> Void) throws {
        let directory = url.deletingLastPathComponent()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw Failure(description: "cannot write \(url.path): directory \(directory.path) does not exist")
        }
        let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp")
        do {
            try produce(temporary)
            try sync(path: temporary.path)
            guard rename(temporary.path, url.path) == 0 else {
                throw Failure(description: "cannot move the new file into place at \(url.path): \(String(cString: strerror(errno)))")
            }
            try? sync(path: directory.path)
        } catch {
            unlink(temporary.path)
            throw error
        }
    }

    /// Flushes a file's (or directory's) contents to disk.
    static func sync(path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw Failure(description: "cannot open \(path) to flush it: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw Failure(description: "cannot flush \(path) to disk: \(String(cString: strerror(errno)))") }
    }
}
