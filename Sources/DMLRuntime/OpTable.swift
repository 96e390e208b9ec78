/// Kinds of op attributes, as named in `ops.json`.
enum AttributeKind: String, Sendable, CaseIterable {
    case int, float, bool, string, pair, ints
}

/// Whether a node must name a tensor for a role.
enum TensorRole: String, Sendable {
    case required, optional
}

/// What one op's builder sees: the node, its input shapes and the file's weights.
struct OpContext {
    let node: NodeSpec
    let inputShapes: [[Int]]
    let weights: ModelWeights
    /// For `conv2d`/`linear`: a BatchNorm reading only this node, to fold into the weights.
    let batchNorm: NodeSpec?

    var attrs: Attributes { Attributes(node: node) }
    /// Shape of the first input (empty for `constant`).
    var shape: [Int] { inputShapes.first ?? [] }

    func shapeError(_ reason: String) -> ModelError { .shapeMismatch(node: node.name, reason: reason) }

    /// The per-sample axis of attribute `key`, a dimension of the batched tensor as PyTorch counts it
    /// (negative from the end; the batch dimension 0 is refused).
    func axis(_ key: String, default fallback: Int? = nil, rank: Int? = nil) throws -> Int {
        let rank = (rank ?? shape.count) + 1
        var dim = try attrs.int(key, default: fallback)
        if dim < 0 { dim += rank }
        guard dim >= 1, dim < rank else {
            throw ModelError.badAttribute(node: node.name, attribute: key, reason: "must name a dimension 1..<\(rank) of the batched input (0 is the batch), got \(try attrs.int(key, default: fallback))")
        }
        return dim - 1
    }
}

/// A built layer, plus the variant with a following BatchNorm folded in (conv2d/linear only).
struct BuiltLayer {
    var layer: any Layer
    var folded: (any Layer)? = nil
}

/// One op of the model format: its inputs, attributes and tensor roles (as `ops.json` declares them)
/// and how it becomes a layer.
struct OpDefinition: Sendable {
    /// Fewest and most inputs (nil: no upper bound).
    let inputs: (min: Int, max: Int?)
    let attributes: [String: AttributeKind]
    let tensors: [String: TensorRole]
    let build: @Sendable (OpContext) throws -> BuiltLayer

    init(inputs: (min: Int, max: Int?) = (1, 1), attributes: [String: AttributeKind] = [:], tensors: [String: TensorRole] = [:],
         build: @escaping @Sendable (OpContext) throws -> BuiltLayer) {
        self.inputs = inputs
        self.attributes = attributes
        self.tensors = tensors
        self.build = build
    }
}

