/// A model lowered to layers: values are numbered (0 is the input), each step reads values and writes one.
struct CompiledGraph: Sendable {
    struct Step: Sendable {
        let name: String
        let op: String
        let layer: any Layer
        let inputs: [Int]
        let output: Int
    }

    let steps: [Step]
    /// Per-sample shape of each value.
    let valueShapes: [[Int]]
    /// Values concatenated into the embedding.
    let outputs: [Int]
    /// BatchNorm nodes folded into the conv/linear before them at load.
    let foldedBatchNorms: [String]
}

/// Turns a `ModelSpec` and its weights into layers, checking every shape, and folds inference-mode
/// BatchNorm into a directly preceding conv/linear whose output nothing else reads.
struct GraphBuilder {
    /// Ops this runtime implements.
    static let supportedOps: Set<String> = [
        "linear", "conv2d", "batch_norm", "relu", "leaky_relu", "gelu", "silu", "sigmoid", "tanh", "dropout", "identity",
        "max_pool2d", "avg_pool2d", "global_avg_pool", "global_max_pool", "flatten", "reshape", "add", "concat",
        "layer_norm", "l2_normalize",
    ]

    let spec: ModelSpec
    let weights: ModelWeights

    func build() throws -> CompiledGraph {
        // Unknown ops are reported before any weight is touched.
        for node in spec.nodes where !Self.supportedOps.contains(node.op) {
            throw ModelError.unknownOp(node: node.name, op: node.op)
        }
        var readers: [String: Int] = [:]
        for node in spec.nodes { for input in node.inputs { readers[input, default: 0] += 1 } }
        for output in spec.outputs { readers[output, default: 0] += 1 }

        var valueOf: [String: Int] = ["input": 0]
        var shapes: [[Int]] = [spec.inputShape]
        var steps: [CompiledGraph.Step] = []
        var folded: [String: NodeSpec] = [:]  // batch_norm/relu name -> the conv/linear it is folded or fused into
        var foldedNames: [String] = []

        for node in spec.nodes {
            guard valueOf[node.name] == nil else { throw ModelError.invalidArchitecture("node name '\(node.name)' is used twice") }
            if let target = folded[node.name] {
                valueOf[node.name] = valueOf[target.name]
                continue
            }
            let inputs = try node.inputs.map {
                guard let value = valueOf[$0] else { throw ModelError.unknownInput(node: node.name, input: $0) }
                return value
            }
            let inputShapes = inputs.map { shapes[$0] }
            var batchNorm: NodeSpec?
            if node.op == "conv2d" || node.op == "linear",
               let next = spec.nodes.first(where: { $0.op == "batch_norm" && $0.inputs == [node.name] }),
               readers[node.name] == 1
            {
                batchNorm = next
            }
            let built = try makeLayer(node, inputShapes: inputShapes, foldingInto: batchNorm)
            var layer = built.layer
            var produced = node.name  // the value this layer's output stands for after folding/fusion
            if let bn = batchNorm, let foldedLayer = built.folded {
                folded[bn.name] = node
                foldedNames.append(bn.name)
                layer = foldedLayer
                produced = bn.name
            }
            // A ReLU that is the only reader of a conv/linear output runs in that layer's epilogue.
            var op = node.op
            if readers[produced] == 1, let relu = spec.nodes.first(where: { $0.op == "relu" && $0.inputs == [produced] }) {
                if var conv = layer as? Conv2dLayer {
                    conv.fusedReLU = true
                    layer = conv
                    folded[relu.name] = node
                    op += "+relu"
                } else if var linear = layer as? LinearLayer {
                    linear.fusedReLU = true
                    layer = linear
                    folded[relu.name] = node
                    op += "+relu"
                }
            }
            guard layer.outputShape.allSatisfy({ $0 >= 1 }), let size = layer.outputShape.checkedElementCount,
                  size <= RuntimeLimits.maxValueElements
            else {
                throw ModelError.shapeMismatch(node: node.name, reason: "output shape \(layer.outputShape) is empty or too large")
            }
            steps.append(.init(name: node.name, op: op, layer: layer, inputs: inputs, output: shapes.count))
            valueOf[node.name] = shapes.count
            shapes.append(layer.outputShape)
        }
        let outputs = try spec.outputs.map {
            guard let value = valueOf[$0] else { throw ModelError.unknownInput(node: "outputs", input: $0) }
            return value
        }
        return CompiledGraph(steps: steps, valueShapes: shapes, outputs: outputs, foldedBatchNorms: foldedNames)
    }

