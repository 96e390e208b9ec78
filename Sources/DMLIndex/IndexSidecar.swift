import DMLFiles
import Foundation

/// What FAISS's own file does not record, kept beside it as `INDEX.dml.json` so the index file stays plain FAISS.
struct IndexSidecar: Codable, Equatable {
    var format = 1
    var metric: Metric
    var factory: String?

    init(metric: Metric, factory: String?) {
        self.metric = metric
        self.factory = factory
    }

    static func url(besideIndexAt url: URL) -> URL {
        url.deletingLastPathComponent().appendingPathComponent(url.lastPathComponent + ".dml.json")
    }

    func write(besideIndexAt url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(self), to: Self.url(besideIndexAt: url))
    }

    /// The sidecar of an index file, or nil when there is none (an index written by another tool).
    static func read(besideIndexAt url: URL) throws -> IndexSidecar? {
        let sidecarURL = Self.url(besideIndexAt: url)
        guard FileManager.default.fileExists(atPath: sidecarURL.path) else { return nil }
        do {
            return try JSONDecoder().decode(IndexSidecar.self, from: Data(contentsOf: sidecarURL))
        } catch {
            throw VectorIndexError.corruptIndex("cannot read \(sidecarURL.lastPathComponent): \(error)")
        }
    }
}
