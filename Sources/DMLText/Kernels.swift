import CDMLBlas
import Foundation

/// The element-wise pieces of the encoder. Matrices are row-major; GEMMs go through the BLAS seam.
enum Kernels {
    /// `c[m, n] = a[m, k] · w[k, n] + bias[n]`: a PyTorch `Linear` whose weight was stored transposed at load
    /// (`[in, out]`); OpenBLAS packs that layout faster, about 15% at caption lengths.
    static func linear(_ a: UnsafePointer<Float>, rows m: Int, inFeatures k: Int, weight: UnsafePointer<Float>,
                       bias: UnsafePointer<Float>, outFeatures n: Int, into c: UnsafeMutablePointer<Float>) {
        for r in 0..<m { (c + r * n).update(from: bias, count: n) }
        dml_sgemm(0, 0, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), weight, Int32(n), 1, c, Int32(n))
    }

    /// The transpose of a row-major `[rows, columns]` matrix.
    static func transposed(_ x: [Float], rows: Int, columns: Int) -> [Float] {
        var out = [Float](repeating: 0, count: x.count)
        for r in 0..<rows {
            for c in 0..<columns { out[c * rows + r] = x[r * columns + c] }
        }
        return out
    }

    /// In place: `x[r] = LayerNorm(x[r] + residual[r])` over rows of width `n` (two-pass mean and variance).
    static func addLayerNorm(_ x: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>?, rows: Int, width n: Int,
                             weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, epsilon: Float) {
        for r in 0..<rows {
            let row = x + r * n
            if let residual {
                let add = residual + r * n
                for j in 0..<n { row[j] += add[j] }
            }
            var sum: Float = 0
            for j in 0..<n { sum += row[j] }
            let mean = sum / Float(n)
            var squares: Float = 0
            for j in 0..<n { let d = row[j] - mean; squares += d * d }
            let inverse = 1 / (squares / Float(n) + epsilon).squareRoot()
            for j in 0..<n { row[j] = (row[j] - mean) * inverse * weight[j] + bias[j] }
        }
    }

    /// In place GELU as BERT's `gelu`: `x · Φ(x) = 0.5 x (1 + erf(x / √2))`. erf is a rational approximation
    /// (absolute error below 4e-7 in float, against 6e-8 for libm's `erff`) written without calls so the loop
    /// vectorises; libm's `erff` took a sixth of the encoder's time.
    static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count {
            let v = x[i]
            x[i] = 0.5 * v * (1 + erf(v * 0.70710678118654752))
        }
    }

    /// erf(z) ≈ z·P(z²)/Q(z²) on [-4, 4] (least-squares fit to erf, weighted by 1/Q); |erf| > 1 - 2e-8 beyond.
    @inline(__always)
    static func erf(_ value: Float) -> Float {
        let z = min(max(value, -4), 4)
        let z2 = z * z
        var p: Float = 2.0272865729475953e-06
        p = p * z2 + 0.0002861879973596014
        p = p * z2 + 0.0038447062794883216
        p = p * z2 + 0.052981763018867464
        p = p * z2 + 0.19230819351724018
        p = p * z2 + 1.1283790461431706
        var q: Float = 3.792855606667145e-05
        q = q * z2 + 0.0011810574145033805
        q = q * z2 + 0.015124428893252462
        q = q * z2 + 0.11487953582775484
        q = q * z2 + 0.5037605983866931
        q = q * z2 + 1
        return z * p / q
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

    /// In place L2 normalisation of a vector (a zero vector stays zero).
    static func l2Normalize(_ x: UnsafeMutablePointer<Float>, count: Int) {
        var squares: Float = 0
        for j in 0..<count { squares += x[j] * x[j] }
        guard squares > 0 else { return }
        let inverse = 1 / squares.squareRoot()
        for j in 0..<count { x[j] *= inverse }
    }
}
