/// One node of the layer graph: an op applied to earlier values, with attributes and named weight tensors.
public struct NodeSpec: Sendable, Equatable {
    /// Unique name; later nodes and `outputs` refer to it.
    public var name: String
    /// Op name, e.g. `conv2d`, `linear`, `relu` (the op set: `docs/FORMATS.md`, `ops.json`).
    public var op: String
    /// Names of the values read, in order (`"input"` is the model input).
    public var inputs: [String]
    /// Op attributes (stride, padding, eps, ...).
    public var attributes: [String: JSONValue]
    /// Weight roles (`weight`, `bias`, `running_mean`, ...) mapped to tensor names in the file.
    public var tensors: [String: String]
}

/// How raw 8-bit pixels become the model's input tensor: resize (bilinear) to `height` x `width`,
/// reorder channels, then `(pixel * scale - mean[c]) / std[c]`, laid out channel-first.
public struct ImagePreprocessing: Sendable, Equatable {
    /// Channel order the model expects.
    public enum ChannelOrder: String, Sendable { case rgb, bgr, gray }
    /// Model input height in pixels.
    public var height: Int
    /// Model input width in pixels.
    public var width: Int
    /// Channel order the model was trained on.
    public var channelOrder: ChannelOrder
    /// Factor applied to 8-bit values first (usually 1/255).
    public var scale: Float
    /// Per-channel mean subtracted after scaling.
    public var mean: [Float]
    /// Per-channel standard deviation divided by last.
    public var std: [Float]
    /// Number of channels the model takes (3 for rgb/bgr, 1 for gray).
    public var channels: Int { channelOrder == .gray ? 1 : 3 }
}

/// How one input sample is laid out (`input.layout` in the architecture); the input shape's rank must fit.
public enum InputLayout: String, Sendable, CaseIterable {
    /// An image or feature map `[C, H, W]`.
    case nchw = "NCHW"
    /// A token sequence `[T, D]`.
    case ntd = "NTD"
    /// A feature vector `[C]`.
    case nc = "NC"

    /// Per-sample rank of the layout (the batch axis N not counted).
    public var rank: Int {
        switch self {
        case .nchw: return 3
        case .ntd: return 2
        case .nc: return 1
        }
    }
}

/// The model description stored in the safetensors `__metadata__`:
/// `dml.format_version`, `dml.architecture` (JSON) and `dml.fingerprint`.
public struct ModelSpec: Sendable {
    /// The format version this runtime reads.
    public static let supportedFormatVersion = 1

    /// `dml.format_version` of the file.
    public var formatVersion: Int
    /// Shape of one input sample (without the batch dimension), e.g. `[3, 224, 224]` or `[128]`.
    public var inputShape: [Int]
    /// `input.layout`, or nil in files written before layouts were declared.
    public var inputLayout: InputLayout?
    /// Pixel preprocessing, when the model takes images.
    public var preprocessing: ImagePreprocessing?
    /// Nodes in execution order.
    public var nodes: [NodeSpec]
    /// Values concatenated (per sample, flattened) into the embedding.
    public var outputs: [String]
    /// Whether the embedding is L2-normalised by the runtime.
    public var normalize: Bool
    /// `dml.fingerprint` as written by the exporter (hash of weights + architecture), if present.
    public var fingerprint: String?
    /// The raw architecture JSON.
    public var architectureJSON: String

    /// Reads and checks the spec from a file's metadata.
    public init(metadata: [String: String]) throws {
        guard let version = metadata["dml.format_version"] else { throw ModelError.missingMetadata("dml.format_version") }
        guard let number = Int(version), number == Self.supportedFormatVersion else { throw ModelError.unsupportedFormatVersion(version) }
        guard let architecture = metadata["dml.architecture"] else { throw ModelError.missingMetadata("dml.architecture") }
        try self.init(architectureJSON: architecture, formatVersion: number, fingerprint: metadata["dml.fingerprint"])
    }

