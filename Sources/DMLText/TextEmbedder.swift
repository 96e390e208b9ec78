import CDMLBlas
import DMLRuntime
import Foundation

/// Sentence embeddings from a Hugging Face BERT model directory (all-MiniLM-L6-v2 and its kin), computed in Swift:
/// tokenize, encode, pool as `1_Pooling/config.json` says, L2-normalise. Loads the directory as is:
/// `config.json`, `model.safetensors`, `vocab.txt`, `tokenizer_config.json`, `1_Pooling/config.json`
/// (and `sentence_bert_config.json` for the maximum length, when present).
///
/// Thread-safe: concurrent calls each take their own scratch buffers.
public final class TextEmbedder: @unchecked Sendable {
    // Immutable after init except `spare`, which `lock` guards.
    /// The tokenizer.
    public let tokenizer: BertTokenizer
    /// The encoder.
    public let encoder: BertEncoder
    /// How token vectors are pooled.
    public let pooling: Pooling
    /// How the weights are rounded.
    public let precision: WeightPrecision
    /// Texts per forward pass.
    public let maxBatch: Int
    private let lock = NSLock()
    private var spare: [Workspace] = []

    /// Options for loading.
    public struct Options: Sendable {
        /// Weight rounding (see `WeightPrecision`).
        public var precision: WeightPrecision
        /// Texts per forward pass (sorted by length first, so each pass holds texts of similar length).
        public var maxBatch: Int
        /// BLAS threads; nil leaves the BLAS default (`OPENBLAS_NUM_THREADS`).
        public var threads: Int?

        /// Options with defaults: f32, 32 texts per pass, BLAS default threads.
        public init(precision: WeightPrecision = .f32, maxBatch: Int = 32, threads: Int? = nil) {
            self.precision = precision
            self.maxBatch = maxBatch
            self.threads = threads
        }
    }

    /// Loads a model directory. Errors name the missing file, bad key or bad tensor.
    public init(directory: URL, options: Options = .init()) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw TextModelError.notADirectory(directory.path)
        }
        guard options.maxBatch >= 1 else { throw TextModelError.invalidConfig(file: "options", key: "maxBatch", reason: "must be at least 1") }
        let configuration = try BertConfiguration(directory: directory)
        tokenizer = try BertTokenizer(directory: directory)
        pooling = try Pooling(directory: directory)
        guard tokenizer.vocabulary.count <= configuration.vocabularySize else {
            throw TextModelError.invalidConfig(file: "config.json", key: "vocab_size",
                                               reason: "is \(configuration.vocabularySize) but vocab.txt has \(tokenizer.vocabulary.count) tokens")
        }
        guard tokenizer.configuration.maxLength <= configuration.maxPositions else {
            throw TextModelError.invalidConfig(file: "sentence_bert_config.json", key: "max_seq_length",
                                               reason: "is \(tokenizer.configuration.maxLength), beyond max_position_embeddings \(configuration.maxPositions)")
        }
        let weightsURL = directory.appendingPathComponent("model.safetensors")
        guard FileManager.default.fileExists(atPath: weightsURL.path) else { throw TextModelError.missingFile("model.safetensors") }
        let file: SafetensorsFile
        do { file = try SafetensorsFile(contentsOf: weightsURL) } catch {
            throw TextModelError.unreadableFile(path: "model.safetensors", reason: "\(error)")
        }
        encoder = try BertEncoder(file: file, configuration: configuration, precision: options.precision)
        precision = options.precision
        maxBatch = options.maxBatch
        if let threads = options.threads { dml_blas_set_threads(Int32(threads)) }
    }

    /// Length of one embedding.
    public var dimension: Int { encoder.configuration.hiddenSize }

    /// One L2-normalised embedding.
    public func embed(_ text: String) -> [Float] {
        embed([text])
    }

    /// L2-normalised embeddings of `texts`, row-major `[texts.count, dimension]`.
    public func embed(_ texts: [String]) -> [Float] {
        embed(encodings: tokenizer.encode(texts))
    }

    /// Embeddings of already tokenised texts (ids must come from this model's tokenizer).
    public func embed(encodings: [Encoding]) -> [Float] {
        var output = [Float](repeating: 0, count: encodings.count * dimension)
        // Similar lengths in one pass keep the per-sequence attention GEMMs alike; the order is restored on output.
        let order = encodings.indices.sorted { encodings[$0].ids.count < encodings[$1].ids.count }
        let workspace = takeWorkspace()
        defer { giveBack(workspace) }
        var start = 0
        while start < order.count {
            let chunk = order[start..<min(start + maxBatch, order.count)]
            run(chunk.map { encodings[$0] }, rows: Array(chunk), workspace: workspace, output: &output)
            start += chunk.count
        }
        return output
    }

    private func run(_ batch: [Encoding], rows: [Int], workspace: Workspace, output: inout [Float]) {
        let width = dimension
        let limit = Int32(encoder.configuration.vocabularySize)
        let maxLength = min(tokenizer.configuration.maxLength, encoder.configuration.maxPositions)
        var ids: [Int32] = []
        var lengths: [Int] = []
        for encoding in batch {
            // Foreign encodings are clipped rather than trusted: out-of-range ids become [UNK].
            let clipped = encoding.ids.prefix(maxLength)
            ids.append(contentsOf: clipped.map { $0 >= 0 && $0 < limit ? $0 : tokenizer.unknownID })
            lengths.append(clipped.count)
        }
        encoder.encode(ids: ids, lengths: lengths, workspace: workspace)
        output.withUnsafeMutableBufferPointer { out in
            workspace.hidden.withUnsafeBufferPointer { hidden in
                var offset = 0
                for (length, row) in zip(lengths, rows) {
                    let target = out.baseAddress! + row * width
                    if length == 0 {
                        target.update(repeating: 0, count: width)
                        continue
                    }
                    pooling.pool(hidden.baseAddress! + offset * width, length: length, width: width, into: target)
                    l2NormalizeRows(target, rows: 1, width: width)
                    offset += length
                }
            }
        }
    }

    private func takeWorkspace() -> Workspace {
        lock.lock()
        defer { lock.unlock() }
        return spare.popLast() ?? Workspace()
    }

    private func giveBack(_ workspace: Workspace) {
        lock.lock()
        spare.append(workspace)
        lock.unlock()
    }
}
