import Foundation

/// The encoder's shape, read from a Hugging Face `config.json`. Only what this encoder implements is accepted:
/// a BERT model with absolute position embeddings and exact (erf) GELU.
public struct BertConfiguration: Sendable, Equatable {
    /// Rows of the word-embedding table (`vocab_size`).
    public var vocabularySize: Int
    /// Width of every token vector and of the sentence embedding (`hidden_size`).
    public var hiddenSize: Int
    /// Encoder layers (`num_hidden_layers`).
    public var layerCount: Int
    /// Attention heads per layer (`num_attention_heads`); must divide `hiddenSize`.
    public var headCount: Int
    /// Width of the feed-forward block (`intermediate_size`).
    public var intermediateSize: Int
    /// Rows of the position-embedding table: the longest sequence the model takes (`max_position_embeddings`).
    public var maxPositions: Int
    /// Rows of the token-type table (`type_vocab_size`); single sentences use type 0.
    public var typeVocabularySize: Int
    /// LayerNorm epsilon (`layer_norm_eps`).
    public var layerNormEpsilon: Float

    /// Size of one attention head.
    public var headSize: Int { hiddenSize / headCount }

    /// A configuration from its parts (checked like one read from a file).
    public init(vocabularySize: Int, hiddenSize: Int, layerCount: Int, headCount: Int, intermediateSize: Int,
                maxPositions: Int, typeVocabularySize: Int = 2, layerNormEpsilon: Float = 1e-12) throws {
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.intermediateSize = intermediateSize
        self.maxPositions = maxPositions
        self.typeVocabularySize = typeVocabularySize
        self.layerNormEpsilon = layerNormEpsilon
        try validate(file: "config.json")
    }

    /// Reads `config.json` from a model directory.
    public init(directory: URL) throws {
        guard let file = try JSONFile.load("config.json", in: directory, required: true) else { throw TextModelError.missingFile("config.json") }
        func required(_ key: String) throws -> Int {
            guard let value = try file.int(key) else { throw TextModelError.invalidConfig(file: file.name, key: key, reason: "is missing") }
            return value
        }
        if let type = try file.string("model_type"), type != "bert" {
            throw TextModelError.unsupportedConfig(file: file.name, key: "model_type", value: type)
        }
        if let act = try file.string("hidden_act"), act != "gelu" {
            throw TextModelError.unsupportedConfig(file: file.name, key: "hidden_act", value: act)
        }
        if let position = try file.string("position_embedding_type"), position != "absolute" {
            throw TextModelError.unsupportedConfig(file: file.name, key: "position_embedding_type", value: position)
        }
        vocabularySize = try required("vocab_size")
        hiddenSize = try required("hidden_size")
        layerCount = try required("num_hidden_layers")
        headCount = try required("num_attention_heads")
        intermediateSize = try required("intermediate_size")
        maxPositions = try required("max_position_embeddings")
        typeVocabularySize = try file.int("type_vocab_size") ?? 2
        layerNormEpsilon = Float(try file.double("layer_norm_eps") ?? 1e-12)
        try validate(file: file.name)
    }

    private func validate(file: String) throws {
        for (key, value) in [("vocab_size", vocabularySize), ("hidden_size", hiddenSize), ("num_hidden_layers", layerCount),
                             ("num_attention_heads", headCount), ("intermediate_size", intermediateSize),
                             ("max_position_embeddings", maxPositions), ("type_vocab_size", typeVocabularySize)]
        where value < 1 || value > 1 << 20 {
            throw TextModelError.invalidConfig(file: file, key: key, reason: "must be between 1 and 2^20, got \(value)")
        }
        guard hiddenSize % headCount == 0 else {
            throw TextModelError.invalidConfig(file: file, key: "num_attention_heads", reason: "must divide hidden_size \(hiddenSize), got \(headCount)")
        }
        guard layerNormEpsilon.isFinite, layerNormEpsilon >= 0 else {
            throw TextModelError.invalidConfig(file: file, key: "layer_norm_eps", reason: "must be a non-negative number")
        }
    }
}