/// The op set of the model format, declared once: `training/dmlkit/export/ops.json` lists the same ops,
/// attributes and tensor roles (a test checks both agree), and `docs/FORMATS.md` documents them.
enum OpTable {
    static let ops: [String: OpDefinition] = {
        var ops: [String: OpDefinition] = [
            "linear": OpDefinition(tensors: ["weight": .required, "bias": .optional], build: buildDense),
            "conv2d": OpDefinition(attributes: ["stride": .pair, "padding": .pair, "dilation": .pair, "groups": .int],
                                   tensors: ["weight": .required, "bias": .optional], build: buildDense),
            "batch_norm": OpDefinition(
                attributes: ["eps": .float],
                tensors: ["weight": .optional, "bias": .optional, "running_mean": .required, "running_var": .required]
            ) { c in
                guard let channels = c.shape.first else { throw c.shapeError("batch_norm needs a channel axis") }
                let (scale, shift) = try batchNormAffine(c.node, channels: channels, weights: c.weights)
                return BuiltLayer(layer: ChannelAffineLayer(scale: scale, shift: shift, outputShape: c.shape))
            },
        ]
        let activations: [String: [String: AttributeKind]] = [
            "relu": [:], "leaky_relu": ["negative_slope": .float], "clamp": ["min": .float, "max": .float],
            "gelu": ["approximate": .string], "silu": [:], "sigmoid": [:], "tanh": [:], "hardswish": [:], "hardsigmoid": [:],
            "dropout": [:], "identity": [:],
        ]
        for (name, attributes) in activations {
            ops[name] = OpDefinition(attributes: attributes) { c in
                BuiltLayer(layer: ActivationLayer(function: try activationFunction(c.node), outputShape: c.shape))
            }
        }
        for operation in [BinaryOperation.add, .sub, .mul, .div] {
            ops[operation.rawValue] = OpDefinition(inputs: (1, 2), attributes: ["scalar": .float]) { c in
                let scalar = try c.attrs.optionalFloat("scalar")
                if c.inputShapes.count == 2 {
                    guard scalar == nil else {
                        throw ModelError.badAttribute(node: c.node.name, attribute: "scalar", reason: "is for the one-input form only")
                    }
                    return BuiltLayer(layer: try BinaryLayer(node: c.node.name, operation: operation, shapes: c.inputShapes))
                }
                guard let scalar else {
                    throw ModelError.badAttribute(node: c.node.name, attribute: "scalar", reason: "is missing (one-input \(operation.rawValue))")
                }
                return BuiltLayer(layer: ScalarLayer(operation: operation, scalar: scalar, outputShape: c.shape))
            }
        }
        ops["constant"] = OpDefinition(inputs: (0, 0), attributes: ["shape": .ints], tensors: ["value": .required]) { c in
            let value = try c.weights.required(c.node, "value")
            let shape = try c.attrs.ints("shape")
            guard !shape.isEmpty, shape.allSatisfy({ $0 >= 1 }), shape.checkedElementCount == value.buffer.count else {
                throw c.shapeError("constant shape \(shape) does not hold the \(value.buffer.count) values of tensor \(value.shape)")
            }
            return BuiltLayer(layer: ConstantLayer(value: value.buffer, outputShape: shape))
        }
        ops["max_pool2d"] = OpDefinition(
            attributes: ["kernel_size": .pair, "stride": .pair, "padding": .pair, "dilation": .pair, "ceil_mode": .bool], build: buildPool)
        ops["avg_pool2d"] = OpDefinition(
            attributes: ["kernel_size": .pair, "stride": .pair, "padding": .pair, "ceil_mode": .bool, "count_include_pad": .bool], build: buildPool)
        for name in ["adaptive_avg_pool2d", "adaptive_max_pool2d"] {
            ops[name] = OpDefinition(attributes: ["output_size": .pair]) { c in
                let size = try c.attrs.pair("output_size")
                let isMax = name == "adaptive_max_pool2d"
                if size == [1, 1], c.shape.count == 3 {
                    return BuiltLayer(layer: try GlobalPoolLayer(node: c.node.name, inputShape: c.shape, isMax: isMax, keepDimensions: true))
                }
                return BuiltLayer(layer: try AdaptivePool2dLayer(node: c.node.name, inputShape: c.shape, outputSize: size, isMax: isMax))
            }
        }
        for name in ["global_avg_pool", "global_max_pool"] {
            ops[name] = OpDefinition(attributes: ["keepdim": .bool]) { c in
                BuiltLayer(layer: try GlobalPoolLayer(node: c.node.name, inputShape: c.shape, isMax: name == "global_max_pool",
                                                      keepDimensions: try c.attrs.bool("keepdim", default: true)))
            }
        }
        ops["mean"] = OpDefinition(attributes: ["dims": .ints, "keepdim": .bool]) { c in
            let dims = try c.attrs.ints("dims")
            var axes = Set<Int>()
            for (i, dim) in dims.enumerated() {
                let rank = c.shape.count + 1
                let d = dim < 0 ? dim + rank : dim
                guard d >= 1, d < rank, axes.insert(d - 1).inserted else {
                    throw ModelError.badAttribute(node: c.node.name, attribute: "dims", reason: "entry \(i) (\(dim)) is the batch, out of range or repeated for input \(c.shape)")
                }
            }
            guard !axes.isEmpty else { throw ModelError.badAttribute(node: c.node.name, attribute: "dims", reason: "is empty") }
            return BuiltLayer(layer: MeanLayer(inputShape: c.shape, axes: axes, keepDimensions: try c.attrs.bool("keepdim", default: false)))
        }
        ops["flatten"] = OpDefinition(attributes: ["start_dim": .int, "end_dim": .int]) { c in
            let start = try c.axis("start_dim", default: 1), end = try c.axis("end_dim", default: -1)
            guard start <= end else {
                throw ModelError.badAttribute(node: c.node.name, attribute: "start_dim", reason: "must not come after end_dim")
            }
            let shape = c.shape
            let merged = shape[start...end].reduce(1, *)
            return BuiltLayer(layer: ReshapeLayer(outputShape: Array(shape[..<start]) + [merged] + Array(shape[(end + 1)...])))
        }
        ops["reshape"] = OpDefinition(attributes: ["shape": .ints]) { c in
            let requested = try c.attrs.ints("shape")
            var target = requested
            let known = target.filter { $0 != -1 }.checkedElementCount ?? 0
            if target.filter({ $0 == -1 }).count == 1, let wildcard = target.firstIndex(of: -1), known > 0 {
                target[wildcard] = c.shape.elementCount / known
            }
            guard !target.isEmpty, target.allSatisfy({ $0 > 0 }), target.checkedElementCount == c.shape.elementCount else {
                throw c.shapeError("cannot reshape \(c.shape) to \(requested)")
            }
            return BuiltLayer(layer: ReshapeLayer(outputShape: target))
        }
        ops["permute"] = OpDefinition(attributes: ["dims": .ints]) { c in
            let dims = try c.attrs.ints("dims")
            let rank = c.shape.count + 1
            let normalised = dims.map { $0 < 0 ? $0 + rank : $0 }
            guard normalised.first == 0 else {
                throw ModelError.badAttribute(node: c.node.name, attribute: "dims", reason: "must keep the batch axis first, got \(dims)")
            }
            return BuiltLayer(layer: try PermuteLayer(node: c.node.name, inputShape: c.shape, order: normalised.dropFirst().map { $0 - 1 }))
        }
        ops["concat"] = OpDefinition(inputs: (1, nil), attributes: ["dim": .int]) { c in
            BuiltLayer(layer: try ConcatLayer(node: c.node.name, shapes: c.inputShapes, axis: try c.axis("dim", default: 1)))
        }
        ops["slice"] = OpDefinition(attributes: ["dim": .int, "start": .int, "end": .int, "step": .int]) { c in
            let axis = try c.axis("dim")
            let size = c.shape[axis]
            let step = try c.attrs.int("step", default: 1)
            guard step >= 1 else { throw ModelError.badAttribute(node: c.node.name, attribute: "step", reason: "must be at least 1") }
            // Python slice rules: negative counts from the end, then both ends clipped to 0...size.
            func clip(_ value: Int) -> Int { min(max(value < 0 ? value + size : value, 0), size) }
            let start = clip(try c.attrs.int("start", default: 0))
            let end = (c.node.attributes["end"] ?? .null) == .null ? size : clip(try c.attrs.int("end"))
            let count = end > start ? (end - start + step - 1) / step : 0
            guard count >= 1 else { throw c.shapeError("slice of dimension \(axis + 1) (size \(size)) is empty") }
            return BuiltLayer(layer: SliceLayer(inputShape: c.shape, axis: axis, start: start, step: step, count: count, removesAxis: false))
        }
        ops["select"] = OpDefinition(attributes: ["dim": .int, "index": .int]) { c in
            let axis = try c.axis("dim")
            let size = c.shape[axis]
            let requested = try c.attrs.int("index")
            let index = requested < 0 ? requested + size : requested
            guard index >= 0, index < size, c.shape.count >= 2 else {
                throw c.shapeError("select index \(requested) is out of range for dimension \(axis + 1) of \(c.shape) (or would leave no axis)")
            }
            return BuiltLayer(layer: SliceLayer(inputShape: c.shape, axis: axis, start: index, step: 1, count: 1, removesAxis: true))
        }
        ops["matmul"] = OpDefinition(inputs: (2, 2)) { c in BuiltLayer(layer: try MatmulLayer(node: c.node.name, shapes: c.inputShapes)) }
        ops["softmax"] = OpDefinition(attributes: ["dim": .int]) { c in
            BuiltLayer(layer: SoftmaxLayer(inputShape: c.shape, axis: try c.axis("dim")))
        }
        ops["layer_norm"] = OpDefinition(attributes: ["normalized_shape": .ints, "eps": .float], tensors: ["weight": .optional, "bias": .optional]) { c in
            let normalized = try c.attrs.ints("normalized_shape")
            guard !normalized.isEmpty, normalized.count <= c.shape.count, Array(c.shape.suffix(normalized.count)) == normalized else {
                throw c.shapeError("layer_norm over \(normalized) does not match input \(c.shape)")
            }
            let weight = try c.weights.optional(c.node, "weight"), bias = try c.weights.optional(c.node, "bias")
            let count = normalized.elementCount
            guard (weight?.buffer.count ?? count) == count, (bias?.buffer.count ?? count) == count else {
                throw c.shapeError("layer_norm weight/bias must hold \(count) values")
            }
            return BuiltLayer(layer: LayerNormLayer(normalizedCount: count, weight: weight?.buffer, bias: bias?.buffer,
                                                    epsilon: try c.attrs.float("eps", default: 1e-5), outputShape: c.shape))
        }
        ops["channel_layer_norm"] = OpDefinition(attributes: ["eps": .float], tensors: ["weight": .optional, "bias": .optional]) { c in
            guard c.shape.count >= 2 else { throw c.shapeError("channel_layer_norm needs input [C, H, W], got \(c.shape)") }
            let channels = c.shape[0]
            let weight = try c.weights.optional(c.node, "weight"), bias = try c.weights.optional(c.node, "bias")
            guard (weight?.buffer.count ?? channels) == channels, (bias?.buffer.count ?? channels) == channels else {
                throw c.shapeError("channel_layer_norm weight/bias must hold \(channels) values")
            }
            return BuiltLayer(layer: ChannelLayerNormLayer(
                channels: channels, plane: c.shape.elementCount / channels, weight: weight?.buffer, bias: bias?.buffer,
                epsilon: try c.attrs.float("eps", default: 1e-6), outputShape: c.shape))
        }
        ops["self_attention"] = OpDefinition(
            attributes: ["num_heads": .int],
            tensors: ["in_weight": .required, "in_bias": .optional, "out_weight": .required, "out_bias": .optional]
        ) { c in
            let w = c.weights
            // Packed at init: the file pages of the projections go (as for linear layers in `buildDense`).
            defer { w.file.releaseResidentPages(of: c.node.tensors.values) }
            return BuiltLayer(layer: try SelfAttentionLayer(
                node: c.node.name, inputShape: c.shape, heads: try c.attrs.int("num_heads"),
                inWeight: try w.required(c.node, "in_weight"), inBias: try w.optional(c.node, "in_bias")?.buffer,
                outWeight: try w.required(c.node, "out_weight"), outBias: try w.optional(c.node, "out_bias")?.buffer))
        }
        ops["l2_normalize"] = OpDefinition(attributes: ["dim": .int, "eps": .float]) { c in
            guard try c.axis("dim", default: 1) == 0 else {
                throw ModelError.badAttribute(node: c.node.name, attribute: "dim", reason: "only dimension 1 is supported")
            }
            return BuiltLayer(layer: L2NormalizeLayer(epsilon: try c.attrs.float("eps", default: 1e-12), outputShape: c.shape))
        }
        return ops
    }()

