import CDMLDnnl
import Foundation

/// Elementwise activations (and no-op ops such as dropout at inference), run in place when possible.
struct ActivationLayer: Layer {
    /// The function applied to each element.
    enum Function: Sendable, Equatable {
        case identity, relu, leakyRelu(Float), geluErf, geluTanh, silu, sigmoid, tanh
        /// `min(max(x, low), high)` (ReLU6, hardtanh); an open side is infinite.
        case clamp(low: Float, high: Float)
        /// `x * clamp(x + 3, 0, 6) / 6`.
        case hardswish
        /// `clamp(x + 3, 0, 6) / 6`.
        case hardsigmoid

        /// Short name for layer listings (`conv2d+relu`).
        var name: String {
            switch self {
            case .identity: return "identity"
            case .relu: return "relu"
            case .leakyRelu: return "leaky_relu"
            case .geluErf, .geluTanh: return "gelu"
            case .silu: return "silu"
            case .sigmoid: return "sigmoid"
            case .tanh: return "tanh"
            case .clamp: return "clamp"
            case .hardswish: return "hardswish"
            case .hardsigmoid: return "hardsigmoid"
            }
        }

        /// `y[i] = f(x[i])` for `count` elements; `x` and `y` may be the same buffer.
        func apply(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
            switch self {
            case .identity:
                copyIfNeeded(x, y, count: count)
            case .relu:
                for i in 0..<count { y[i] = max(x[i], 0) }
            case let .leakyRelu(slope):
                for i in 0..<count { let v = x[i]; y[i] = v >= 0 ? v : v * slope }
            case .geluErf:
                dml_activation(DML_ACTIVATION_GELU_ERF, x, y, count)
            case .geluTanh:
                dml_activation(DML_ACTIVATION_GELU_TANH, x, y, count)
            case .silu:
                dml_activation(DML_ACTIVATION_SILU, x, y, count)
            case .sigmoid:
                dml_activation(DML_ACTIVATION_SIGMOID, x, y, count)
            case .tanh:
                for i in 0..<count { y[i] = Foundation.tanh(x[i]) }
            case let .clamp(low, high):
                for i in 0..<count { y[i] = min(max(x[i], low), high) }
            case .hardswish:
                for i in 0..<count { let v = x[i]; y[i] = v * min(max(v + 3, 0), 6) * (1 / 6) }
            case .hardsigmoid:
                for i in 0..<count { y[i] = min(max(x[i] + 3, 0), 6) * (1 / 6) }
            }
        }

        /// `apply` split over the runtime's threads (`parallelFor`), for a layer's whole output.
        func applyOnThreads(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
            parallelFor(count, grain: 16384) { range in apply(x + range.lowerBound, y + range.lowerBound, count: range.count) }
        }
    }

    let function: Function
    let outputShape: [Int]
    var canRunInPlace: Bool { true }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        function.applyOnThreads(inputs[0], output, count: batch * outputShape.elementCount)
    }
}

/// The four arithmetic ops of `add`/`sub`/`mul`/`div`.
enum BinaryOperation: String, Sendable {
    case add, sub, mul, div
}

/// `a op b` with NumPy broadcasting of the per-sample shapes (right-aligned; a dimension of 1 stretches):
/// residual sums, squeeze-excitation gates `[C, H, W] * [C, 1, 1]`, biases `[T, D] + [D]`, layer scale.
///
/// At load the broadcast is reduced to as few loop dimensions as possible (adjacent dimensions that
/// broadcast alike are merged), so `[C, H, W] * [C, 1, 1]` runs as `C` contiguous runs of `H * W`.
struct BinaryLayer: Layer {
    let operation: BinaryOperation
    let outputShape: [Int]
    /// Merged loop dimensions and each input's stride along them (0 where it broadcasts).
    let dims: [Int]
    let aStrides: [Int]
    let bStrides: [Int]
    let aCount: Int
    let bCount: Int
    var canRunInPlace: Bool { true }

