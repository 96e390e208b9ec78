import Foundation
import Testing
@testable import DMLRuntime

/// One loaded model shared by many tasks: calls are serialised on its buffers and give the serial results.
@Suite("Runtime concurrency")
struct RuntimeConcurrencyTests {
    @Test("concurrent embeds on one model give the same embeddings as serial calls")
    func concurrentEmbeds() async throws {
        let golden = try Fixtures.golden("resnet")
        let model = try EmbeddingModel(contentsOf: Fixtures.url("resnet-f32.safetensors"), options: .init(maxBatch: 4))
        let inSize = model.inputSize, d = model.dimension
        let serial = try (0..<golden.count).map { n in try model.embed(Array(golden.input[(n * inSize)..<((n + 1) * inSize)])) }
        let concurrent = try await withThrowingTaskGroup(of: (Int, [Float]).self) { group in
            for round in 0..<4 {
                for n in 0..<golden.count {
                    let input = Array(golden.input[(n * inSize)..<((n + 1) * inSize)])
                    group.addTask { (round * 100 + n, try model.embed(input)) }
                }
            }
            var results: [Int: [Float]] = [:]
            for try await (key, embedding) in group { results[key] = embedding }
            return results
        }
        #expect(concurrent.count == 4 * golden.count)
        for (key, embedding) in concurrent {
            #expect(embedding == serial[key % 100])
            #expect(embedding.count == d)
        }
    }

    /// Several samples and threads: each thread runs an uneven share on its own plan, its primitives
    /// single-threaded. The embeddings are PyTorch's and each sample's own (a batch of one stays on one thread).
    @Test("a batch split over threads gives PyTorch's embeddings and each sample's own")
    func batchSplitOverThreads() throws {
        let golden = try Fixtures.golden("resnet")
        let model = try EmbeddingModel(contentsOf: Fixtures.url("resnet-f32.safetensors"), options: .init(maxBatch: 8))
        let inSize = model.inputSize, d = model.dimension
        let count = 7  // odd: the shares differ in size
        let order = (0..<count).map { $0 % golden.count }
        let input = order.flatMap { golden.input[($0 * inSize)..<(($0 + 1) * inSize)] }
        let expected = order.flatMap { golden.output[($0 * d)..<(($0 + 1) * d)] }
        #expect(model.sampleThreads(for: 1) == 1)
        // Two shares, whatever thread count another suite has set meanwhile (with one OpenMP thread the shares
        // run one after the other on their own plans).
        for _ in 0..<2 {  // the second call reuses the plans and the single-threaded primitives
            var batch = [Float](repeating: .nan, count: count * d)
            try input.withUnsafeBufferPointer { i in
                try batch.withUnsafeMutableBufferPointer { try model.embed(batch: i, count: count, into: $0, splittingOver: 2) }
            }
            #expect(maxAbsError(batch, expected) <= 1e-4, "max abs error \(maxAbsError(batch, expected))")
            let alone = try order.flatMap { try model.embed(Array(golden.input[($0 * inSize)..<(($0 + 1) * inSize)])) }
            #expect(maxAbsError(batch, alone) <= 1e-5, "max abs error \(maxAbsError(batch, alone))")
        }
    }
}
