import CDMLDnnl
import Foundation
import Testing
@testable import DMLRuntime

/// oneDNN's pooling, batch-normalization and reorder kernels against the runtime's own loops (which the op fixtures check
/// against PyTorch): pooling over the geometries models use and the edge cases of PyTorch's sizing (ceil mode,
/// padding, dilation, floor mode dropping rows, count_include_pad both ways), both layouts.
@Suite("Pooling, BatchNorm and layout steps on oneDNN")
struct OneDNNBackendTests {
    struct Geometry: CustomStringConvertible, Sendable {
        let kind: Pool2dLayer.Kind
        let shape: [Int], kernel: [Int], stride: [Int], padding: [Int], dilation: [Int]
        let ceil: Bool
        var description: String { "\(kind) \(shape) k\(kernel) s\(stride) p\(padding) d\(dilation)\(ceil ? " ceil" : "")" }
    }

    static let geometries: [Geometry] = [
        Geometry(kind: .max, shape: [32, 16, 16], kernel: [2, 2], stride: [2, 2], padding: [0, 0], dilation: [1, 1], ceil: false),
        Geometry(kind: .max, shape: [24, 15, 15], kernel: [3, 3], stride: [2, 2], padding: [1, 1], dilation: [1, 1], ceil: false),
        Geometry(kind: .max, shape: [19, 11, 9], kernel: [3, 3], stride: [2, 2], padding: [0, 0], dilation: [1, 1], ceil: true),
        Geometry(kind: .max, shape: [5, 11, 9], kernel: [3, 2], stride: [2, 3], padding: [1, 1], dilation: [1, 1], ceil: true),
        Geometry(kind: .max, shape: [8, 10, 10], kernel: [2, 2], stride: [3, 3], padding: [0, 0], dilation: [1, 1], ceil: false),
        Geometry(kind: .max, shape: [7, 12, 12], kernel: [3, 3], stride: [1, 1], padding: [1, 1], dilation: [2, 2], ceil: false),
        Geometry(kind: .average(countIncludePad: true), shape: [48, 9, 9], kernel: [3, 3], stride: [1, 1], padding: [1, 1], dilation: [1, 1], ceil: false),
        Geometry(kind: .average(countIncludePad: true), shape: [16, 14, 14], kernel: [2, 2], stride: [2, 2], padding: [0, 0], dilation: [1, 1], ceil: false),
        Geometry(kind: .average(countIncludePad: true), shape: [6, 11, 9], kernel: [3, 3], stride: [2, 2], padding: [1, 1], dilation: [1, 1], ceil: true),
        Geometry(kind: .average(countIncludePad: false), shape: [6, 11, 9], kernel: [3, 3], stride: [2, 2], padding: [1, 1], dilation: [1, 1], ceil: true),
        Geometry(kind: .average(countIncludePad: false), shape: [17, 7, 7], kernel: [2, 2], stride: [2, 2], padding: [0, 0], dilation: [1, 1], ceil: true),
        Geometry(kind: .average(countIncludePad: false), shape: [33, 8, 13], kernel: [3, 3], stride: [1, 1], padding: [1, 1], dilation: [1, 1], ceil: false),
    ]

    /// The layer's output for `input` on `backend`.
    static func run(_ layer: Pool2dLayer, _ input: [Float], batch: Int) -> [Float] {
        var output = [Float](repeating: .nan, count: batch * layer.outputShape.elementCount)
        var workspace: [Float] = [0]
        input.withUnsafeBufferPointer { i in
            output.withUnsafeMutableBufferPointer { layer.forward([i.baseAddress!], $0.baseAddress!, batch: batch, workspace: &workspace) }
        }
        return output
    }