    /// The activation an activation op computes (nil for other ops): also used to fuse it into a conv/linear.
    static func activation(of node: NodeSpec) throws -> ActivationLayer.Function? {
        switch node.op {
        case "relu", "leaky_relu", "clamp", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid":
            return try activationFunction(node)
        default:
            return nil
        }
    }
}

private func activationFunction(_ node: NodeSpec) throws -> ActivationLayer.Function {
    let attrs = Attributes(node: node)
    switch node.op {
    case "relu": return .relu
    case "leaky_relu": return .leakyRelu(try attrs.float("negative_slope", default: 0.01))
    case "clamp":
        let low = try attrs.optionalFloat("min") ?? -.infinity, high = try attrs.optionalFloat("max") ?? .infinity
        guard !low.isNaN, !high.isNaN, low <= high else {
            throw ModelError.badAttribute(node: node.name, attribute: "min", reason: "must not exceed max (\(low) > \(high))")
        }
        return low == 0 && high == .infinity ? .relu : .clamp(low: low, high: high)
    case "gelu":
        let approximate = try attrs.string("approximate", default: "none")
        guard approximate == "none" || approximate == "tanh" else {
            throw ModelError.badAttribute(node: node.name, attribute: "approximate", reason: "must be 'none' or 'tanh', got '\(approximate)'")
        }
        return approximate == "tanh" ? .geluTanh : .geluErf
    case "silu": return .silu
    case "sigmoid": return .sigmoid
    case "tanh": return .tanh
    case "hardswish": return .hardswish
    case "hardsigmoid": return .hardsigmoid
    default: return .identity  // dropout, identity
    }
}

