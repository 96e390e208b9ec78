#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Read-only bytes of a file, memory-mapped (or held in memory when built from bytes).
/// Pages are loaded by the OS on first touch, so opening a model costs almost no memory.
final class MappedBytes: @unchecked Sendable {
    // Immutable after init; the mapping is never written, so sharing across threads is safe.
    let base: UnsafeRawPointer?
    let count: Int
    private let isMapped: Bool

    /// Maps the whole file read-only.
    init(path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw SafetensorsError.io(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw SafetensorsError.io(path: path, reason: String(cString: strerror(errno))) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw SafetensorsError.io(path: path, reason: "not a regular file") }
        count = Int(info.st_size)
        isMapped = count > 0
        if count == 0 {
            base = nil
            return
        }
        let pointer = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let pointer, pointer != MAP_FAILED else {
            throw SafetensorsError.io(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(pointer)
    }

    /// Holds a copy of `bytes` (used for in-memory models and tests).
    init(bytes: [UInt8]) {
        count = bytes.count
        isMapped = false
        if bytes.isEmpty {
            base = nil
        } else {
            let memory = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 64)
            bytes.withUnsafeBytes { memory.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
            base = UnsafeRawPointer(memory)
        }
    }

    /// Lets the OS drop the mapping's resident pages (they are read from the file again on the next touch):
    /// after load, weights already copied or reordered elsewhere stop counting in the process's memory.
    /// Nothing for bytes held in memory.
    func releaseResidentPages() { releaseResidentPages(in: 0..<count) }

    /// The same for the pages holding `range` (widened to whole pages: the mapping is read-only and private,
    /// so a dropped neighbour is only read again, never lost).
    func releaseResidentPages(in range: Range<Int>) {
        guard isMapped, let base, !range.isEmpty else { return }
        let page = max(1, Int(sysconf(Int32(_SC_PAGESIZE))))
        let start = range.lowerBound / page * page, end = min(count, (range.upperBound + page - 1) / page * page)
        guard start < end else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, Int32(MADV_DONTNEED))
    }

    deinit {
        guard let base else { return }
        if isMapped {
            munmap(UnsafeMutableRawPointer(mutating: base), count)
        } else {
            base.deallocate()
        }
    }
}
