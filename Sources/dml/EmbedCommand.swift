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
            Input: float32/float64 .npy of shape (n,) + the model's input shape exactly (e.g. (n, 3, 224, 224) \
            for an NCHW model: `dml model info` prints it), or, for image models, uint8 pixels of shape \
            (n, height, width, 3) or (n, height, width) (gray), preprocessed as the model declares. \
            Output: float32 (n, dim), L2-normalised unless the model says not. The model file's fingerprint \
            is checked first: a file changed after export is refused unless --ignore-fingerprint is given.
            """
    )

    @Option(help: "Model file written by dmlkit.export.") var model: String
    @Option(help: "Inputs, .npy.") var input: String
    @Option(help: "Embeddings to write, .npy float32 (n, dim).") var output: String
    @Option(help: "Samples per forward pass.") var batch = 64
    @Option(help: "BLAS threads. Default: OPENBLAS_NUM_THREADS or all cores.") var threads: Int?
    @Flag(help: "Load the model even when its contents do not match its dml.fingerprint.") var ignoreFingerprint = false

    func run() throws {
        guard batch >= 1 else { throw CLIError("--batch must be at least 1") }
        if let threads, threads < 1 { throw CLIError("--threads must be at least 1") }
        let embedder = try EmbeddingModel(
            contentsOf: fileURL(model), options: .init(maxBatch: batch, threads: threads, verifyFingerprint: !ignoreFingerprint))
        let array = try Npy.read(contentsOf: fileURL(input))
        guard let count = array.shape.first, array.shape.count >= 2 else {
            throw CLIError("\(input): expected a batch of shape (n, ...), got shape \(array.shape)")
        }
        let embeddings: [Float]
        if array.dtype == .uint8 {
            embeddings = try embedPixels(array, count: count, embedder: embedder)
        } else {
            try checkSampleShape(Array(array.shape.dropFirst()), spec: embedder.spec)
            let values: [Float]
            do { values = try array.floats() } catch { throw CLIError("\(input): \(error)") }
            embeddings = try embedder.embed(batch: values, count: count)
        }
        try Npy.write(embeddings, shape: [count, embedder.dimension], to: fileURL(output))
        print("embedded \(count) inputs -> \(output) (\(count) x \(embedder.dimension))")
    }

    /// Float samples must have the model's input shape exactly: the same element count in another shape
    /// (channels-last pixels for an NCHW model) would run and give wrong embeddings.
    private func checkSampleShape(_ sample: [Int], spec: ModelSpec) throws {
        let expected = spec.inputShape
        guard sample != expected else { return }
        let layout = spec.inputLayout.map { " (layout \($0.rawValue))" } ?? ""
        let want = "(n, " + expected.map(String.init).joined(separator: ", ") + ")"
        if expected.count == 3, sample == [expected[1], expected[2], expected[0]] {
            throw CLIError("\(input): samples of shape \(sample) look channels-last (n, H, W, C) but the model takes \(want)\(layout); "
                           + "transpose first, e.g. numpy x.transpose(0, 3, 1, 2)")
        }
        throw CLIError("\(input): samples of shape \(sample) do not match the model input \(expected)\(layout): the file must have shape \(want)")
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