    init(node: String, operation: BinaryOperation, shapes: [[Int]]) throws {
        let a = shapes[0], b = shapes[1]
        let rank = max(a.count, b.count)
        let paddedA = Array(repeating: 1, count: rank - a.count) + a
        let paddedB = Array(repeating: 1, count: rank - b.count) + b
        var out: [Int] = []
        for (x, y) in zip(paddedA, paddedB) {
            guard x == y || x == 1 || y == 1 else {
                throw ModelError.shapeMismatch(node: node, reason: "\(operation.rawValue) cannot broadcast \(a) with \(b)")
            }
            out.append(max(x, y))
        }
        self.operation = operation
        outputShape = out
        aCount = a.elementCount
        bCount = b.elementCount
        (dims, aStrides, bStrides) = mergedBroadcastLoops(shape: out, inputs: [paddedA, paddedB])
    }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        run(inputs, output, batch: batch)
    }

    /// One row of `inner` outputs; a stride of 0 broadcasts that input's first value. The operator is switched
    /// on per row so each loop is a plain, vectorisable one.
    @inline(__always)
    private func computeRow(_ x: UnsafePointer<Float>, _ sa: Int, _ z: UnsafePointer<Float>, _ sb: Int, _ y: UnsafeMutablePointer<Float>, _ inner: Int) {
        @inline(__always) func each(_ f: (Float, Float) -> Float) {
            if sa == 1, sb == 1 {
                for i in 0..<inner { y[i] = f(x[i], z[i]) }
            } else if sa == 1 {
                let v = z[0]
                for i in 0..<inner { y[i] = f(x[i], v) }
            } else if sb == 1 {
                let u = x[0]
                for i in 0..<inner { y[i] = f(u, z[i]) }
            } else {
                y.update(repeating: f(x[0], z[0]), count: inner)
            }
        }
        switch operation {
        case .add: each(+)
        case .sub: each(-)
        case .mul: each(*)
        case .div: each(/)
        }
    }

    /// Rows of the innermost merged dimension, split over the threads; each piece finds its start offsets from
    /// its first row and then steps the outer loops like an odometer.
    @inline(__always)
    private func run(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int) {
        let outCount = outputShape.elementCount
        let last = dims.count - 1
        let inner = dims[last], sa = aStrides[last], sb = bStrides[last]
        let rows = outCount / inner
        let a0 = inputs[0], b0 = inputs[1]
        parallelFor(batch * rows, grain: max(1, 16384 / inner)) { pieceRows in
            var index = [Int](repeating: 0, count: dims.count)
            var n = pieceRows.lowerBound / rows, row = pieceRows.lowerBound % rows
            var offsetA = 0, offsetB = 0
            func seek() {
                var r = row
                offsetA = 0; offsetB = 0
                for d in stride(from: last - 1, through: 0, by: -1) {
                    index[d] = r % dims[d]
                    r /= dims[d]
                    offsetA += index[d] * aStrides[d]
                    offsetB += index[d] * bStrides[d]
                }
            }
            seek()
            for _ in pieceRows {
                let x = a0 + n * aCount + offsetA, z = b0 + n * bCount + offsetB
                computeRow(x, sa, z, sb, output + n * outCount + row * inner, inner)
                row += 1
                if row == rows {
                    n += 1; row = 0
                    seek()
                } else {
                    stepOuterLoops(&index, dims) { d, steps in
                        offsetA += aStrides[d] * steps
                        offsetB += bStrides[d] * steps
                    }
                }
            }
        }
    }
}

