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
}
