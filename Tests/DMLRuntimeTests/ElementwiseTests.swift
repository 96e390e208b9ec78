import Foundation
import Testing
@testable import DMLRuntime
import CDMLDnnl

/// The runtime's activation loops (`dml_activation`, each instruction-set path) against Double-precision libm.
@Suite("Elementwise kernels")
struct ElementwiseTests {
    static let kinds: [(dml_activation_kind, String, @Sendable (Double) -> Double)] = [
        (DML_ACTIVATION_SILU, "silu", { $0 / (1 + Foundation.exp(-$0)) }),
        (DML_ACTIVATION_SIGMOID, "sigmoid", { 1 / (1 + Foundation.exp(-$0)) }),
        (DML_ACTIVATION_GELU_ERF, "gelu", { 0.5 * $0 * (1 + Foundation.erf($0 / 2.0.squareRoot())) }),
        (DML_ACTIVATION_GELU_TANH, "gelu_tanh", { v in 0.5 * v * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (v + 0.044715 * v * v * v))) }),
    ]

    @Test("every SIMD path the CPU has matches libm within 1e-6 over [-100, 100], in place, at every tail length",
          arguments: ["avx512", "avx2", "scalar"])
    func paths(_ path: String) throws {
        let x = (-1_000_000...1_000_000).map { Float($0) / 10_000 } + [1000, -1000, 88.5, -88.5, 0, -0.0]
        for (kind, name, reference) in Self.kinds {
            var y = [Float](repeating: .nan, count: x.count)
            let status = x.withUnsafeBufferPointer { i in y.withUnsafeMutableBufferPointer { dml_activation_on(path, kind, i.baseAddress!, $0.baseAddress!, i.count) } }
            if status != 0 {
                #expect(path != "scalar", "the scalar path always exists")
                return  // this CPU lacks the path
            }
            var worst = 0.0
            for (v, out) in zip(x, y) {
                let want = reference(Double(v))
                let error = abs(Double(out) - want) / max(1, abs(want))
                worst = error.isNaN ? .infinity : max(worst, error)
            }
            #expect(worst < 1e-6, "\(path) \(name): max error \(worst)")
            // In place and at every length up to two vectors past a block: the same values as out of place.
            for n in 0...40 {
                var buffer = Array(x[500_000..<(500_000 + n)])
                buffer.withUnsafeMutableBufferPointer { _ = dml_activation_on(path, kind, $0.baseAddress!, $0.baseAddress!, n) }
                #expect(buffer == Array(y[500_000..<(500_000 + n)]), "\(path) \(name) in place, n = \(n)")
            }
            var special: [Float] = [.nan, 1, .nan, -1]
            special.withUnsafeMutableBufferPointer { _ = dml_activation_on(path, kind, $0.baseAddress!, $0.baseAddress!, 4) }
            #expect(special[0].isNaN && special[2].isNaN && special[1].isFinite && special[3].isFinite, "\(path) \(name): NaN stays NaN")
        }
    }

    @Test("the default path is the widest one this CPU has, and an unknown path is refused")
    func defaultPath() {
        let path = String(cString: dml_activation_path())
        #expect(["avx512", "avx2", "scalar"].contains(path))
        var y: Float = 0
        var x: Float = 1
        #expect(dml_activation_on("neon", DML_ACTIVATION_SILU, &x, &y, 1) == -1)
        if ProcessInfo.processInfo.environment["DMLKIT_SIMD"] == nil, path != "avx512" {
            #expect(dml_activation_on("avx512", DML_ACTIVATION_SILU, &x, &y, 1) == -1, "the CPU has a wider path than \(path)")
        }
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