/// Loop dimensions for reading `inputs` (each padded to the rank of `shape`, broadcasting where a dimension
/// is 1) while writing `shape` in order: size-1 dimensions are dropped and neighbours whose strides chain in
/// every input are merged. Always at least one dimension.
func mergedBroadcastLoops(shape: [Int], inputs: [[Int]]) -> (dims: [Int], strides: [Int], [Int]) {
    // Contiguous strides of each input, 0 along broadcast dimensions.
    let strides: [[Int]] = inputs.map { dims in
        var result = [Int](repeating: 0, count: dims.count)
        var stride = 1
        for d in dims.indices.reversed() {
            result[d] = dims[d] == 1 ? 0 : stride
            stride *= dims[d]
        }
        return result
    }
    var dims: [Int] = []
    var merged: [[Int]] = inputs.map { _ in [] }
    for d in shape.indices where shape[d] > 1 {
        if let last = dims.last, strides.indices.allSatisfy({ merged[$0].last! == strides[$0][d] * shape[d] }) {
            dims[dims.count - 1] = last * shape[d]
            for i in strides.indices { merged[i][merged[i].count - 1] = strides[i][d] }
            continue
        }
        dims.append(shape[d])
        for i in strides.indices { merged[i].append(strides[i][d]) }
    }
    if dims.isEmpty { return ([1], [0], [0]) }
    return (dims, merged[0], merged.count > 1 ? merged[1] : merged[0])
}

/// `x op scalar` (the one-input form of `add`/`sub`/`mul`/`div`).
struct ScalarLayer: Layer {
    let operation: BinaryOperation
    let scalar: Float
    let outputShape: [Int]
    var canRunInPlace: Bool { true }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        let x = inputs[0], s = scalar
        let count = batch * outputShape.elementCount
        switch operation {
        case .add: for i in 0..<count { output[i] = x[i] + s }
        case .sub: for i in 0..<count { output[i] = x[i] - s }
        case .mul: for i in 0..<count { output[i] = x[i] * s }
        case .div: for i in 0..<count { output[i] = x[i] / s }
        }
    }
}

/// A parameter read in forward (class token, position embedding, layer scale): the same per-sample tensor
/// written for every sample of the batch.
struct ConstantLayer: Layer {
    let value: FloatBuffer
    let outputShape: [Int]

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        for n in 0..<batch { (output + n * value.count).update(from: value.pointer, count: value.count) }
    }
}

/// Per-channel affine transform (an inference-mode BatchNorm that could not be folded into a conv/linear).
/// The channel axis is the first per-sample dimension, as in PyTorch's BatchNorm1d/2d.
struct ChannelAffineLayer: Layer {
    let scale: [Float]
    let shift: [Float]
    let outputShape: [Int]
    /// `.channelsLast`: the input and output are `[H, W, C]` (set by the channels-last pass).
    var layout: TensorLayout = .planar { didSet { remakeBackend() } }
    /// An activation that read only this layer's output (DenseNet's BatchNorm + ReLU), fused by the pass.
    var activation: ActivationLayer.Function? { didSet { remakeBackend() } }
    var canRunInPlace: Bool { true }
    /// oneDNN's kernel (conv's choice, as for pooling), or the loops below.
    var backend: ConvBackend = ConvBackend.preferred { didSet { remakeBackend() } }
    /// oneDNN's handle, for no activation or ReLU (the ones its batch normalization fuses).
    private(set) var onednn: OneDNNKernel?

    init(scale: [Float], shift: [Float], outputShape: [Int]) {
        self.scale = scale
        self.shift = shift
        self.outputShape = outputShape
        remakeBackend()
    }

    private mutating func remakeBackend() {
        let channels = outputShape.first ?? 0
        onednn = backend != .onednn || !(activation == nil || activation == .relu) || channels == 0 ? nil
            : OneDNNKernel.channelAffine(channels: channels, positions: outputShape.elementCount / channels,
                                  channelsLast: layout == .channelsLast, scale: scale, shift: shift, relu: activation == .relu)
    }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        if let onednn, onednn.run(inputs[0], output, batch: batch) { return }
        let channels = outputShape[0]
        let inner = outputShape.elementCount / channels
        let source = inputs[0]
        // ReLU inline (DenseNet's case); any other activation runs over each block of positions while it is hot.
        let relu = activation == .relu
        let after = relu ? nil : activation
        scale.withUnsafeBufferPointer { scale in
            shift.withUnsafeBufferPointer { shift in
                let s = scale.baseAddress!, t = shift.baseAddress!
                if layout == .channelsLast {
                    parallelFor(batch * inner, grain: max(1, 8192 / channels)) { positions in
                        let block = max(1, 4096 / channels)
                        for first in stride(from: positions.lowerBound, to: positions.upperBound, by: block) {
                            let last = min(first + block, positions.upperBound)
                            for p in first..<last {
                                affineRow(source + p * channels, output + p * channels, s, t, count: channels, relu: relu)
                            }
                            after?.apply(output + first * channels, output + first * channels, count: (last - first) * channels)
                        }
                    }
                    return
                }
                parallelFor(batch * channels, grain: max(1, 8192 / inner)) { planes in
                    for plane in planes {
                        let c = plane % channels
                        let x = source + plane * inner, y = output + plane * inner
                        let a = s[c], b = t[c]
                        if relu {
                            for i in 0..<inner { y[i] = max(x[i] * a + b, 0) }
                        } else {
                            for i in 0..<inner { y[i] = x[i] * a + b }
                        }
                        after?.apply(y, y, count: inner)
                    }
                }
            }
        }
    }
}

