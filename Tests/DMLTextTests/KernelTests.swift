import Foundation
import Testing
@testable import DMLText

/// The encoder's hand-written pieces against libm and direct formulas.
@Suite struct KernelTests {
    /// The dense layers (oneDNN's packed matmul where available, else BLAS) against a naive double-precision
    /// `x Wᵀ + b`, with and without the fused exact-erf GELU, at several row counts sharing one handle.
    @Test(arguments: [false, true]) func denseLayerMatchesNaiveLinear(gelu: Bool) {
        let k = 48, n = 40
        var seed: UInt64 = 7
        func next() -> Float {  // a fixed LCG in [-1, 1)
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Float(seed >> 40) / Float(1 << 23) - 1
        }
        let weight = (0..<n * k).map { _ in next() }, bias = (0..<n).map { _ in next() }
        let layer = DenseLayer(weight: weight, bias: bias, inFeatures: k, outFeatures: n, gelu: gelu)
        for rows in [1, 3, 17, 64, 3] {
            let x = (0..<rows * k).map { _ in next() * 2 }
            var y = [Float](repeating: .nan, count: rows * n)
            x.withUnsafeBufferPointer { xs in y.withUnsafeMutableBufferPointer { layer.apply(xs.baseAddress!, rows: rows, into: $0.baseAddress!) } }
            var worst = 0.0
            for r in 0..<rows {
                for o in 0..<n {
                    var v = Double(bias[o])
                    for i in 0..<k { v += Double(x[r * k + i]) * Double(weight[o * k + i]) }
                    if gelu { v = 0.5 * v * (1 + erf(v / 2.0.squareRoot())) }
                    let error = abs(Double(y[r * n + o]) - v)
                    worst = error.isNaN ? .infinity : max(worst, error)  // NaN must fail
                }
            }
            #expect(worst < 2e-5, "rows \(rows) gelu \(gelu): max error \(worst)")
        }
    }

    @Test func layerNormGivesZeroMeanUnitVariance() {
        var x: [Float] = [1, 2, 3, 4, 10, 10, 10, 10.5]
        let residual: [Float] = [1, 1, 1, 1, 0, 0, 0, 0]
        Kernels.addLayerNorm(&x, residual: residual, rows: 2, width: 4, weight: [1, 1, 1, 1], bias: [0, 0, 0, 0], epsilon: 0)
        for row in 0..<2 {
            let values = x[(row * 4)..<(row * 4 + 4)]
            let mean = values.reduce(0, +) / 4
            let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 4
            #expect(abs(mean) < 1e-6 && abs(variance - 1) < 1e-5)
        }
    }

    @Test func softmaxRowsSumToOneAndKeepOrder() {
        var x: [Float] = [1, 2, 3, 1000, 1000, -1000]
        Kernels.softmax(&x, rows: 2, width: 3, stride: 3, scale: 0.5)
        #expect(abs(x[0...2].reduce(0, +) - 1) < 1e-6 && x[0] < x[1] && x[1] < x[2])
        #expect(abs(x[3] - 0.5) < 1e-6 && x[5] == 0)
    }

    @Test func halfRoundingMatchesIEEE() {
        #expect(roundToHalf(1) == 1)
        #expect(roundToHalf(1 + 1 / 4096) == 1)  // below half an ulp of half (2^-11)
        #expect(roundToHalf(1 + 3 / 4096) == Float(1) + Float(1) / 1024)
        #expect(roundToHalf(65504) == 65504 && roundToHalf(70000) == .infinity)
        #expect(roundToHalf(-2.5e-8) == -0 || roundToHalf(-2.5e-8) == 0)
        #expect(roundToHalf(6e-8) == 5.960464477539063e-08)  // smallest subnormal half
    }
}
