import Foundation
import Testing
@testable import DMLRuntime

/// The channels-last plan (activations NHWC between oneDNN convs, residual sums fused into convs) against the
/// all-planar plan of the same model, and the conv's fallback when oneDNN cannot run a channels-last layer.
@Suite("Channels-last plan")
struct ChannelsLastTests {
    static let models = ["op-activations", "op-broadcast", "op-pooling", "op-shapes", "op-vit", "op-tokens", "op-layouts",
                         "cnn-f32", "cnn-unfolded-f32"]

    static func graphs(_ name: String) throws -> (planar: CompiledGraph, channelsLast: CompiledGraph) {
        let file = try SafetensorsFile(contentsOf: Fixtures.url("\(name).safetensors"))
        let builder = GraphBuilder(spec: try ModelSpec(metadata: file.metadata), weights: ModelWeights(file: file))
        return (try builder.build(channelsLast: false), try builder.build())
    }

    /// Every output value of `graph` for `input`, concatenated per sample.
    static func run(_ graph: CompiledGraph, _ input: [Float], batch: Int) -> [Float] {
        let plan = ExecutionPlan(graph: graph, capacity: batch)
        plan.input.update(from: input, count: input.count)
        plan.run(batch: batch)
        var result: [Float] = []
        for n in 0..<batch {
            for value in graph.outputs {
                let width = graph.valueShapes[value].elementCount
                result += Array(UnsafeBufferPointer(start: plan.buffer(of: value) + n * width, count: width))
            }
        }
        return result
    }

    @Test("gives the planar plan's outputs", arguments: models)
    func matchesPlanar(_ name: String) throws {
        let (planar, channelsLast) = try Self.graphs(name)
        let batch = 3
        let input = Conv2dTests.values(batch * planar.valueShapes[0].elementCount, seed: 9).map { $0 * 2 }
        let expected = Self.run(planar, input, batch: batch)
        let actual = Self.run(channelsLast, input, batch: batch)
        let scale = max(1, expected.map { abs($0) }.max() ?? .nan)
        #expect(actual.count == expected.count)
        #expect(maxAbsError(actual, expected) <= 1e-5 * scale, "\(name): max abs error \(maxAbsError(actual, expected))")
    }

    @Test("keeps activations channels-last between convs and fuses residual sums")
    func rewritesTheLayoutsModel() throws {
        guard ConvBackend.preferred == .onednn else { return }  // the plan only changes where oneDNN runs convs
        let (planar, channelsLast) = try Self.graphs("op-layouts")
        let ops = channelsLast.steps.map(\.op)
        #expect(ops.contains("conv2d+add+relu"), "\(ops)")  // relu(bn(conv(stem)) + stem)
        #expect(ops.contains("conv2d+add"), "\(ops)")  // block1 + conv(block1), block1 read again
        #expect(!ops.contains("add"), "\(ops)")
        // concat -> BatchNorm -> ReLU (DenseNet's pattern): one step reading the concat's parts, no concat stored.
        #expect(ops.contains("concat+batch_norm+relu"), "\(ops)")
        #expect(!ops.contains("concat"), "\(ops)")
        #expect(channelsLast.steps.contains { $0.layer is ConcatChannelAffineLayer && $0.inputs.count == 2 })
        // Two conversions: the planar input before the first conv, and `norm`, an output, back to planar.
        // `keep` has one channel (the same bytes either way) and the permute reads channels-last directly.
        #expect(channelsLast.steps.filter { $0.op == "layout" }.map(\.name) == ["input/to_channels_last", "norm/to_planar"], "\(ops)")
        let convs = channelsLast.steps.compactMap { $0.layer as? Conv2dLayer }
        #expect(convs.allSatisfy { $0.destinationLayout == .channelsLast })
        #expect(convs.allSatisfy { $0.sourceLayout == .channelsLast })
        #expect(planar.steps.count > channelsLast.steps.count)
    }

