import Foundation
import Testing
@testable import DMLRuntime

/// Each op group against PyTorch on hand-written graphs (`Tests/Fixtures/runtime/make_op_fixtures.py`,
/// written without the exporter): max abs error at most 1e-5 of the output's scale, NaN failing.
@Suite("Op parity with PyTorch")
struct OpParityTests {
    static let cases = ["activations", "broadcast", "pooling", "shapes", "vit", "tokens", "layouts"]

    @Test("whole batch and each sample alone match PyTorch", arguments: cases)
    func matches(_ name: String) throws {
        let golden = try Fixtures.golden("op-\(name)")
        let model = try EmbeddingModel(contentsOf: Fixtures.url("op-\(name).safetensors"))
        #expect(golden.count == 3)
        let scale = max(1, golden.output.map { abs($0) }.max() ?? .nan)
        let all = try model.forward(golden.input, count: golden.count)
        let error = maxAbsError(all, golden.output)
        #expect(error <= 1e-5 * scale, "op-\(name) batch \(golden.count): max abs error \(error) (scale \(scale))")
        let inSize = model.inputSize, outSize = model.dimension
        for n in 0..<golden.count {
            let one = try model.forward(Array(golden.input[(n * inSize)..<((n + 1) * inSize)]), count: 1)
            let expected = Array(golden.output[(n * outSize)..<((n + 1) * outSize)])
            #expect(maxAbsError(one, expected) <= 1e-5 * scale, "op-\(name) sample \(n)")
        }
    }

    @Test("activations after a conv run in its epilogue")
    func fusedActivations() throws {
        let model = try EmbeddingModel(contentsOf: Fixtures.url("op-activations.safetensors"))
        #expect(model.layers.map(\.op).filter { $0 != "layout" }.prefix(2) == ["conv2d+clamp", "conv2d+hardswish"])
    }
}

extension EmbeddingModel {
    /// The raw outputs for `count` samples, as an array.
    func forward(_ input: [Float], count: Int) throws -> [Float] {
        var output = [Float](repeating: .nan, count: count * dimension)
        try input.withUnsafeBufferPointer { i in try output.withUnsafeMutableBufferPointer { try forward(batch: i, count: count, into: $0) } }
        return output
    }
}
