import DMLRuntime

/// One encoder layer's parameters. Weight matrices are stored transposed (`[in, out]`, see `Kernels.linear`);
/// query, key and value are fused into one `[H, 3H]` matrix so a single GEMM computes all three.
struct BertLayerWeights: Sendable {
    var qkvWeight: [Float], qkvBias: [Float]
    var attentionOutputWeight: [Float], attentionOutputBias: [Float]
    var attentionNormWeight: [Float], attentionNormBias: [Float]
    var intermediateWeight: [Float], intermediateBias: [Float]
    var outputWeight: [Float], outputBias: [Float]
    var outputNormWeight: [Float], outputNormBias: [Float]
}

/// All parameters of a BERT encoder, read from `model.safetensors` by their Hugging Face names (with or without
/// a `bert.` prefix). Accepts F32, F16, BF16 and I8 (with a `NAME.scale` tensor of per-row scales) storage.
struct BertWeights: Sendable {
    /// Borrowed from the mapped file when stored as aligned F32 and kept at f32: only the rows of tokens that
    /// occur are ever paged in, which keeps 47 MB of MiniLM's 90 MB out of memory.
    var wordEmbeddings: FloatBuffer
    var positionEmbeddings: [Float], typeEmbeddings: [Float]
    var embeddingNormWeight: [Float], embeddingNormBias: [Float]
    var layers: [BertLayerWeights]

    init(file: SafetensorsFile, configuration c: BertConfiguration, precision: WeightPrecision) throws {
        let prefix = file.tensors["bert.embeddings.word_embeddings.weight"] != nil ? "bert." : ""
        let h = c.hiddenSize, i = c.intermediateSize
        func tensor(_ name: String, _ shape: [Int], round: Bool = false) throws -> [Float] {
            let full = prefix + name
            guard let info = file.tensors[full] else { throw TextModelError.badTensor(name: full, reason: "is missing") }
            guard info.shape == shape else { throw TextModelError.badTensor(name: full, reason: "has shape \(info.shape), config.json implies \(shape)") }
            var values = try Self.floats(file, info)
            if round { precision.round(&values, rows: shape[0], columns: shape.dropFirst().reduce(1, *)) }
            return values
        }
        let wordName = prefix + "embeddings.word_embeddings.weight"
        if precision == .f32, file.tensors[wordName]?.dtype == .f32, file.tensors[wordName]?.shape == [c.vocabularySize, h] {
            wordEmbeddings = try file.floats(wordName)
        } else {
            wordEmbeddings = FloatBuffer(try tensor("embeddings.word_embeddings.weight", [c.vocabularySize, h], round: true))
        }
        positionEmbeddings = try tensor("embeddings.position_embeddings.weight", [c.maxPositions, h], round: true)
        typeEmbeddings = try tensor("embeddings.token_type_embeddings.weight", [c.typeVocabularySize, h], round: true)
        embeddingNormWeight = try tensor("embeddings.LayerNorm.weight", [h])
        embeddingNormBias = try tensor("embeddings.LayerNorm.bias", [h])
        layers = try (0..<c.layerCount).map { l in
            let p = "encoder.layer.\(l)."
            let qkv = try tensor(p + "attention.self.query.weight", [h, h], round: true)
                + tensor(p + "attention.self.key.weight", [h, h], round: true)
                + tensor(p + "attention.self.value.weight", [h, h], round: true)
            return BertLayerWeights(
                qkvWeight: Kernels.transposed(qkv, rows: 3 * h, columns: h),
                qkvBias: try tensor(p + "attention.self.query.bias", [h]) + tensor(p + "attention.self.key.bias", [h])
                    + tensor(p + "attention.self.value.bias", [h]),
                attentionOutputWeight: Kernels.transposed(try tensor(p + "attention.output.dense.weight", [h, h], round: true), rows: h, columns: h),
                attentionOutputBias: try tensor(p + "attention.output.dense.bias", [h]),
                attentionNormWeight: try tensor(p + "attention.output.LayerNorm.weight", [h]),
                attentionNormBias: try tensor(p + "attention.output.LayerNorm.bias", [h]),
                intermediateWeight: Kernels.transposed(try tensor(p + "intermediate.dense.weight", [i, h], round: true), rows: i, columns: h),
                intermediateBias: try tensor(p + "intermediate.dense.bias", [i]),
                outputWeight: Kernels.transposed(try tensor(p + "output.dense.weight", [h, i], round: true), rows: h, columns: i),
                outputBias: try tensor(p + "output.dense.bias", [h]),
                outputNormWeight: try tensor(p + "output.LayerNorm.weight", [h]),
                outputNormBias: try tensor(p + "output.LayerNorm.bias", [h]))
        }
    }

    /// A tensor as floats: floating dtypes converted, I8 dequantised with its per-row `.scale`.
    private static func floats(_ file: SafetensorsFile, _ info: TensorInfo) throws -> [Float] {
        switch info.dtype {
        case .f32, .f16, .bf16, .f64:
            return try file.floats(info.name).array
        case .i8:
            guard let scaleInfo = file.tensors[info.name + ".scale"] else {
                throw TextModelError.badTensor(name: info.name, reason: "is I8 but has no '\(info.name).scale'")
            }
            let rows = info.shape.first ?? 1
            guard rows > 0, scaleInfo.elementCount == rows, scaleInfo.dtype != .i8 else {
                throw TextModelError.badTensor(name: info.name + ".scale", reason: "must hold one float per row of '\(info.name)'")
            }
            let scales = try file.floats(scaleInfo.name).array
            let quantised = try file.int8s(info.name)
            let perRow = info.elementCount / rows
            return quantised.enumerated().map { Float($0.element) * scales[$0.offset / perRow] }
        default:
            throw TextModelError.badTensor(name: info.name, reason: "has dtype \(info.dtype.rawValue); expected F32, F16, BF16 or I8")
        }
    }
}