/// `conv2d` and `linear`, with the folded variant when a BatchNorm follows.
@Sendable private func buildDense(_ c: OpContext) throws -> BuiltLayer {
    let node = c.node, attrs = c.attrs
    let weight = try c.weights.required(node, "weight")
    let bias = try c.weights.optional(node, "bias")
    // Packing at load reads the weights once more: their file pages are released after it (for convs when oneDNN
    // packed them, see ConvWeights; a linear layer packs in its init). Pages a later use reads come back from the
    // read-only mapping: load never holds every layer's file pages next to the packed copies.
    let file = c.weights.file, tensors = node.tensors.values.flatMap { [$0, $0 + ".scale"] }
    let releasePages = { file.releaseResidentPages(of: tensors) }
    defer { if node.op == "linear" { releasePages() } }
    func conv(_ w: ConvWeights, _ b: FloatBuffer?) throws -> Conv2dLayer {
        try Conv2dLayer(
            node: node.name, inputShape: c.shape, weights: w, weightShape: weight.shape, bias: b,
            stride: try attrs.pair("stride", default: 1), padding: try attrs.pair("padding", default: 0),
            dilation: try attrs.pair("dilation", default: 1), groups: try attrs.int("groups", default: 1))
    }
    let plain: any Layer = node.op == "linear"
        ? try LinearLayer(node: node.name, inputShape: c.shape, weight: weight.buffer, weightShape: weight.shape, bias: bias?.buffer)
        : try conv(ConvWeights(weight.buffer, releasePages: releasePages), bias?.buffer)
    // Fold only when the BatchNorm's channel axis is the conv/linear's output channel axis.
    guard let batchNorm = c.batchNorm, plain.outputShape.count == (node.op == "linear" ? 1 : 3) else { return BuiltLayer(layer: plain) }
    let (scale, shift) = try batchNormAffine(batchNorm, channels: weight.shape[0], weights: c.weights)
    let foldedBias = FloatBuffer(count: weight.shape[0]) { out in
        for o in 0..<weight.shape[0] { out[o] = (bias?.buffer[o] ?? 0) * scale[o] + shift[o] }
    }
    if node.op == "conv2d" {
        // Folded when first needed (oneDNN packs it at load, then the copy goes): see ConvWeights.
        let folding = ConvWeights(folding: weight.buffer, scale: scale, releasePages: releasePages)
        return BuiltLayer(layer: plain, folded: try conv(folding, foldedBias))
    }
    let perRow = weight.buffer.count / weight.shape[0]
    let foldedWeight = FloatBuffer(count: weight.buffer.count) { out in
        for i in 0..<weight.buffer.count { out[i] = weight.buffer[i] * scale[i / perRow] }
    }
    return BuiltLayer(layer: plain, folded: try LinearLayer(
        node: node.name, inputShape: c.shape, weight: foldedWeight, weightShape: weight.shape, bias: foldedBias))
}

