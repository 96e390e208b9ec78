/// Problems loading a text model directory or tokenising its input. Each message names the file, key or tensor.
public enum TextModelError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The model directory does not exist (or is not a directory).
    case notADirectory(String)
    /// A file the model needs is not in the directory.
    case missingFile(String)
    /// A file exists but cannot be read or parsed.
    case unreadableFile(path: String, reason: String)
    /// A configuration value is missing or malformed.
    case invalidConfig(file: String, key: String, reason: String)
    /// A configuration value is valid but this encoder does not implement it.
    case unsupportedConfig(file: String, key: String, value: String)
    /// `vocab.txt` lacks a token the tokenizer needs, or is malformed.
    case invalidVocabulary(String)
    /// A weight tensor is absent, or its shape or dtype does not fit the configuration.
    case badTensor(name: String, reason: String)

    /// Token-id input (the `Embedder` path) holds a value that is not a token id of this vocabulary.
    case invalidTokenID(index: Int, value: Float)

    public var description: String {
        switch self {
        case let .notADirectory(path): return "no text model directory at \(path)"
        case let .missingFile(path): return "text model is missing \(path)"
        case let .unreadableFile(path, reason): return "cannot read \(path): \(reason)"
        case let .invalidConfig(file, key, reason): return "\(file): '\(key)' \(reason)"
        case let .unsupportedConfig(file, key, value): return "\(file): unsupported \(key) = \(value)"
        case let .invalidVocabulary(reason): return "vocab.txt: \(reason)"
        case let .badTensor(name, reason): return "model.safetensors: tensor '\(name)' \(reason)"
        case let .invalidTokenID(index, value): return "input value \(index) (\(value)) is not a token id of the vocabulary"
        }
    }
}
