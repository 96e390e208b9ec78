import ArgumentParser
import DMLNpy
import DMLText
import Foundation

/// `dml embed-text`: sentence embeddings of each line of a text file with a Hugging Face BERT model directory.
struct EmbedTextCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed-text",
        abstract: "Embed each line of a UTF-8 text file with a BERT/MiniLM model directory.",
        discussion: """
            --model is a Hugging Face sentence-transformers directory (config.json, model.safetensors, vocab.txt, \
            tokenizer_config.json, 1_Pooling/config.json), e.g. models/text/all-MiniLM-L6-v2 (make text-model). \
            Lines are separated by \\n; a trailing \\r is dropped; empty lines are embedded as empty text. \
            Output: float32 (lines, dim), L2-normalised, row i for line i.
            """
    )

    @Option(help: "Model directory.") var model: String
    @Option(help: "Text file, one text per line (UTF-8).") var input: String
    @Option(help: "Embeddings to write, .npy float32 (lines, dim).") var output: String
    @Option(help: "Texts per forward pass.") var batch = 32
    @Option(help: "BLAS threads. Default: OPENBLAS_NUM_THREADS or all cores.") var threads: Int?
    @Option(help: "Weight precision: f32, f16 or int8 (rounded on load; compute is f32).") var weights = "f32"

    func run() throws {
        guard batch >= 1 else { throw CLIError("--batch must be at least 1") }
        if let threads, threads < 1 { throw CLIError("--threads must be at least 1") }
        guard let precision = WeightPrecision(rawValue: weights) else { throw CLIError("--weights must be f32, f16 or int8, got '\(weights)'") }
        let lines = try readLines(input)
        let embedder: TextEmbedder
        do {
            embedder = try TextEmbedder(directory: fileURL(model), options: .init(precision: precision, maxBatch: batch, threads: threads))
        } catch let error as TextModelError {
            if case .notADirectory = error { throw error }
            throw CLIError("\(model): \(error)")  // the error names the file inside the directory; say which directory
        }
        let encodings = embedder.tokenizer.encode(lines)
        let embeddings = embedder.embed(encodings: encodings)
        try Npy.write(embeddings, shape: [lines.count, embedder.dimension], to: fileURL(output))
        let truncated = encodings.filter(\.truncated).count
        print("embedded \(lines.count) lines -> \(output) (\(lines.count) x \(embedder.dimension))"
              + (truncated > 0 ? ", \(truncated) truncated to \(embedder.tokenizer.configuration.maxLength) tokens" : ""))
    }

    /// Splits on "\n" bytes, drops one trailing "\r" per line and the empty piece after a final newline; refuses
    /// invalid UTF-8 naming the line.
    private func readLines(_ path: String) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else { throw CLIError("cannot read \(path)") }
        var pieces = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        if pieces.last?.isEmpty == true { pieces.removeLast() }
        return try pieces.enumerated().map { number, piece in
            let bytes = piece.last == UInt8(ascii: "\r") ? piece.dropLast() : piece
            guard let line = String(validating: bytes, as: UTF8.self) else {
                throw CLIError("\(path): line \(number + 1) is not valid UTF-8")
            }
            return line
        }
    }
}
