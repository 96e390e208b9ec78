import Foundation
import Testing
@testable import DMLRuntime

/// Runtime outputs against PyTorch outputs recorded by the exporter (committed golden files).
@Suite("Golden parity with PyTorch")
struct GoldenParityTests {
    static let models = ["mlp", "cnn", "resnet", "multihead"]
    static let cases: [(String, String)] = models.flatMap { m in ["f32", "f16", "int8"].map { (m, $0) } }

    /// Checks outputs for one dtype: f32 within 1e-4 absolute; f16/int8 cosine >= 0.999 per sample.
    static func check(_ actual: [Float], _ expected: [Float], width: Int, dtype: String, context: String) {
        #expect(actual.count == expected.count, "\(context): output size")
        if dtype == "f32" {
            let error = maxAbsError(actual, expected)
            #expect(error <= 1e-4, "\(context): max abs error \(error)")
        } else {
            let cosine = minCosine(actual, expected, width: width)
            #expect(cosine >= 0.999, "\(context): min cosine \(cosine)")
        }
    }

    @Test("batch of 17 matches PyTorch", arguments: cases)
    func batch17(model: String, dtype: String) throws {
        let golden = try Fixtures.golden(model)
        let runtime = try EmbeddingModel(contentsOf: Fixtures.url("\(model)-\(dtype).safetensors"))
        #expect(golden.count == 17)
        var output = [Float](repeating: .nan, count: golden.count * runtime.dimension)
        try golden.input.withUnsafeBufferPointer { input in
            try output.withUnsafeMutableBufferPointer { try runtime.forward(batch: input, count: golden.count, into: $0) }
        }
        Self.check(output, golden.output, width: runtime.dimension, dtype: dtype, context: "\(model)-\(dtype) batch 17")
    }

    @Test("batch of 1 matches PyTorch for every sample", arguments: cases)
    func batch1(model: String, dtype: String) throws {
        let golden = try Fixtures.golden(model)
        let runtime = try EmbeddingModel(contentsOf: Fixtures.url("\(model)-\(dtype).safetensors"))
        let inSize = runtime.inputSize, outSize = runtime.dimension
        for n in 0..<golden.count {
            var output = [Float](repeating: .nan, count: outSize)
            try golden.input[(n * inSize)..<((n + 1) * inSize)].withUnsafeBufferPointer { input in
                try output.withUnsafeMutableBufferPointer { try runtime.forward(batch: input, count: 1, into: $0) }
            }
            Self.check(output, Array(golden.output[(n * outSize)..<((n + 1) * outSize)]), width: outSize, dtype: dtype,
                       context: "\(model)-\(dtype) sample \(n)")
        }
    }

    @Test("op coverage net (pooling variants, depthwise multiplier, view, 3-D linear, unfoldable BN) matches PyTorch",
          arguments: [1, 17])
    func opCoverage(batch: Int) throws {
        let golden = try Fixtures.golden("ops")
        let runtime = try EmbeddingModel(contentsOf: Fixtures.url("ops-f32.safetensors"))
        let inSize = runtime.inputSize, outSize = runtime.dimension
        for start in stride(from: 0, to: golden.count, by: batch) {
            let n = min(batch, golden.count - start)
            var output = [Float](repeating: .nan, count: n * outSize)
            try golden.input[(start * inSize)..<((start + n) * inSize)].withUnsafeBufferPointer { input in
                try output.withUnsafeMutableBufferPointer { try runtime.forward(batch: input, count: n, into: $0) }
            }
            let expected = Array(golden.output[(start * outSize)..<((start + n) * outSize)])
            #expect(maxAbsError(output, expected) <= 1e-4, "samples \(start)..<\(start + n)")
        }
    }

