import Foundation
import Testing
@testable import DMLText

/// The encoder's hand-written pieces against libm and direct formulas.
@Suite struct KernelTests {
    @Test func erfApproximationStaysWithin4e7OfLibm() {
        var worst: Float = 0
        for i in -80_000...80_000 {
            let x = Float(i) / 10_000  // [-8, 8]
            let error = abs(Kernels.erf(x) - Float(erf(Double(x))))
            worst = error.isNaN ? .infinity : max(worst, error)  // NaN must fail, not be skipped by max
        }
        #expect(worst < 4e-7)
        #expect(Kernels.erf(.infinity) > 0.99999 && Kernels.erf(-.infinity) < -0.99999)
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