    /// A channels-last, accumulating conv on the reference backend takes the fallback through planar copies.
    @Test("conv fallback through planar copies matches the planar conv plus the residual", arguments: [false, true])
    func fallback(_ accumulate: Bool) throws {
        let (cin, cout, h, w, batch) = (5, 7, 6, 4, 2)
        let weight = Conv2dTests.values(cout * cin * 9, seed: 1), bias = Conv2dTests.values(cout, seed: 2)
        var planar = try Conv2dLayer(node: "conv", inputShape: [cin, h, w], weight: FloatBuffer(weight), weightShape: [cout, cin, 3, 3],
                                     bias: FloatBuffer(bias), stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1)
        planar.backend = .reference
        var shuffled = planar
        shuffled.sourceLayout = .channelsLast
        shuffled.destinationLayout = .channelsLast
        shuffled.accumulates = accumulate
        shuffled.activation = .relu
        #expect(shuffled.onednn == nil)
        let input = Conv2dTests.values(batch * cin * h * w, seed: 3)
        let residual = Conv2dTests.values(batch * cout * h * w, seed: 4)
        var workspace = [Float](repeating: 0, count: max(1, planar.workspaceCount(maxBatch: batch)))
        var reference = [Float](repeating: .nan, count: residual.count)
        input.withUnsafeBufferPointer { i in reference.withUnsafeMutableBufferPointer { planar.forward([i.baseAddress!], $0.baseAddress!, batch: batch, workspace: &workspace) } }
        if accumulate { for i in reference.indices { reference[i] += residual[i] } }
        reference = reference.map { max($0, 0) }

        func toChannelsLast(_ x: [Float], channels: Int) -> [Float] {
            var y = [Float](repeating: .nan, count: x.count)
            x.withUnsafeBufferPointer { a in y.withUnsafeMutableBufferPointer { convertLayout(a.baseAddress!, $0.baseAddress!, from: .planar, to: .channelsLast, channels: channels, plane: h * w, batch: batch) } }
            return y
        }
        let shuffledInput = toChannelsLast(input, channels: cin)
        var output = [Float](repeating: .nan, count: residual.count)
        let residualLast = toChannelsLast(residual, channels: cout)
        shuffledInput.withUnsafeBufferPointer { i in
            residualLast.withUnsafeBufferPointer { r in
                output.withUnsafeMutableBufferPointer { o in
                    let inputs = accumulate ? [r.baseAddress!, i.baseAddress!] : [i.baseAddress!]
                    shuffled.forward(inputs, o.baseAddress!, batch: batch, workspace: &workspace)
                }
            }
        }
        #expect(maxAbsError(output, toChannelsLast(reference, channels: cout)) <= 1e-5)
    }

    /// The fused concat + affine against the concat, then the affine, on channels-last parts of odd widths.
    @Test("concat + BatchNorm fused matches the two steps", arguments: [nil, ActivationLayer.Function.relu, .hardswish])
    func concatAffine(_ activation: ActivationLayer.Function?) throws {
        let (parts, h, w, batch) = ([3, 8, 5], 4, 3, 2)
        let channels = parts.reduce(0, +)
        let concat = try ConcatLayer(node: "cat", shapes: parts.map { [h, w, $0] }, axis: 2)
        var affine = ChannelAffineLayer(scale: Conv2dTests.values(channels, seed: 6), shift: Conv2dTests.values(channels, seed: 7),
                                        outputShape: [channels, h, w])
        affine.backend = .reference
        affine.layout = .channelsLast
        affine.activation = activation
        let fused = try #require(ConcatChannelAffineLayer(concat: concat, affine: affine))
        let inputs = parts.enumerated().map { Conv2dTests.values(batch * h * w * $0.element, seed: UInt64(10 + $0.offset)).map { $0 * 4 } }
        var joined = [Float](repeating: .nan, count: batch * channels * h * w), expected = joined, actual = joined
        var workspace: [Float] = [0]
        let pointers = inputs.map { UnsafeMutablePointer<Float>.allocate(capacity: $0.count) }
        defer { pointers.forEach { $0.deallocate() } }
        for (p, values) in zip(pointers, inputs) { p.update(from: values, count: values.count) }
        let sources: [UnsafePointer<Float>] = pointers.map { UnsafePointer<Float>($0) }
        concat.forward(sources, &joined, batch: batch, workspace: &workspace)
        joined.withUnsafeBufferPointer { j in affine.forward([j.baseAddress!], &expected, batch: batch, workspace: &workspace) }
        fused.forward(sources, &actual, batch: batch, workspace: &workspace)
        #expect(maxAbsError(actual, expected) <= 1e-6, "max abs error \(maxAbsError(actual, expected))")
        // Not a channel-axis concat of channels-last values: no fusion.
        #expect(ConcatChannelAffineLayer(concat: try ConcatLayer(node: "cat", shapes: [[2, h, w], [3, h, w]], axis: 0), affine: affine) == nil)
    }

    @Test("layout conversion round-trips and transposes each sample")
    func conversion() {
        let (channels, plane, batch) = (19, 35, 2)
        let x = Conv2dTests.values(channels * plane * batch, seed: 5)
        var y = [Float](repeating: .nan, count: x.count), back = y
        x.withUnsafeBufferPointer { a in y.withUnsafeMutableBufferPointer { convertLayout(a.baseAddress!, $0.baseAddress!, from: .planar, to: .channelsLast, channels: channels, plane: plane, batch: batch) } }
        y.withUnsafeBufferPointer { a in back.withUnsafeMutableBufferPointer { convertLayout(a.baseAddress!, $0.baseAddress!, from: .channelsLast, to: .planar, channels: channels, plane: plane, batch: batch) } }
        #expect(back == x)
        #expect(y[1 * plane * channels + 3 * channels + 7] == x[1 * plane * channels + 7 * plane + 3])
    }
}
