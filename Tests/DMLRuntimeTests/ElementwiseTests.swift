import Foundation
import Testing
@testable import DMLRuntime

/// The runtime's own exp and erf (vectorisable replacements for libm) against Double-precision libm.
@Suite("Elementwise kernels")
struct ElementwiseTests {
    @Test("fastExp is within 3e-7 relative of exp on [-87, 88], and clamps outside")
    func exponential() {
        var worst = 0.0
        for i in -870_000...880_000 {
            let x = Float(i) / 10_000
            let relative = abs(Double(fastExp(x)) / Foundation.exp(Double(x)) - 1)
            worst = relative.isNaN ? .infinity : max(worst, relative)
        }
        #expect(worst < 3e-7, "max relative error \(worst)")
        #expect(fastExp(-1000) >= 0 && fastExp(-1000) < 1e-37 && fastExp(1000).isFinite)
    }

    @Test("fastErf is within 5e-7 of erf on [-8, 8] and odd")
    func errorFunction() {
        var worst = 0.0
        for i in -80_000...80_000 {
            let x = Float(i) / 10_000
            let error = abs(Double(fastErf(x)) - Foundation.erf(Double(x)))
            worst = error.isNaN ? .infinity : max(worst, error)
            #expect(fastErf(-x) == -fastErf(x))
        }
        #expect(worst < 5e-7, "max abs error \(worst)")
        #expect(fastErf(.infinity) == 1 && fastErf(-.infinity) == -1)
    }

    @Test("activations match Double-precision formulas", arguments: [
        ActivationLayer.Function.geluErf, .geluTanh, .silu, .sigmoid, .hardswish, .hardsigmoid, .clamp(low: -1, high: 0.5),
    ])
    func activations(_ function: ActivationLayer.Function) {
        let x = (-2000...2000).map { Float($0) / 200 }  // [-10, 10]
        var y = [Float](repeating: .nan, count: x.count)
        x.withUnsafeBufferPointer { i in y.withUnsafeMutableBufferPointer { function.apply(i.baseAddress!, $0.baseAddress!, count: x.count) } }
        var worst = 0.0
        for (v, out) in zip(x.map(Double.init), y) {
            let want: Double
            switch function {
            case .geluErf: want = 0.5 * v * (1 + Foundation.erf(v / 2.0.squareRoot()))
            case .geluTanh: want = 0.5 * v * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (v + 0.044715 * v * v * v)))
            case .silu: want = v / (1 + Foundation.exp(-v))
            case .sigmoid: want = 1 / (1 + Foundation.exp(-v))
            case .hardswish: want = v * min(max(v + 3, 0), 6) / 6
            case .hardsigmoid: want = min(max(v + 3, 0), 6) / 6
            default: want = min(max(v, -1), 0.5)
            }
            let error = abs(Double(out) - want) / max(1, abs(want))
            worst = error.isNaN ? .infinity : max(worst, error)
        }
        #expect(worst < 2e-6, "\(function): max error \(worst)")
    }
}
