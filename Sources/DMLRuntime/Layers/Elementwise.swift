import Foundation

/// Elementwise activations (and no-op ops such as dropout at inference), run in place when possible.
struct ActivationLayer: Layer {
    /// The function applied to each element.
    enum Function: Sendable, Equatable {
        case identity, relu, leakyRelu(Float), geluErf, geluTanh, silu, sigmoid, tanh
    }

    let function: Function
    let outputShape: [Int]
    var canRunInPlace: Bool { true }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        let x = inputs[0]
        let count = batch * outputShape.elementCount
        switch function {
        case .identity:
            copyIfNeeded(x, output, count: count)
        case .relu:
            for i in 0..<count { output[i] = max(x[i], 0) }
        case let .leakyRelu(slope):
            for i in 0..<count { let v = x[i]; output[i] = v >= 0 ? v : v * slope }
        case .geluErf:
            for i in 0..<count { let v = x[i]; output[i] = 0.5 * v * (1 + erf(v * 0.70710678118654752)) }
        case .geluTanh:
            // PyTorch's approximate="tanh": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
            for i in 0..<count {
                let v = x[i]
                output[i] = 0.5 * v * (1 + Foundation.tanh(0.79788456080286536 * (v + 0.044715 * v * v * v)))
            }
        case .silu:
            for i in 0..<count { let v = x[i]; output[i] = v / (1 + exp(-v)) }
        case .sigmoid:
            for i in 0..<count { output[i] = 1 / (1 + exp(-x[i])) }
        case .tanh:
            for i in 0..<count { output[i] = Foundation.tanh(x[i]) }
        }
    }
}

/// Elementwise sum of two same-shaped inputs (residual connections).
struct AddLayer: Layer {
    let outputShape: [Int]
    var canRunInPlace: Bool { true }

    init(node: String, shapes: [[Int]]) throws {
        guard shapes.count == 2 else { throw ModelError.shapeMismatch(node: node, reason: "add takes two inputs, got \(shapes.count)") }
        guard shapes[0] == shapes[1] else {
            throw ModelError.shapeMismatch(node: node, reason: "add needs equal shapes, got \(shapes[0]) and \(shapes[1]) (no broadcasting)")
        }
        outputShape = shapes[0]
    }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        let a = inputs[0], b = inputs[1]
        for i in 0..<(batch * outputShape.elementCount) { output[i] = a[i] + b[i] }
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
