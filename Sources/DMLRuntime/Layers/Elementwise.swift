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
                for i in 0..<count { let v = x[i]; y[i] = 0.5 * v * (1 + erf(v * 0.70710678118654752)) }
            case .geluTanh:
                // PyTorch's approximate="tanh": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
                for i in 0..<count {
                    let v = x[i]
                    y[i] = 0.5 * v * (1 + Foundation.tanh(0.79788456080286536 * (v + 0.044715 * v * v * v)))
                }
            case .silu:
                for i in 0..<count { let v = x[i]; y[i] = v / (1 + exp(-v)) }
            case .sigmoid:
                for i in 0..<count { y[i] = 1 / (1 + exp(-x[i])) }
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
    }

    let function: Function
    let outputShape: [Int]
    var canRunInPlace: Bool { true }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        function.apply(inputs[0], output, count: batch * outputShape.elementCount)
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
        switch operation {
        case .add: run(inputs, output, batch: batch, +)
        case .sub: run(inputs, output, batch: batch, -)
        case .mul: run(inputs, output, batch: batch, *)
        case .div: run(inputs, output, batch: batch, /)
        }
    }

    @inline(__always)
    private func run(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, _ f: (Float, Float) -> Float) {
        let outCount = outputShape.elementCount
        let inner = dims[dims.count - 1], sa = aStrides[dims.count - 1], sb = bStrides[dims.count - 1]
        let rows = outCount / inner
        var index = [Int](repeating: 0, count: dims.count)
        for n in 0..<batch {
            let a = inputs[0] + n * aCount, b = inputs[1] + n * bCount
            var y = output + n * outCount
            var offsetA = 0, offsetB = 0
            for i in index.indices { index[i] = 0 }
            for _ in 0..<rows {
                let x = a + offsetA, z = b + offsetB
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
                y += inner
                // Odometer over the outer loop dimensions.
                var d = dims.count - 2
                while d >= 0 {
                    index[d] += 1
                    offsetA += aStrides[d]
                    offsetB += bStrides[d]
                    if index[d] < dims[d] { break }
                    offsetA -= aStrides[d] * dims[d]
                    offsetB -= bStrides[d] * dims[d]
                    index[d] = 0
                    d -= 1
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
    var canRunInPlace: Bool { true }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        let channels = outputShape[0]
        let inner = outputShape.elementCount / channels
        var x = inputs[0]
        var y = output
        for _ in 0..<batch {
            for c in 0..<channels {
                let s = scale[c], t = shift[c]
                for i in 0..<inner { y[i] = x[i] * s + t }
                x += inner
                y += inner
            }
        }
    }
}
