/// Problems found while reading a `.safetensors` file. Each message names what was wrong and where.
public enum SafetensorsError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file could not be opened or mapped.
    case io(path: String, reason: String)
    /// The file is shorter than the 8-byte header length prefix.
    case truncated(fileSize: Int)
    /// The header length prefix points past the end of the file (or is absurdly large).
    case headerLengthBeyondFile(headerLength: UInt64, fileSize: Int)
    /// The JSON header could not be parsed, or is not an object of the expected form.
    case invalidHeader(String)
    /// One tensor's entry is inconsistent (dtype, shape, offsets or byte count).
    case invalidTensor(name: String, reason: String)
    /// A tensor's data range reaches outside the data section.
    case offsetsOutOfRange(name: String, end: Int, dataSize: Int)
    /// Two tensors claim overlapping bytes.
    case overlappingTensors(String, String)
    /// No tensor of that name is in the file.
    case missingTensor(String)

    /// One line naming the problem.
    public var description: String {
        switch self {
        case let .io(path, reason): return "cannot read \(path): \(reason)"
        case let .truncated(size): return "truncated safetensors file: \(size) bytes, need at least 8 for the header length"
        case let .headerLengthBeyondFile(length, size):
            return "safetensors header length \(length) reaches beyond the end of the file (\(size) bytes)"
        case let .invalidHeader(reason): return "invalid safetensors header: \(reason)"
        case let .invalidTensor(name, reason): return "invalid tensor '\(name)': \(reason)"
        case let .offsetsOutOfRange(name, end, dataSize):
            return "tensor '\(name)' data ends at byte \(end), beyond the data section (\(dataSize) bytes)"
        case let .overlappingTensors(a, b): return "tensors '\(a)' and '\(b)' have overlapping data offsets"
        case let .missingTensor(name): return "no tensor named '\(name)' in the model file"
        }
    }
}

/// Problems with a model's description or weights, found when the model is loaded.
public enum ModelError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A required `__metadata__` key is absent.
    case missingMetadata(String)
    /// `dml.format_version` names a version this runtime cannot read.
    case unsupportedFormatVersion(String)
    /// The architecture JSON is malformed.
    case invalidArchitecture(String)
    /// A node names an op this runtime does not implement.
    case unknownOp(node: String, op: String)
    /// A node attribute is missing or has the wrong type or value.
    case badAttribute(node: String, attribute: String, reason: String)
    /// A node reads a value no earlier node produced.
    case unknownInput(node: String, input: String)
    /// A weight tensor has a dtype the op cannot take.
    case unsupportedDType(node: String, tensor: String, dtype: String)
    /// Shapes do not fit together (weights against inputs, or inputs against each other).
    case shapeMismatch(node: String, reason: String)
    /// A weight tensor holds NaN or infinity (after dequantisation).
    case nonFiniteWeight(node: String, tensor: String, index: Int)
    /// The file's `dml.fingerprint` is not the hash of its contents: it changed after export.
    case fingerprintMismatch(stored: String, computed: String)
    /// `input.layout` does not fit `input.shape`, or names no known layout.
    case invalidLayout(String)

    /// One line naming the problem.
    public var description: String {
        switch self {
        case let .missingMetadata(key): return "model file has no '\(key)' in __metadata__"
        case let .unsupportedFormatVersion(v): return "unsupported dml.format_version '\(v)' (this runtime reads version \(ModelSpec.supportedFormatVersion))"
        case let .invalidArchitecture(reason): return "invalid dml.architecture: \(reason)"
        case let .unknownOp(node, op): return "unknown op '\(op)' in node '\(node)'"
        case let .badAttribute(node, attribute, reason): return "node '\(node)': attribute '\(attribute)' \(reason)"
        case let .unknownInput(node, input): return "node '\(node)' reads '\(input)', which no earlier node produces"
        case let .unsupportedDType(node, tensor, dtype): return "node '\(node)' cannot take dtype \(dtype) for tensor '\(tensor)'"
        case let .shapeMismatch(node, reason): return "node '\(node)': \(reason)"
        case let .nonFiniteWeight(node, tensor, index):
            return "node '\(node)': weight tensor '\(tensor)' holds NaN or infinity (element \(index))"
        case let .fingerprintMismatch(stored, computed):
            return "model file changed after export: dml.fingerprint is \(stored) but the contents hash to \(computed) (load with the fingerprint check off to use it anyway)"
        case let .invalidLayout(reason): return "invalid dml.architecture: input.layout \(reason)"
        }
    }
}

/// Problems with the input handed to a loaded model.
public enum InferenceError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The input buffer does not hold `batch` samples of the model's input shape.
    case inputSizeMismatch(expected: Int, got: Int, shape: [Int])
    /// The input holds NaN or infinity; the runtime refuses it rather than propagate it into an index.
    case nonFiniteInput(index: Int)
    /// The output buffer is too small for the batch.
    case outputTooSmall(expected: Int, got: Int)
    /// Pixels were handed to a model without image preprocessing, or in a form it cannot take.
    case preprocessing(String)

    /// One line naming the problem.
    public var description: String {
        switch self {
        case let .inputSizeMismatch(expected, got, shape):
            return "input has \(got) values, expected \(expected) (whole samples of shape \(shape))"
        case let .nonFiniteInput(index): return "input value \(index) is NaN or infinite"
        case let .outputTooSmall(expected, got): return "output buffer holds \(got) values, need \(expected)"
        case let .preprocessing(reason): return "cannot preprocess pixels: \(reason)"
        }
    }
}