/// `max_pool2d` and `avg_pool2d`.
@Sendable private func buildPool(_ c: OpContext) throws -> BuiltLayer {
    let attrs = c.attrs, isMax = c.node.op == "max_pool2d"
    let kernel = try attrs.pair("kernel_size")
    let kind: Pool2dLayer.Kind = isMax ? .max : .average(countIncludePad: try attrs.bool("count_include_pad", default: true))
    let layer = try Pool2dLayer(
        node: c.node.name, kind: kind, inputShape: c.shape, kernel: kernel,
        stride: (c.node.attributes["stride"] ?? .null) == .null ? kernel : try attrs.pair("stride"),
        padding: try attrs.pair("padding", default: 0),
        dilation: isMax ? try attrs.pair("dilation", default: 1) : [1, 1],
        ceilMode: try attrs.bool("ceil_mode", default: false))
    return BuiltLayer(layer: layer)
}

/// Inference BatchNorm as `y = x * scale + shift` per channel.
func batchNormAffine(_ node: NodeSpec, channels: Int, weights: ModelWeights) throws -> (scale: [Float], shift: [Float]) {
    let mean = try weights.required(node, "running_mean").buffer
    let variance = try weights.required(node, "running_var").buffer
    let gamma = try weights.optional(node, "weight")?.buffer
    let beta = try weights.optional(node, "bias")?.buffer
    let epsilon = try Attributes(node: node).float("eps", default: 1e-5)
    guard mean.count == channels, variance.count == channels, (gamma?.count ?? channels) == channels, (beta?.count ?? channels) == channels else {
        throw ModelError.shapeMismatch(node: node.name, reason: "batch_norm parameters must hold \(channels) values (one per channel)")
    }
    var scale = [Float](repeating: 0, count: channels), shift = [Float](repeating: 0, count: channels)
    for c in 0..<channels {
        scale[c] = (gamma?[c] ?? 1) / (variance[c] + epsilon).squareRoot()
        shift[c] = (beta?[c] ?? 0) - mean[c] * scale[c]
    }
    return (scale, shift)
}
