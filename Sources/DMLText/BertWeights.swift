import DMLRuntime

/// One encoder layer's parameters. Query, key and value are fused into one `[3H, H]` layer so a single GEMM
/// computes all three; the intermediate layer fuses its GELU.
struct BertLayerWeights: Sendable {
    var qkv: DenseLayer
    var attentionOutput: DenseLayer
    var attentionNormWeight: [Float], attentionNormBias: [Float]
    var intermediate: DenseLayer
    var output: DenseLayer
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
                qkv: DenseLayer(weight: qkv, bias: try tensor(p + "attention.self.query.bias", [h]) + tensor(p + "attention.self.key.bias", [h])
                    + tensor(p + "attention.self.value.bias", [h]), inFeatures: h, outFeatures: 3 * h),
                attentionOutput: DenseLayer(weight: try tensor(p + "attention.output.dense.weight", [h, h], round: true),
                                            bias: try tensor(p + "attention.output.dense.bias", [h]), inFeatures: h, outFeatures: h),
                attentionNormWeight: try tensor(p + "attention.output.LayerNorm.weight", [h]),
                attentionNormBias: try tensor(p + "attention.output.LayerNorm.bias", [h]),
                intermediate: DenseLayer(weight: try tensor(p + "intermediate.dense.weight", [i, h], round: true),
                                         bias: try tensor(p + "intermediate.dense.bias", [i]), inFeatures: h, outFeatures: i, gelu: true),
                output: DenseLayer(weight: try tensor(p + "output.dense.weight", [h, i], round: true),
                                   bias: try tensor(p + "output.dense.bias", [h]), inFeatures: i, outFeatures: h),
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
            return dequantisedRows(quantised, scales: scales, rows: rows).array
        default:
            throw TextModelError.badTensor(name: info.name, reason: "has dtype \(info.dtype.rawValue); expected F32, F16, BF16 or I8")
        }
    }
}
