/// How a `[C, H, W]` activation lies in memory: planar (NCHW, the runtime's default and the model's input and
/// output) or channels-last (NHWC: each position's `C` values together), the layout oneDNN's convolutions read
/// and write without reorders.
enum TensorLayout: Sendable, Equatable {
    case planar, channelsLast
}

/// Copies `batch` samples of `channels` x `plane` floats from one layout to the other (a copy when they agree).
func convertLayout(_ source: UnsafePointer<Float>, _ destination: UnsafeMutablePointer<Float>, from: TensorLayout,
                   to: TensorLayout, channels: Int, plane: Int, batch: Int) {
    let sample = channels * plane
    guard from != to else {
        destination.update(from: source, count: batch * sample)
        return
    }
    // A planar sample is a [channels, plane] matrix, a channels-last one its transpose.
    let (rows, columns) = from == .planar ? (channels, plane) : (plane, channels)
    let tile = 16  // square tiles keep both sides of the transpose in cache
    for n in 0..<batch {
        let x = source + n * sample, y = destination + n * sample
        var r0 = 0
        while r0 < rows {
            let r1 = min(r0 + tile, rows)
            var c0 = 0
            while c0 < columns {
                let c1 = min(c0 + tile, columns)
                for r in r0..<r1 { for c in c0..<c1 { y[c * rows + r] = x[r * columns + c] } }
                c0 = c1
            }
            r0 = r1
        }
    }
}

/// A step the channels-last pass inserts where a value is needed in the other layout.
struct LayoutConversionLayer: Layer {
    let from: TensorLayout
    let to: TensorLayout
    let outputShape: [Int]
    /// oneDNN's JIT reorder (as conv's backend chooses); nil: `convertLayout`'s tiled transpose.
    let onednn: OneDNNKernel?

    init(from: TensorLayout, to: TensorLayout, outputShape: [Int], backend: ConvBackend = ConvBackend.preferred) {
        self.from = from
        self.to = to
        self.outputShape = outputShape
        onednn = backend == .onednn && from != to && outputShape.count == 3
            ? OneDNNKernel.layout(channels: outputShape[0], height: outputShape[1], width: outputShape[2], toChannelsLast: to == .channelsLast)
            : nil
    }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        if let onednn, onednn.run(inputs[0], output, batch: batch) { return }
        convertLayout(inputs[0], output, from: from, to: to, channels: outputShape[0], plane: outputShape[1] * outputShape[2], batch: batch)
    }
}

/// Rewrites a compiled graph so activations stay channels-last between oneDNN convolutions and the ops that
/// can run on that layout (elementwise, broadcasting arithmetic, pooling, concat, mean, BatchNorm, channel
/// LayerNorm, permute), fusing residual sums into the convolution before them. Values cross to planar only
/// where an op needs it (flatten, linear, attention, a conv oneDNN refused) and at the model's outputs.
/// Without oneDNN (or with `DMLKIT_CONV=reference`) the graph is returned unchanged.
enum ChannelsLastPass {
    static func apply(_ graph: CompiledGraph) -> CompiledGraph {
        guard graph.steps.contains(where: { ($0.layer as? Conv2dLayer)?.onednn != nil }) else { return graph }
        let fused = fuseResiduals(graph)
        var shapes = fused.valueShapes
        var layouts = [TensorLayout](repeating: .planar, count: shapes.count)
        var names = [Int: String]()
        names[0] = "input"
        for step in fused.steps { names[step.output] = step.name }
        var conversions = [Int: Int]()  // value -> its copy in the other layout
        var steps: [CompiledGraph.Step] = []

        // Only values with several channels and several positions differ between the layouts.
        func isSpatial(_ value: Int) -> Bool {
            shapes[value].count == 3 && shapes[value][0] > 1 && shapes[value][1] * shapes[value][2] > 1
        }
        /// `value` in `layout`, converting it once (the copy is shared by every reader).
        func value(_ value: Int, in layout: TensorLayout) -> Int {
            guard isSpatial(value), layouts[value] != layout else { return value }
            if let copy = conversions[value] { return copy }
            let copy = shapes.count
            shapes.append(shapes[value])
            layouts.append(layout)
            let suffix = layout == .planar ? "to_planar" : "to_channels_last"
            steps.append(.init(name: "\(names[value] ?? "value")/\(suffix)", op: "layout",
                               layer: LayoutConversionLayer(from: layouts[value], to: layout, outputShape: shapes[value]),
                               inputs: [value], output: copy))
            conversions[value] = copy
            return copy
        }

        for step in fused.steps {
            if var conv = step.layer as? Conv2dLayer, conv.onednn != nil {
                // A planar source (the model input) is converted here: oneDNN's own reorder of a 3-channel
                // image into its layout took ~8 ms of resnet18's 18.
                var inputs = step.inputs
                inputs[inputs.count - 1] = value(inputs[inputs.count - 1], in: .channelsLast)
                let source = inputs[inputs.count - 1]
                conv.sourceLayout = isSpatial(source) ? layouts[source] : .planar
                conv.destinationLayout = isSpatial(step.output) ? .channelsLast : .planar
                if conv.accumulates { inputs[0] = value(inputs[0], in: conv.destinationLayout) }
                if conv.onednn != nil {
                    layouts[step.output] = conv.destinationLayout
                    steps.append(.init(name: step.name, op: step.op, layer: conv, inputs: inputs, output: step.output))
                    continue
                }
            }
            let wantsChannelsLast = step.inputs.contains { isSpatial($0) && layouts[$0] == .channelsLast }
            if wantsChannelsLast, let (layer, outputLayout) = channelsLastVariant(of: step.layer, inputShapes: step.inputs.map { shapes[$0] }) {
                let inputs = step.inputs.map { value($0, in: .channelsLast) }
                layouts[step.output] = isSpatial(step.output) ? outputLayout : .planar
                steps.append(.init(name: step.name, op: step.op, layer: layer, inputs: inputs, output: step.output))
            } else {
                let inputs = step.inputs.map { value($0, in: .planar) }
                steps.append(.init(name: step.name, op: step.op, layer: step.layer, inputs: inputs, output: step.output))
            }
        }
        let outputs = fused.outputs.map { value($0, in: .planar) }
        return CompiledGraph(steps: fuseConcatAffines(steps, outputs: outputs), valueShapes: shapes, outputs: outputs,
                             foldedBatchNorms: fused.foldedBatchNorms)
    }

