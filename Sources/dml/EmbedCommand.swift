import ArgumentParser
import DMLNpy
import DMLRuntime
import Foundation

/// `dml embed`: runs an exported model over a `.npy` batch and writes the embeddings.
struct EmbedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Embed inputs with an exported model (.safetensors).",
        discussion: """
            Input: float32/float64 .npy of shape (n, ...) whose trailing dimensions hold the model's input shape, \
            or, for image models, uint8 pixels of shape (n, height, width, 3) or (n, height, width) (gray), \
            preprocessed as the model declares. Output: float32 (n, dim), L2-normalised unless the model says not.
            """
    )

    @Option(help: "Model file written by dmlkit.export.") var model: String
    @Option(help: "Inputs, .npy.") var input: String
    @Option(help: "Embeddings to write, .npy float32 (n, dim).") var output: String
    @Option(help: "Samples per forward pass.") var batch = 64
    @Option(help: "BLAS threads. Default: OPENBLAS_NUM_THREADS or all cores.") var threads: Int?

    func run() throws {
        guard batch >= 1 else { throw CLIError("--batch must be at least 1") }
        if let threads, threads < 1 { throw CLIError("--threads must be at least 1") }
        let embedder = try EmbeddingModel(contentsOf: fileURL(model), options: .init(maxBatch: batch, threads: threads))
        let array = try Npy.read(contentsOf: fileURL(input))
        guard let count = array.shape.first, array.shape.count >= 2 else {
            throw CLIError("\(input): expected a batch of shape (n, ...), got shape \(array.shape)")
        }
        let embeddings: [Float]
        if array.dtype == .uint8 {
            embeddings = try embedPixels(array, count: count, embedder: embedder)
        } else {
            let sample = Array(array.shape.dropFirst())
            guard sample.reduce(1, *) == embedder.inputSize else {
                throw CLIError("\(input): samples of shape \(sample) do not fit the model input \(embedder.inputShape)")
            }
            let values: [Float]
            do { values = try array.floats() } catch { throw CLIError("\(input): \(error)") }
            embeddings = try embedder.embed(batch: values, count: count)
        }
        try Npy.write(embeddings, shape: [count, embedder.dimension], to: fileURL(output))
        print("embedded \(count) inputs -> \(output) (\(count) x \(embedder.dimension))")
    }

    private func embedPixels(_ array: NpyArray, count: Int, embedder: EmbeddingModel) throws -> [Float] {
        let format: PixelFormat
        switch array.shape.count {
        case 3: format = .gray8
        case 4 where array.shape[3] == 3: format = .rgb8
        default: throw CLIError("\(input): uint8 pixels must have shape (n, height, width, 3) or (n, height, width), got \(array.shape)")
        }
        guard count > 0 else { return [] }
        let pixels = try array.uint8s()
        return try pixels.withUnsafeBufferPointer {
            try embedder.embed(pixels: $0, width: array.shape[2], height: array.shape[1], format: format, count: count)
        }
    }
}
