import DMLFiles
import Foundation

/// What FAISS's own file does not record, kept beside it as `INDEX.dml.json` so the index file stays plain FAISS.
/// Format 2 also records the index file's size and checksum, so a sidecar that belongs to another version of the
/// index (an interrupted save, a file copied without the other) is detected at load.
struct IndexSidecar: Codable, Equatable {
    var format = 2
    var metric: Metric
    var factory: String?
    /// Size of the FAISS file this sidecar belongs to (format 2).
    var indexBytes: Int?
    /// `Checksum.hex` of that file (format 2).
    var indexChecksum: String?

    init(metric: Metric, factory: String?, indexBytes: Int?, indexChecksum: String?) {
        self.metric = metric
        self.factory = factory
        self.indexBytes = indexBytes
        self.indexChecksum = indexChecksum
    }

    static func url(besideIndexAt url: URL) -> URL {
        url.deletingLastPathComponent().appendingPathComponent(url.lastPathComponent + ".dml.json")
    }

    func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// The sidecar of an index file, or nil when there is none (an index written by another tool).
    static func read(besideIndexAt url: URL) throws -> IndexSidecar? {
        let sidecarURL = Self.url(besideIndexAt: url)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: sidecarURL.path, isDirectory: &isDirectory) else { return nil }
        guard !isDirectory.boolValue else { throw VectorIndexError.io("\(sidecarURL.path) is a directory, not a sidecar file") }
        do {
            return try JSONDecoder().decode(IndexSidecar.self, from: Data(contentsOf: sidecarURL))
        } catch {
            throw VectorIndexError.corruptIndex("cannot read \(sidecarURL.lastPathComponent): it is not a DMLKit index sidecar")
        }
    }

    /// Throws `sidecarMismatch` unless the sidecar describes exactly these index bytes (sidecars of format 1 carry
    /// no size or checksum and are accepted as they are).
    func check(indexBytes data: Data, indexURL: URL) throws {
        guard let size = indexBytes, let checksum = indexChecksum else { return }
        let actual = data.withUnsafeBytes { Checksum.hex($0) }
        guard size == data.count, checksum == actual else {
            throw VectorIndexError.sidecarMismatch(
                "\(indexURL.lastPathComponent) (\(data.count) bytes, checksum \(actual)) is not the index its sidecar "
                    + "\(Self.url(besideIndexAt: indexURL).lastPathComponent) describes (\(size) bytes, checksum \(checksum)): "
                    + "a save was interrupted or one file was replaced without the other")
        }
    }
}