    // MARK: - Layers

    /// Builds the layer; for conv/linear with a foldable BatchNorm after it, also the folded variant.
    private func makeLayer(_ node: NodeSpec, inputShapes: [[Int]], foldingInto batchNorm: NodeSpec?) throws
        -> (layer: any Layer, folded: (any Layer)?)
    {
        let attrs = Attributes(node: node)
        func arity(_ count: Int) throws {
            guard inputShapes.count == count else {
                throw ModelError.shapeMismatch(node: node.name, reason: "\(node.op) takes \(count) input(s), got \(inputShapes.count)")
            }
        }
        if node.op != "add", node.op != "concat" { try arity(1) }
        let shape = inputShapes.first ?? []

        switch node.op {
        case "linear", "conv2d":
            let weight = try weights.required(node, "weight")
            let bias = try weights.optional(node, "bias")
            func make(_ w: FloatBuffer, _ b: FloatBuffer?) throws -> any Layer {
                if node.op == "linear" {
                    return try LinearLayer(node: node.name, inputShape: shape, weight: w, weightShape: weight.shape, bias: b)
                }
                return try Conv2dLayer(
                    node: node.name, inputShape: shape, weight: w, weightShape: weight.shape, bias: b,
                    stride: try attrs.pair("stride", default: 1), padding: try attrs.pair("padding", default: 0),
                    dilation: try attrs.pair("dilation", default: 1), groups: try attrs.int("groups", default: 1))
            }
            let plain = try make(weight.buffer, bias?.buffer)
            // Fold only when the BatchNorm's channel axis is the conv/linear's output channel axis.
            guard let batchNorm, plain.outputShape.count == (node.op == "linear" ? 1 : 3) else { return (plain, nil) }
            let (scale, shift) = try batchNormAffine(batchNorm, channels: weight.shape[0])
            let perRow = weight.buffer.count / weight.shape[0]
            let foldedWeight = FloatBuffer(count: weight.buffer.count) { out in
                for i in 0..<weight.buffer.count { out[i] = weight.buffer[i] * scale[i / perRow] }
            }
            let foldedBias = FloatBuffer(count: weight.shape[0]) { out in
                for o in 0..<weight.shape[0] { out[o] = (bias?.buffer[o] ?? 0) * scale[o] + shift[o] }
            }
            return (plain, try make(foldedWeight, foldedBias))

        case "batch_norm":
            guard let channels = shape.first else { throw ModelError.shapeMismatch(node: node.name, reason: "batch_norm needs a channel axis") }
            let (scale, shift) = try batchNormAffine(node, channels: channels)
            return (ChannelAffineLayer(scale: scale, shift: shift, outputShape: shape), nil)

        case "relu": return (ActivationLayer(function: .relu, outputShape: shape), nil)
        case "leaky_relu":
            return (ActivationLayer(function: .leakyRelu(try attrs.float("negative_slope", default: 0.01)), outputShape: shape), nil)
        case "gelu":
            let approximate = try attrs.string("approximate", default: "none")
            guard approximate == "none" || approximate == "tanh" else {
                throw ModelError.badAttribute(node: node.name, attribute: "approximate", reason: "must be 'none' or 'tanh', got '\(approximate)'")
            }
            return (ActivationLayer(function: approximate == "tanh" ? .geluTanh : .geluErf, outputShape: shape), nil)
        case "silu": return (ActivationLayer(function: .silu, outputShape: shape), nil)
        case "sigmoid": return (ActivationLayer(function: .sigmoid, outputShape: shape), nil)
        case "tanh": return (ActivationLayer(function: .tanh, outputShape: shape), nil)
        case "dropout", "identity": return (ActivationLayer(function: .identity, outputShape: shape), nil)

        case "max_pool2d", "avg_pool2d":
            guard try !attrs.bool("ceil_mode", default: false) else {
                throw ModelError.badAttribute(node: node.name, attribute: "ceil_mode", reason: "true is not supported")
            }
            let kernel = try attrs.pair("kernel_size")
            let kind: Pool2dLayer.Kind = node.op == "max_pool2d" ? .max : .average(countIncludePad: try attrs.bool("count_include_pad", default: true))
            let layer = try Pool2dLayer(
                node: node.name, kind: kind, inputShape: shape, kernel: kernel,
                stride: (node.attributes["stride"] ?? .null) == .null ? kernel : try attrs.pair("stride"),
                padding: try attrs.pair("padding", default: 0),
                dilation: node.op == "max_pool2d" ? try attrs.pair("dilation", default: 1) : [1, 1])
            return (layer, nil)
        case "global_avg_pool", "global_max_pool":
            let layer = try GlobalPoolLayer(node: node.name, inputShape: shape, isMax: node.op == "global_max_pool",
                                            keepDimensions: try attrs.bool("keepdim", default: true))
            return (layer, nil)

        case "flatten":
            // Dimensions as in torch.flatten on the batched tensor; the batch axis (0) is never merged.
            let rank = shape.count + 1
            var start = try attrs.int("start_dim", default: 1), end = try attrs.int("end_dim", default: -1)
            if start < 0 { start += rank }
            if end < 0 { end += rank }
            guard start >= 1, end < rank, start <= end else {
                throw ModelError.badAttribute(node: node.name, attribute: "start_dim", reason: "must flatten dimensions within one sample")
            }
            let merged = shape[(start - 1)...(end - 1)].reduce(1, *)
            return (ReshapeLayer(outputShape: Array(shape[..<(start - 1)]) + [merged] + Array(shape[end...])), nil)
        case "reshape":
            var target = try attrs.ints("shape")
            let known = target.filter { $0 != -1 }.checkedElementCount ?? 0
            if let wildcard = target.firstIndex(of: -1), known > 0 { target[wildcard] = shape.elementCount / known }
            guard target.allSatisfy({ $0 > 0 }), target.checkedElementCount == shape.elementCount else {
                throw ModelError.shapeMismatch(node: node.name, reason: "cannot reshape \(shape) to \(try attrs.ints("shape"))")
            }
            return (ReshapeLayer(outputShape: target), nil)

        case "add": return (try AddLayer(node: node.name, shapes: inputShapes), nil)
        case "concat":
            var dim = try attrs.int("dim", default: 1)
            if dim < 0 { dim += shape.count + 1 }
            return (try ConcatLayer(node: node.name, shapes: inputShapes, axis: dim - 1), nil)

        case "layer_norm":
            let normalized = try attrs.ints("normalized_shape")
            guard !normalized.isEmpty, normalized.count <= shape.count, Array(shape.suffix(normalized.count)) == normalized else {
                throw ModelError.shapeMismatch(node: node.name, reason: "layer_norm over \(normalized) does not match input \(shape)")
            }
            let weight = try weights.optional(node, "weight"), bias = try weights.optional(node, "bias")
            let count = normalized.elementCount
            guard (weight?.buffer.count ?? count) == count, (bias?.buffer.count ?? count) == count else {
                throw ModelError.shapeMismatch(node: node.name, reason: "layer_norm weight/bias must hold \(count) values")
            }
            return (LayerNormLayer(normalizedCount: count, weight: weight?.buffer, bias: bias?.buffer,
                                   epsilon: try attrs.float("eps", default: 1e-5), outputShape: shape), nil)
        case "l2_normalize":
            let dim = try attrs.int("dim", default: 1)
            guard dim == 1 || (dim == -1 && shape.count == 1) else {
                throw ModelError.badAttribute(node: node.name, attribute: "dim", reason: "only dimension 1 is supported")
            }
            return (L2NormalizeLayer(epsilon: try attrs.float("eps", default: 1e-12), outputShape: shape), nil)
        default:
            throw ModelError.unknownOp(node: node.name, op: node.op)
        }
    }

    /// Inference BatchNorm as `y = x * scale + shift` per channel.
    private func batchNormAffine(_ node: NodeSpec, channels: Int) throws -> (scale: [Float], shift: [Float]) {
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
}