    @Test("batches larger than maxBatch run in chunks with the same result", arguments: models)
    func chunked(model: String) throws {
        let golden = try Fixtures.golden(model)
        let runtime = try EmbeddingModel(contentsOf: Fixtures.url("\(model)-f32.safetensors"), options: .init(maxBatch: 5))
        var output = [Float](repeating: .nan, count: golden.count * runtime.dimension)
        try golden.input.withUnsafeBufferPointer { input in
            try output.withUnsafeMutableBufferPointer { try runtime.forward(batch: input, count: golden.count, into: $0) }
        }
        #expect(maxAbsError(output, golden.output) <= 1e-4)
    }

    @Test("an activation budget splits a batch into even passes with the same result", arguments: models)
    func activationBudget(model: String) throws {
        let golden = try Fixtures.golden(model)
        // A budget of one byte leaves one sample per pass; a few samples' worth, passes of several.
        for budget in [1, 3 << 16] {
            let runtime = try EmbeddingModel(contentsOf: Fixtures.url("\(model)-f32.safetensors"),
                                             options: .init(activationBudgetBytes: budget))
            #expect(runtime.samplesPerPass >= 1 && runtime.samplesPerPass <= runtime.maxBatch)
            if budget == 1 { #expect(runtime.samplesPerPass == 1) }
            var output = [Float](repeating: .nan, count: golden.count * runtime.dimension)
            try golden.input.withUnsafeBufferPointer { input in
                try output.withUnsafeMutableBufferPointer { try runtime.forward(batch: input, count: golden.count, into: $0) }
            }
            #expect(maxAbsError(output, golden.output) <= 1e-4, "budget \(budget): \(runtime.samplesPerPass) per pass")
        }
        let unlimited = try EmbeddingModel(contentsOf: Fixtures.url("\(model)-f32.safetensors"), options: .init(activationBudgetBytes: 0))
        #expect(unlimited.samplesPerPass == unlimited.maxBatch)
    }

    @Test("embed returns the L2-normalised PyTorch output", arguments: models)
    func embedIsNormalised(model: String) throws {
        let golden = try Fixtures.golden(model)
        let runtime = try EmbeddingModel(contentsOf: Fixtures.url("\(model)-f32.safetensors"))
        let embeddings = try runtime.embed(batch: golden.input, count: golden.count)
        let d = runtime.dimension
        for n in 0..<golden.count {
            let row = Array(embeddings[(n * d)..<((n + 1) * d)])
            let norm = row.map { $0 * $0 }.reduce(0, +).squareRoot()
            #expect(abs(norm - 1) < 1e-5)
            #expect(minCosine(row, Array(golden.output[(n * d)..<((n + 1) * d)]), width: d) > 0.99999)
        }
    }

    @Test("BatchNorm left in the file is folded at load and still matches PyTorch")
    func foldsBatchNormAtLoad() throws {
        let golden = try Fixtures.golden("cnn")
        let runtime = try EmbeddingModel(contentsOf: Fixtures.url("cnn-unfolded-f32.safetensors"))
        #expect(runtime.foldedBatchNorms.count == 3)
        #expect(runtime.spec.nodes.filter { $0.op == "batch_norm" }.count == 3)
        var output = [Float](repeating: .nan, count: golden.count * runtime.dimension)
        try golden.input.withUnsafeBufferPointer { input in
            try output.withUnsafeMutableBufferPointer { try runtime.forward(batch: input, count: golden.count, into: $0) }
        }
        #expect(maxAbsError(output, golden.output) <= 1e-4)
    }

    @Test("aligned f32 weights are read from the mapping without a copy")
    func f32WeightsAreBorrowed() throws {
        let file = try SafetensorsFile(contentsOf: Fixtures.url("resnet-f32.safetensors"))
        let aligned = file.tensors.values.filter { $0.dtype == .f32 }.filter { info in
            (try? file.rawBytes(info.name)).map { Int(bitPattern: $0.baseAddress) % 4 == 0 } ?? false
        }
        #expect(!aligned.isEmpty)
        for info in aligned { #expect(try file.floats(info.name).isBorrowed) }
    }
}
