#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

#if canImport(Glibc)
private let posixWrite = Glibc.write
#elseif canImport(Darwin)
private let posixWrite = Darwin.write
#endif

/// Crash-safe file replacement: write a temporary file beside the target, check every step (write, fsync, close),
/// read it back and compare, rename it over the target, flush the directory. A reader sees the old file or the
/// new one, never a partial write, and a failed write (full disk, quota, I/O error) leaves the old file untouched.
///
/// Temporary files are named `.NAME.PID.RANDOM.tmp`; those left by processes that no longer exist (killed
/// mid-save) are removed by the next write to the same target.
public enum AtomicFile {
    /// Why a file could not be written.
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public let description: String
        public init(description: String) { self.description = description }
    }

    /// Writes `data` to `url` atomically.
    public static func write(_ data: Data, to url: URL) throws {
        try write([(data, url)])
    }

    /// Writes several files as one unit: every temporary file is written and verified before the first rename,
    /// so a failure while writing (the usual one: a full disk) changes none of the targets. The renames then run
    /// in the order given; put the file that readers check against the others last.
    public static func write(_ files: [(Data, URL)]) throws {
        var staged: [(temporary: URL, target: URL)] = []
        defer { for file in staged { unlink(file.temporary.path) } }
        for (data, url) in files {
            let temporary = try temporaryURL(for: url)
            staged.append((temporary, url))
            try writeVerified(data, to: temporary)
        }
        for (index, file) in staged.enumerated() {
            guard rename(file.temporary.path, file.target.path) == 0 else {
                let reason = errnoText()
                throw Failure(description: "cannot move the new file into place at \(file.target.path): \(reason)"
                    + (index > 0 ? " (\(staged[0].target.lastPathComponent) was already replaced)" : ""))
            }
        }
        for directory in Set(staged.map { $0.target.deletingLastPathComponent().path }) {
            try? sync(path: directory)
        }
    }

    /// Calls `produce` with a temporary path beside `url`, then flushes and renames it into place. `produce` must
    /// check its own writes; the file is only moved into place if it exists and fsync and close succeed. The
    /// temporary file is removed if `produce` or any later step fails. Prefer `write(_:to:)`, which also reads back.
    public static func replace(_ url: URL, produce: (URL) throws -> Void) throws {
        let temporary = try temporaryURL(for: url)
        do {
            try produce(temporary)
            try sync(path: temporary.path)
            guard rename(temporary.path, url.path) == 0 else {
                throw Failure(description: "cannot move the new file into place at \(url.path): \(errnoText())")
            }
            try? sync(path: url.deletingLastPathComponent().path)
        } catch {
            unlink(temporary.path)
            throw error
        }
    }

    // MARK: Steps

    /// A fresh temporary path beside `url`, after removing the temporary files of dead processes.
    static func temporaryURL(for url: URL) throws -> URL {
        let directory = url.deletingLastPathComponent()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw Failure(description: "cannot write \(url.path): directory \(directory.path) does not exist")
        }
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw Failure(description: "cannot write \(url.path): it is a directory")
        }
        removeStaleTemporaries(for: url)
        return directory.appendingPathComponent(".\(url.lastPathComponent).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp")
    }

    /// Removes `.NAME.PID.*.tmp` beside `url` whose PID no longer runs (a save that was killed).
    /// A PID that runs (this process, or another that reused the number) keeps its files.
    public static func removeStaleTemporaries(for url: URL) {
        let directory = url.deletingLastPathComponent()
        let prefix = ".\(url.lastPathComponent)."
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return }
        for name in names where name.hasPrefix(prefix) && name.hasSuffix(".tmp") {
            let parts = name.dropFirst(prefix.count).dropLast(4).split(separator: ".")
            guard parts.count == 2, let pid = pid_t(parts[0]), pid > 0, UInt32(parts[1]) != nil else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH {
                unlink(directory.appendingPathComponent(name).path)
            }
        }
    }

    /// Writes `data` to a new file, checking write, fsync and close, then reads it back and compares.
    static func writeVerified(_ data: Data, to url: URL) throws {
        let path = url.path
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Failure(description: "cannot create \(path): \(errnoText())") }
        var problem: String?
        data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            var done = 0
            while done < bytes.count {
                let n = posixWrite(fd, bytes.baseAddress! + done, min(bytes.count - done, 1 << 30))
                if n < 0 && errno == EINTR { continue }
                if n <= 0 {
                    problem = "cannot write \(url.lastPathComponent) in \(url.deletingLastPathComponent().path): \(errnoText())"
                    return
                }
                done += n
            }
        }
        if problem == nil && fsync(fd) != 0 { problem = "cannot flush \(path) to disk: \(errnoText())" }
        if close(fd) != 0 && problem == nil { problem = "cannot close \(path): \(errnoText())" }
        if let problem { throw Failure(description: problem) }
        try verify(data, at: path)
    }

    /// Reads the file back and compares it with what was written, byte for byte.
    static func verify(_ data: Data, at path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "cannot reopen \(path) to check it: \(errnoText())") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw Failure(description: "cannot check \(path): \(errnoText())") }
        guard Int(info.st_size) == data.count else {
            throw Failure(description: "\(path) holds \(info.st_size) bytes after writing \(data.count)")
        }
        // At most 1 MiB at a time, and no more than the file: index sidecars are a few hundred bytes.
        let chunk = min(1 << 20, max(data.count, 1))
        var buffer = [UInt8](repeating: 0, count: chunk)
        var offset = 0
        try data.withUnsafeBytes { (expected: UnsafeRawBufferPointer) in
            while offset < expected.count {
                let want = min(chunk, expected.count - offset)
                let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, want, off_t(offset)) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw Failure(description: "cannot read back \(path): \(n < 0 ? errnoText() : "unexpected end of file")") }
                guard memcmp(buffer, expected.baseAddress! + offset, n) == 0 else {
                    throw Failure(description: "\(path) reads back different bytes than were written (near byte \(offset))")
                }
                offset += n
            }
        }
    }

    /// Flushes a file's (or directory's) contents to disk.
    static func sync(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "cannot open \(path) to flush it: \(errnoText())") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw Failure(description: "cannot flush \(path) to disk: \(errnoText())") }
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}

extension AtomicFile.Failure: LocalizedError {
    public var errorDescription: String? { description }
}
