import DMLRuntime
import Foundation

/// The encoder's row-wise pieces that the runtime has no layer for (residual add, attention softmax);
/// LayerNorm itself, GELU, L2 and the dense layers are the runtime's. Matrices are row-major.
enum Kernels {
    /// In place: `x[r] = LayerNorm(x[r] + residual[r])` over rows of width `n` (the runtime's LayerNorm).
    static func addLayerNorm(_ x: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>?, rows: Int, width n: Int,
                             weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, epsilon: Float) {
        if let residual {
            for i in 0..<rows * n { x[i] += residual[i] }
        }
        layerNormRows(x, x, rows: rows, width: n, weight: weight, bias: bias, epsilon: epsilon)
    }

    /// In place, row-wise softmax of `rows` rows of width `n` (row stride `stride`), each first scaled by `scale`.
    static func softmax(_ x: UnsafeMutablePointer<Float>, rows: Int, width n: Int, stride: Int, scale: Float) {
        for r in 0..<rows {
            let row = x + r * stride
            var peak = -Float.infinity
            for j in 0..<n { peak = max(peak, row[j]) }
            var sum: Float = 0
            for j in 0..<n { let e = expf((row[j] - peak) * scale); row[j] = e; sum += e }
            let inverse = 1 / sum
            for j in 0..<n { row[j] *= inverse }
        }
    }
}
