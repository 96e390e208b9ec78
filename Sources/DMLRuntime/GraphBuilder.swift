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

/// Turns a `ModelSpec` and its weights into layers (through `OpTable`), checking every op, attribute,
/// tensor role and shape; folds inference-mode BatchNorm into a directly preceding conv/linear whose
/// output nothing else reads, and runs an activation that is the only reader of a conv/linear in its epilogue.
struct GraphBuilder {
    let spec: ModelSpec
    let weights: ModelWeights

    /// `channelsLast: false` keeps every activation planar (the reference the channels-last plan is tested against).
    func build(channelsLast: Bool = true) throws -> CompiledGraph {
        // Unknown ops, attributes and roles are reported before any weight is touched.
        for node in spec.nodes { try check(node) }
        var readers: [String: Int] = [:]
        for node in spec.nodes { for input in node.inputs { readers[input, default: 0] += 1 } }
        for output in spec.outputs { readers[output, default: 0] += 1 }
        var onlyReader: [String: NodeSpec] = [:]
        for node in spec.nodes where node.inputs.count == 1 && readers[node.inputs[0]] == 1 { onlyReader[node.inputs[0]] = node }

        var valueOf: [String: Int] = ["input": 0]
        var shapes: [[Int]] = [spec.inputShape]
        var steps: [CompiledGraph.Step] = []
        var folded: [String: NodeSpec] = [:]  // batch_norm/activation name -> the conv/linear it is folded or fused into
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
            let isDense = node.op == "conv2d" || node.op == "linear"
            var batchNorm: NodeSpec?
            if isDense, let next = onlyReader[node.name], next.op == "batch_norm" { batchNorm = next }
            let definition = OpTable.ops[node.op]!  // checked above
            let built = try definition.build(OpContext(node: node, inputShapes: inputs.map { shapes[$0] }, weights: weights, batchNorm: batchNorm))
            var layer = built.layer
            var produced = node.name  // the value this layer's output stands for after folding/fusion
            if let bn = batchNorm, let foldedLayer = built.folded {
                folded[bn.name] = node
                foldedNames.append(bn.name)
                layer = foldedLayer
                produced = bn.name
            }
            var op = node.op
            if isDense, let next = onlyReader[produced], let function = try OpTable.activation(of: next) {
                if var conv = layer as? Conv2dLayer {
                    conv.activation = function
                    layer = conv
                } else if var linear = layer as? LinearLayer {
                    linear.activation = function
                    layer = linear
                }
                folded[next.name] = node
                op += "+" + function.name
            }
            guard layer.outputShape.allSatisfy({ $0 >= 1 }), let size = layer.outputShape.checkedElementCount,
                  size <= RuntimeLimits.maxValueElements
            else {
                throw ModelError.shapeMismatch(node: node.name, reason: "output shape \(layer.outputShape) is empty or too large")
            }
            // Scratch space per sample is bounded like values (attention over very long sequences, huge im2col).
            guard layer.workspaceCount(maxBatch: 1) <= RuntimeLimits.maxValueElements else {
                throw ModelError.shapeMismatch(node: node.name, reason: "needs \(layer.workspaceCount(maxBatch: 1)) floats of scratch space per sample, more than \(RuntimeLimits.maxValueElements)")
            }
            // This node's weights are checked and copied, folded or packed by now; what a layer still reads per
            // call comes back from the file on demand.
            weights.file.releaseResidentPages(of: node.tensors.values.flatMap { [$0, $0 + ".scale"] } + (batchNorm?.tensors.values.map { $0 } ?? []))
            steps.append(.init(name: node.name, op: op, layer: layer, inputs: inputs, output: shapes.count))
            valueOf[node.name] = shapes.count
            shapes.append(layer.outputShape)
        }
        let outputs = try spec.outputs.map {
            guard let value = valueOf[$0] else { throw ModelError.unknownInput(node: "outputs", input: $0) }
            return value
        }
        let graph = CompiledGraph(steps: steps, valueShapes: shapes, outputs: outputs, foldedBatchNorms: foldedNames)
        let compiled = channelsLast ? ChannelsLastPass.apply(graph) : graph
        // oneDNN's primitives and packed weights made now, layer by layer: the first call pays nothing, the model
        // file's f32 conv weights are not read again (their pages can leave memory), and each BN-folded copy is
        // freed as soon as it is packed.
        for step in compiled.steps { (step.layer as? Conv2dLayer)?.prepareBackend() }
        return compiled
    }

    /// The node against its op's declaration: known op, input count, attribute names and kinds, tensor roles.
    private func check(_ node: NodeSpec) throws {
        guard let definition = OpTable.ops[node.op] else { throw ModelError.unknownOp(node: node.name, op: node.op) }
        let (fewest, most) = definition.inputs
        guard node.inputs.count >= fewest, node.inputs.count <= (most ?? Int.max) else {
            let expected = most == fewest ? "\(fewest)" : most.map { "\(fewest)-\($0)" } ?? "at least \(fewest)"
            throw ModelError.shapeMismatch(node: node.name, reason: "\(node.op) takes \(expected) input(s), got \(node.inputs.count)")
        }
        let attrs = Attributes(node: node)
        for key in node.attributes.keys.sorted() {
            guard let kind = definition.attributes[key] else {
                throw ModelError.badAttribute(node: node.name, attribute: key, reason: "is not an attribute of \(node.op)")
            }
            try attrs.check(key, is: kind)
        }
        for role in node.tensors.keys.sorted() where definition.tensors[role] == nil {
            throw ModelError.badAttribute(node: node.name, attribute: "tensors.\(role)", reason: "is not a tensor role of \(node.op)")
        }
        for (role, need) in definition.tensors.sorted(by: { $0.key < $1.key }) where need == .required && node.tensors[role] == nil {
            throw ModelError.badAttribute(node: node.name, attribute: "tensors.\(role)", reason: "is missing")
        }
    }
}