    @Test("gives the runtime's own results", arguments: geometries)
    func matchesLoops(_ g: Geometry) throws {
        for layout in [TensorLayout.planar, .channelsLast] {
            var reference = try Pool2dLayer(node: "pool", kind: g.kind, inputShape: g.shape, kernel: g.kernel, stride: g.stride,
                                            padding: g.padding, dilation: g.dilation, ceilMode: g.ceil)
            reference.backend = .reference
            reference.layout = layout
            var onednn = reference
            onednn.backend = .onednn
            #expect(reference.onednn == nil)
            if ConvBackend.onednnAvailable {
                // Every geometry here has a JIT kernel but dilated ones (oneDNN 2.6 runs those in its reference
                // loops) and include-pad windows reaching past the padding (another divisor).
                let reachesPast = (reference.outHeight - 1) * g.stride[0] + g.kernel[0] > g.shape[1] + 2 * g.padding[0]
                    || (reference.outWidth - 1) * g.stride[1] + g.kernel[1] > g.shape[2] + 2 * g.padding[1]
                if case .average(countIncludePad: true) = g.kind, reachesPast {
                    #expect(onednn.onednn == nil, "\(g)")
                } else if g.dilation == [1, 1] {
                    #expect(onednn.onednn != nil, "\(g) \(layout)")
                }
            }
            for batch in [1, 3] {
                let input = Conv2dTests.values(batch * g.shape.elementCount, seed: UInt64(batch * 7 + g.shape[0]))
                let expected = Self.run(reference, input, batch: batch)
                let actual = Self.run(onednn, input, batch: batch)
                if case .max = g.kind {
                    #expect(actual == expected, "\(g) \(layout) batch \(batch)")  // max picks an input value: exact
                } else {
                    #expect(maxAbsError(actual, expected) <= 1e-6, "\(g) \(layout) batch \(batch): \(maxAbsError(actual, expected))")
                }
            }
        }
    }