    /// For each value, the indices of the steps that read it (a step reading it twice counted once).
    static func readerIndices(_ steps: [CompiledGraph.Step]) -> [Int: [Int]] {
        var readers = [Int: [Int]]()
        for (index, step) in steps.enumerated() { for input in Set(step.inputs) { readers[input, default: []].append(index) } }
        return readers
    }

    /// A channels-last concat along the channels read only by an unfolded BatchNorm (DenseNet: each layer's
    /// input is the concat of every earlier feature map) becomes one step that normalises the parts straight
    /// into the BatchNorm's output: the concat, a copy of all earlier features per layer, is never stored.
    static func fuseConcatAffines(_ steps: [CompiledGraph.Step], outputs: [Int]) -> [CompiledGraph.Step] {
        let readers = readerIndices(steps)
        let producers = Dictionary(steps.enumerated().map { ($0.element.output, $0.offset) }, uniquingKeysWith: { first, _ in first })
        var result: [CompiledGraph.Step?] = steps
        for (index, step) in steps.enumerated() {
            guard let affine = step.layer as? ChannelAffineLayer, affine.layout == .channelsLast, step.inputs.count == 1,
                  let concatIndex = producers[step.inputs[0]],
                  let concat = steps[concatIndex].layer as? ConcatLayer, readers[step.inputs[0]] == [index],
                  !outputs.contains(step.inputs[0]),
                  let fused = ConcatChannelAffineLayer(concat: concat, affine: affine)
            else { continue }
            let concatStep = steps[concatIndex]
            result[concatIndex] = nil
            result[index] = .init(name: step.name, op: concatStep.op + "+" + step.op, layer: fused, inputs: concatStep.inputs, output: step.output)
        }
        return result.compactMap { $0 }
    }