/// `y[c] = x[c] * s[c] + t[c]` (then ReLU) over one position's channels: the channels-last row of both affine layers.
@inline(__always)
private func affineRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ s: UnsafePointer<Float>,
                       _ t: UnsafePointer<Float>, count: Int, relu: Bool) {
    if relu {
        for c in 0..<count { y[c] = max(x[c] * s[c] + t[c], 0) }
    } else {
        for c in 0..<count { y[c] = x[c] * s[c] + t[c] }
    }
}

/// `ChannelAffineLayer` over a channels-last concat along the channels, read from the concat's parts: what
/// the channels-last pass makes of DenseNet's `batch_norm(concat(features))`.
struct ConcatChannelAffineLayer: Layer {
    /// Channels each input contributes, in order.
    let parts: [Int]
    let affine: ChannelAffineLayer
    var outputShape: [Int] { affine.outputShape }

    /// Nil unless `concat` joins channels-last `[H, W, C]` values along C into what `affine` reads.
    init?(concat: ConcatLayer, affine: ChannelAffineLayer) {
        let shape = concat.outputShape
        guard affine.layout == .channelsLast, shape.count == 3, concat.axis == 2, concat.outer == shape[0] * shape[1],
              affine.outputShape == [shape[2], shape[0], shape[1]] else { return nil }
        parts = concat.chunks
        self.affine = affine
    }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        let channels = outputShape[0]
        let positions = batch * outputShape.elementCount / channels
        let relu = affine.activation == .relu
        let after = relu ? nil : affine.activation
        affine.scale.withUnsafeBufferPointer { scale in
            affine.shift.withUnsafeBufferPointer { shift in
                parallelFor(positions, grain: max(1, 8192 / channels)) { range in
                    // Blocks of positions small enough that the output rows stay in cache across the parts.
                    let block = max(1, 4096 / channels)
                    for first in stride(from: range.lowerBound, to: range.upperBound, by: block) {
                        let last = min(first + block, range.upperBound)
                        var offset = 0
                        for (input, width) in zip(inputs, parts) {
                            let s = scale.baseAddress! + offset, t = shift.baseAddress! + offset
                            for p in first..<last {
                                affineRow(input + p * width, output + p * channels + offset, s, t, count: width, relu: relu)
                            }
                            offset += width
                        }
                        after?.apply(output + first * channels, output + first * channels, count: (last - first) * channels)
                    }
                }
            }
        }
    }
}

/// Advances `index` to the next position of the outer loop dimensions of `dims` (every one but the innermost,
/// an odometer), calling `move(d, steps)` for each dimension whose position changed by `steps` (+1, or back to 0),
/// so the caller moves its strided offsets along.
@inline(__always)
func stepOuterLoops(_ index: inout [Int], _ dims: [Int], _ move: (_ dimension: Int, _ steps: Int) -> Void) {
    var d = dims.count - 2
    while d >= 0 {
        index[d] += 1
        move(d, 1)
        if index[d] < dims[d] { return }
        move(d, -dims[d])
        index[d] = 0
        d -= 1
    }
}