    @Test("global pooling gives the runtime's own results", arguments: [false, true])
    func globalPooling(_ isMax: Bool) throws {
        for layout in [TensorLayout.planar, .channelsLast] {
            for shape in [[40, 7, 7], [3, 1, 1], [130, 5, 11], [9, 17]] {
                var reference = try GlobalPoolLayer(node: "pool", inputShape: shape, isMax: isMax, keepDimensions: true)
                reference.backend = .reference
                reference.layout = layout
                var onednn = reference
                onednn.backend = .onednn
                #expect(reference.onednn == nil)
                if ConvBackend.onednnAvailable { #expect(onednn.onednn != nil, "\(shape)") }
                let batch = 3
                let input = Conv2dTests.values(batch * shape.elementCount, seed: UInt64(shape[0]))
                var expected = [Float](repeating: .nan, count: batch * shape[0]), actual = expected
                var workspace: [Float] = [0]
                input.withUnsafeBufferPointer { i in
                    expected.withUnsafeMutableBufferPointer { reference.forward([i.baseAddress!], $0.baseAddress!, batch: batch, workspace: &workspace) }
                    actual.withUnsafeMutableBufferPointer { onednn.forward([i.baseAddress!], $0.baseAddress!, batch: batch, workspace: &workspace) }
                }
                if isMax {
                    #expect(actual == expected, "\(shape) \(layout)")
                } else {
                    #expect(maxAbsError(actual, expected) <= 1e-6, "\(shape) \(layout): \(maxAbsError(actual, expected))")
                }
            }
        }
    }

    @Test("an unfolded BatchNorm (+ ReLU) gives the runtime's own results, in place too")
    func channelAffine() {
        for layout in [TensorLayout.planar, .channelsLast] {
            for activation in [nil, ActivationLayer.Function.relu, .silu] {
                for shape in [[64, 7, 9], [3, 5, 5], [37, 1, 1]] {
                    let channels = shape[0], batch = 3
                    var reference = ChannelAffineLayer(scale: Conv2dTests.values(channels, seed: 5),
                                                       shift: Conv2dTests.values(channels, seed: 6), outputShape: shape)
                    reference.backend = .reference
                    reference.layout = layout
                    reference.activation = activation
                    var onednn = reference
                    onednn.backend = .onednn
                    #expect(reference.onednn == nil)
                    // oneDNN's batch normalization fuses only ReLU: other activations keep the loops.
                    if ConvBackend.onednnAvailable { #expect((onednn.onednn != nil) == (activation != .silu), "\(shape) \(String(describing: activation))") }
                    let input = Conv2dTests.values(batch * shape.elementCount, seed: UInt64(channels))
                    var expected = [Float](repeating: .nan, count: input.count), actual = expected
                    var workspace: [Float] = [0]
                    input.withUnsafeBufferPointer { i in
                        expected.withUnsafeMutableBufferPointer { reference.forward([i.baseAddress!], $0.baseAddress!, batch: batch, workspace: &workspace) }
                        actual.withUnsafeMutableBufferPointer { onednn.forward([i.baseAddress!], $0.baseAddress!, batch: batch, workspace: &workspace) }
                    }
                    // x * scale + shift once, in f32, both ways: the same numbers up to a fused multiply-add's rounding.
                    #expect(maxAbsError(actual, expected) <= 1e-6, "\(shape) \(layout): \(maxAbsError(actual, expected))")
                    var inPlace = input
                    inPlace.withUnsafeMutableBufferPointer { onednn.forward([UnsafePointer($0.baseAddress!)], $0.baseAddress!, batch: batch, workspace: &workspace) }
                    #expect(maxAbsError(inPlace, expected) <= 1e-6, "in place \(shape) \(layout)")
                }
            }
        }
    }

    /// oneDNN splits a primitive's work for the thread count set when it is made: a new count makes new ones
    /// (keyed by the count), which give the same embeddings.
    @Test("a new thread count makes new primitives with the same results")
    func threadCountChange() throws {
        // oneDNN's count only (`EmbeddingModel.setThreads` would also change the BLAS pool the other suites use).
        defer { dml_dnnl_set_threads(0) }  // back to the OpenMP default the other suites run with
        dml_dnnl_set_threads(1)
        let model = try EmbeddingModel(contentsOf: Fixtures.url("cnn-f32.safetensors"), options: .init(maxBatch: 2))
        let input = Conv2dTests.values(2 * model.inputSize, seed: 11)
        func embed() throws -> [Float] {
            var output = [Float](repeating: .nan, count: 2 * model.dimension)
            try input.withUnsafeBufferPointer { i in try output.withUnsafeMutableBufferPointer { try model.embed(batch: i, count: 2, into: $0) } }
            return output
        }
        let one = try embed()
        if ConvBackend.onednnAvailable { #expect(dml_dnnl_threads() == 1) }
        dml_dnnl_set_threads(2)
        let two = try embed()
        #expect(maxAbsError(one, two) <= 1e-6, "\(maxAbsError(one, two))")
    }

    @Test("layout steps give the tiled transpose's bytes both ways")
    func layoutConversion() {
        for shape in [[3, 17, 9], [64, 5, 5], [1, 4, 4]] {
            for (from, to) in [(TensorLayout.planar, TensorLayout.channelsLast), (.channelsLast, .planar)] {
                let reference = LayoutConversionLayer(from: from, to: to, outputShape: shape, backend: .reference)
                let onednn = LayoutConversionLayer(from: from, to: to, outputShape: shape, backend: .onednn)
                #expect(reference.onednn == nil)
                if ConvBackend.onednnAvailable { #expect(onednn.onednn != nil, "\(shape)") }
                let batch = 2
                let input = Conv2dTests.values(batch * shape.elementCount, seed: UInt64(shape[0] + 3))
                var expected = [Float](repeating: .nan, count: input.count), actual = expected
                var workspace: [Float] = [0]
                input.withUnsafeBufferPointer { i in
                    expected.withUnsafeMutableBufferPointer { reference.forward([i.baseAddress!], $0.baseAddress!, batch: batch, workspace: &workspace) }
                    actual.withUnsafeMutableBufferPointer { onednn.forward([i.baseAddress!], $0.baseAddress!, batch: batch, workspace: &workspace) }
                }
                #expect(actual == expected, "\(shape) \(from) -> \(to)")
            }
        }
    }
}