    /// The layer computing the same values on channels-last inputs (`[H, W, C]` for each `[C, H, W]`), and the
    /// layout of its output; nil when the op needs planar inputs.
    static func channelsLastVariant(of layer: any Layer, inputShapes: [[Int]]) -> (any Layer, TensorLayout)? {
        func lastAxisChannels(_ shape: [Int]) -> [Int] { shape.count == 3 ? [shape[1], shape[2], shape[0]] : shape }
        // Where each planar axis of a [C, H, W] value lies in its channels-last order.
        let position = [2, 0, 1]
        switch layer {
        case is ActivationLayer, is ScalarLayer:
            return (layer, .channelsLast)
        case let binary as BinaryLayer:
            // Broadcasting commutes with the axis order when every input has all three axes (or is one value).
            guard inputShapes.allSatisfy({ $0.count == 3 || $0.elementCount == 1 }),
                  let permuted = try? BinaryLayer(node: "", operation: binary.operation, shapes: inputShapes.map(lastAxisChannels))
            else { return nil }
            return (permuted, .channelsLast)
        case var pool as Pool2dLayer:
            pool.layout = .channelsLast
            return (pool, .channelsLast)
        case var pool as GlobalPoolLayer:
            guard inputShapes[0].count == 3 else { return nil }
            pool.layout = .channelsLast
            return (pool, .planar)  // one value per channel: the same in both layouts
        case var pool as AdaptivePool2dLayer:
            pool.layout = .channelsLast
            return (pool, .channelsLast)
        case let concat as ConcatLayer:
            guard inputShapes.allSatisfy({ $0.count == 3 }),
                  let permuted = try? ConcatLayer(node: "", shapes: inputShapes.map(lastAxisChannels), axis: position[concat.axis])
            else { return nil }
            return (permuted, .channelsLast)
        case let mean as MeanLayer:
            // Kept axes stay in channels-last order; dropping H and W leaves [C] either way. Other drops would
            // leave a 2-D value in the wrong order.
            guard mean.inputShape.count == 3, mean.keepDimensions || mean.axes == [1, 2] else { return nil }
            let permuted = MeanLayer(inputShape: lastAxisChannels(mean.inputShape), axes: Set(mean.axes.map { position[$0] }),
                                     keepDimensions: mean.keepDimensions)
            return (permuted, mean.keepDimensions ? .channelsLast : .planar)
        case var affine as ChannelAffineLayer:
            guard affine.outputShape.count == 3 else { return nil }
            affine.layout = .channelsLast
            return (affine, .channelsLast)
        case var norm as ChannelLayerNormLayer:
            guard norm.outputShape.count == 3 else { return nil }
            norm.layout = .channelsLast
            return (norm, .channelsLast)
        case let permute as PermuteLayer:
            // Output axis i is planar axis order[i], which is channels-last axis position[order[i]].
            guard permute.inputShape.count == 3,
                  let composed = try? PermuteLayer(node: "", inputShape: lastAxisChannels(permute.inputShape), order: permute.order.map { position[$0] })
            else { return nil }
            return (composed, .planar)  // the permuted value is in the order its shape says
        default:
            return nil
        }
    }

    /// A BatchNorm left unfolded takes the activation that alone reads it.
    ///
    /// `add(conv(x), r)` where the conv (oneDNN, no activation of its own) is read only by the add becomes one
    /// conv step reading `[r, x]` that adds into `r` (oneDNN's sum post-op), with an activation that reads only
    /// the sum fused after it. The conv step moves to where the add was, so `r` is computed before it.
    static func fuseResiduals(_ graph: CompiledGraph) -> CompiledGraph {
        var readers = readerIndices(graph.steps)
        for output in graph.outputs { readers[output, default: []].append(Int.max) }
        var steps: [CompiledGraph.Step?] = graph.steps
        for (index, step) in graph.steps.enumerated() {
            // An unfolded BatchNorm and the activation that alone reads it: one pass over memory.
            if var affine = step.layer as? ChannelAffineLayer, affine.activation == nil, let only = readers[step.output],
               only.count == 1, only[0] != Int.max, let next = steps[only[0]], let activation = next.layer as? ActivationLayer,
               next.inputs == [step.output]
            {
                affine.activation = activation.function
                steps[index] = .init(name: step.name, op: step.op + "+" + activation.function.name, layer: affine,
                                     inputs: step.inputs, output: next.output)
                steps[only[0]] = nil
                continue
            }
            guard let add = step.layer as? BinaryLayer, add.operation == .add, step.inputs.count == 2,
                  step.inputs[0] != step.inputs[1], add.aCount == add.bCount else { continue }
            for (convSide, residual) in [(0, step.inputs[1]), (1, step.inputs[0])] {
                let convValue = step.inputs[convSide]
                guard readers[convValue] == [index],
                      let convIndex = steps.firstIndex(where: { $0?.output == convValue }), let convStep = steps[convIndex],
                      var conv = convStep.layer as? Conv2dLayer, conv.onednn != nil, conv.activation == nil, !conv.accumulates,
                      conv.outputShape.elementCount == add.aCount
                else { continue }
                conv.accumulates = true
                var output = step.output
                var op = convStep.op + "+add"
                // An activation that is the sum's only reader runs after the sum, in the same conv.
                if let only = readers[step.output], only.count == 1, only[0] != Int.max, let next = steps[only[0]],
                   let activation = next.layer as? ActivationLayer, next.inputs == [step.output] {
                    conv.activation = activation.function
                    output = next.output
                    op += "+" + activation.function.name
                    steps[only[0]] = nil
                }
                guard conv.onednn != nil else { break }
                steps[convIndex] = nil
                steps[index] = .init(name: convStep.name, op: op, layer: conv, inputs: [residual, convStep.inputs[0]], output: output)
                break
            }
        }
        return CompiledGraph(steps: steps.compactMap { $0 }, valueShapes: graph.valueShapes, outputs: graph.outputs,
                             foldedBatchNorms: graph.foldedBatchNorms)
    }
}