    /// Parses an architecture JSON document.
    public init(architectureJSON: String, formatVersion: Int = ModelSpec.supportedFormatVersion, fingerprint: String? = nil) throws {
        self.formatVersion = formatVersion
        self.fingerprint = fingerprint
        self.architectureJSON = architectureJSON
        let root: [String: JSONValue]
        do {
            guard let object = try JSONValue.parse(architectureJSON).objectValue else {
                throw ModelError.invalidArchitecture("not a JSON object")
            }
            root = object
        } catch let error as ModelError {
            throw error
        } catch {
            throw ModelError.invalidArchitecture("not valid JSON")
        }
        guard let input = root["input"]?.objectValue, let shapeValues = input["shape"]?.arrayValue else {
            throw ModelError.invalidArchitecture("missing input.shape")
        }
        inputShape = try shapeValues.map {
            guard let dim = $0.intValue, dim > 0, dim < 1 << 24 else { throw ModelError.invalidArchitecture("input.shape holds a non-positive or huge value") }
            return dim
        }
        guard !inputShape.isEmpty else { throw ModelError.invalidArchitecture("input.shape is empty") }
        guard let elements = inputShape.checkedElementCount, elements <= RuntimeLimits.maxValueElements else {
            throw ModelError.invalidArchitecture("input.shape \(inputShape) is too large")
        }
        if let layout = input["layout"], layout != .null {
            guard let name = layout.stringValue, let known = InputLayout(rawValue: name) else {
                throw ModelError.invalidLayout("must be one of \(InputLayout.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard known.rank == inputShape.count else {
                throw ModelError.invalidLayout("\(name) needs a \(known.rank)-D input shape, got \(inputShape)")
            }
            inputLayout = known
        }
        guard let nodeValues = root["nodes"]?.arrayValue else { throw ModelError.invalidArchitecture("missing nodes") }
        nodes = try nodeValues.enumerated().map { try Self.parseNode($0.element, index: $0.offset) }
        guard let outputValues = root["outputs"]?.arrayValue, !outputValues.isEmpty else {
            throw ModelError.invalidArchitecture("missing outputs")
        }
        outputs = try outputValues.map {
            guard let name = $0.stringValue else { throw ModelError.invalidArchitecture("outputs must be node names") }
            return name
        }
        normalize = root["normalize"]?.boolValue ?? true
        if let pre = root["preprocessing"], pre != .null {
            preprocessing = try Self.parsePreprocessing(pre, inputShape: inputShape)
        }
    }

    /// The factor applied to raw float inputs by a leading `mul` node named `input_scale` that reads the
    /// input (how the exporter records a training loader's scaling, e.g. 1/16), or nil.
    public var inputScale: Float? {
        guard let node = nodes.first(where: { $0.name == "input_scale" }), node.op == "mul", node.inputs == ["input"],
              let scale = node.attributes["scalar"]?.doubleValue
        else { return nil }
        return Float(scale)
    }

    private static func parseNode(_ value: JSONValue, index: Int) throws -> NodeSpec {
        guard let object = value.objectValue else { throw ModelError.invalidArchitecture("node \(index) is not an object") }
        guard let name = object["name"]?.stringValue, !name.isEmpty else { throw ModelError.invalidArchitecture("node \(index) has no name") }
        guard let op = object["op"]?.stringValue else { throw ModelError.invalidArchitecture("node '\(name)' has no op") }
        let inputs = try (object["inputs"]?.arrayValue ?? []).map {
            guard let input = $0.stringValue else { throw ModelError.invalidArchitecture("node '\(name)' has a non-string input") }
            return input
        }
        var tensors: [String: String] = [:]
        for (role, tensor) in object["tensors"]?.objectValue ?? [:] {
            guard let tensorName = tensor.stringValue else { throw ModelError.invalidArchitecture("node '\(name)' tensor '\(role)' is not a name") }
            tensors[role] = tensorName
        }
        return NodeSpec(name: name, op: op, inputs: inputs, attributes: object["attrs"]?.objectValue ?? [:], tensors: tensors)
    }

    private static func parsePreprocessing(_ value: JSONValue, inputShape: [Int]) throws -> ImagePreprocessing {
        func fail(_ reason: String) -> ModelError { .invalidArchitecture("preprocessing: \(reason)") }
        guard let object = value.objectValue else { throw fail("not an object") }
        guard inputShape.count == 3 else { throw fail("image preprocessing needs an input shape [C, H, W] (layout NCHW)") }
        let orderName = object["channel_order"]?.stringValue ?? "rgb"
        guard let order = ImagePreprocessing.ChannelOrder(rawValue: orderName) else { throw fail("unknown channel_order '\(orderName)'") }
        func floats(_ key: String, default fallback: Float) throws -> [Float] {
            guard let values = object[key] else { return Array(repeating: fallback, count: order == .gray ? 1 : 3) }
            if let number = values.doubleValue { return Array(repeating: Float(number), count: order == .gray ? 1 : 3) }
            guard let array = values.arrayValue else { throw fail("\(key) must be a number or a list") }
            return try array.map {
                guard let number = $0.doubleValue else { throw fail("\(key) holds a non-number") }
                return Float(number)
            }
        }
        let pre = ImagePreprocessing(
            height: inputShape[1], width: inputShape[2], channelOrder: order,
            scale: Float(object["scale"]?.doubleValue ?? 1.0 / 255.0),
            mean: try floats("mean", default: 0), std: try floats("std", default: 1))
        guard pre.channels == inputShape[0] else { throw fail("channel_order \(orderName) gives \(pre.channels) channels, input has \(inputShape[0])") }
        guard pre.mean.count == pre.channels, pre.std.count == pre.channels else { throw fail("mean/std need one value per channel") }
        guard pre.std.allSatisfy({ $0 != 0 && $0.isFinite }) else { throw fail("std must be finite and non-zero") }
        return pre
    }
}
