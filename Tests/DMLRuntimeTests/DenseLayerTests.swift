import Foundation
import Testing
@testable import DMLRuntime

/// The linear layer and self-attention on both backends against plain double-precision loops written here
/// (oneDNN picks a brgemm matmul on AVX-512 and a 1x1 convolution on AVX2; attention splits heads over threads).
@Suite struct DenseLayerTests {
    static let backends: [ConvBackend] = ConvBackend.onednnAvailable ? [.reference, .onednn] : [.reference]

    /// Largest |a - b| / max(1, |b|); infinity when a value is NaN or the counts differ.
    static func relativeError(_ a: [Float], _ b: [Double]) -> Double {
        guard a.count == b.count, !a.isEmpty else { return .infinity }
        var worst = 0.0
        for (x, y) in zip(a, b) {
            let error = abs(Double(x) - y) / max(1, abs(y))
            guard !error.isNaN else { return .infinity }
            worst = max(worst, error)
        }
        return worst
    }

    static func run(_ layer: some Layer, input: [Float], batch: Int, outputCount: Int) -> [Float] {
        var output = [Float](repeating: .nan, count: outputCount)
        var workspace = [Float](repeating: .nan, count: max(1, layer.workspaceCount(maxBatch: batch)))
        input.withUnsafeBufferPointer { i in
            output.withUnsafeMutableBufferPointer { o in
                workspace.withUnsafeMutableBufferPointer { layer.forward([i.baseAddress!], o.baseAddress!, batch: batch, workspace: $0.baseAddress!) }
            }
        }
        return output
    }

    /// x [rows, k] W^T [k, n] + b in double.
    static func linear(_ x: [Float], rows: Int, _ w: [Float], _ b: [Float], k: Int, n: Int) -> [Double] {
        var y = [Double](repeating: 0, count: rows * n)
        for r in 0..<rows {
            for j in 0..<n {
                var sum = Double(b[j])
                for i in 0..<k { sum += Double(x[r * k + i]) * Double(w[j * k + i]) }
                y[r * n + j] = sum
            }
        }
        return y
    }

    @Test("linear (+ GELU) matches double-precision loops", arguments: backends)
    func linearLayer(_ backend: ConvBackend) throws {
        let (k, n) = (37, 29)
        let weight = Conv2dTests.values(n * k, seed: 11), bias = Conv2dTests.values(n, seed: 12)
        for (tokens, batch) in [(1, 1), (7, 3), (67, 2)] {
            for gelu in [false, true] {
                var layer = try LinearLayer(node: "fc", inputShape: [tokens, k], weight: FloatBuffer(weight), weightShape: [n, k], bias: FloatBuffer(bias))
                layer.backend = backend
                if gelu { layer.activation = .geluErf }
                #expect((layer.projection.onednn != nil) == (backend == .onednn))
                let input = Conv2dTests.values(batch * tokens * k, seed: UInt64(tokens))
                var expected = Self.linear(input, rows: batch * tokens, weight, bias, k: k, n: n)
                if gelu { expected = expected.map { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) } }
                let output = Self.run(layer, input: input, batch: batch, outputCount: batch * tokens * n)
                let error = Self.relativeError(output, expected)
                #expect(error <= 1e-5, "\(backend) rows \(batch * tokens) gelu \(gelu): max error \(error)")
            }
        }
    }

    @Test("self-attention matches double-precision loops", arguments: backends)
    func selfAttention(_ backend: ConvBackend) throws {
        for (tokens, width, heads, batch) in [(5, 12, 3, 1), (19, 16, 2, 3), (50, 24, 4, 2)] {
            let inWeight = Conv2dTests.values(3 * width * width, seed: 21), inBias = Conv2dTests.values(3 * width, seed: 22)
            let outWeight = Conv2dTests.values(width * width, seed: 23), outBias = Conv2dTests.values(width, seed: 24)
            let layer = try SelfAttentionLayer(
                node: "attn", inputShape: [tokens, width], heads: heads, inWeight: (FloatBuffer(inWeight), [3 * width, width]),
                inBias: FloatBuffer(inBias), outWeight: (FloatBuffer(outWeight), [width, width]), outBias: FloatBuffer(outBias), backend: backend)
            #expect((layer.onednnHeads != nil) == (backend == .onednn))
            let input = Conv2dTests.values(batch * tokens * width, seed: UInt64(tokens)).map { $0 * 2 }
            // The reference: project, attend per sample and head, project out.
            let qkv = Self.linear(input, rows: batch * tokens, inWeight, inBias, k: width, n: 3 * width)
            let dh = width / heads
            var context = [Float](repeating: 0, count: batch * tokens * width)
            for s in 0..<batch {
                for h in 0..<heads {
                    func at(_ t: Int, _ part: Int, _ c: Int) -> Double { qkv[(s * tokens + t) * 3 * width + part * width + h * dh + c] }
                    for i in 0..<tokens {
                        var scores = (0..<tokens).map { j in (0..<dh).reduce(0.0) { $0 + at(i, 0, $1) * at(j, 1, $1) } / Double(dh).squareRoot() }
                        let top = scores.max()!
                        scores = scores.map { exp($0 - top) }
                        let total = scores.reduce(0, +)
                        for c in 0..<dh {
                            let value = (0..<tokens).reduce(0.0) { $0 + scores[$1] / total * at($1, 2, c) }
                            context[(s * tokens + i) * width + h * dh + c] = Float(value)
                        }
                    }
                }
            }
            let expected = Self.linear(context, rows: batch * tokens, outWeight, outBias, k: width, n: width)
            let output = Self.run(layer, input: input, batch: batch, outputCount: batch * tokens * width)
            let error = Self.relativeError(output, expected)
            #expect(error <= 1e-4, "\(backend) T\(tokens) D\(width) H\(heads) B\(batch): max error \(error)")
        }
    }
}
