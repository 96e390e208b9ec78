import DMLRuntime
import DMLText
import Foundation
import Testing

/// The Swift encoder against sentence-transformers embeddings of the corpus (committed for every 8th line).
@Suite(.serialized) struct EncoderParityTests {
    struct Comparison { var minCosine: Float; var maxAbsError: Float }

    /// `limit` keeps the rounded-weight runs short in debug builds (rounding 23M weights is slow there).
    private func compare(_ precision: WeightPrecision, limit: Int = .max) throws -> Comparison {
        let embedder = try TextEmbedder(directory: try TextFixtures.modelDirectory(), options: .init(precision: precision))
        let corpus = try TextFixtures.corpus()
        let reference = try TextFixtures.referenceEmbeddings()
        let texts = reference.lines.prefix(limit).map { corpus[$0] }
        let ours = embedder.embed(texts)
        try #require(reference.dimension == embedder.dimension && ours.count == texts.count * reference.dimension)
        var result = Comparison(minCosine: 1, maxAbsError: 0)
        for row in 0..<texts.count {
            let range = (row * embedder.dimension)..<((row + 1) * embedder.dimension)
            // NaN turns into the worst value so the expectations below fail (min/max would skip it).
            let similarity = cosine(ours[range], reference.embeddings[range])
            result.minCosine = similarity.isNaN ? -.infinity : min(result.minCosine, similarity)
            for i in range {
                let error = abs(ours[i] - reference.embeddings[i])
                result.maxAbsError = error.isNaN ? .infinity : max(result.maxAbsError, error)
            }
        }
        print("DMLText \(precision.rawValue) vs sentence-transformers on \(texts.count) lines: min cosine \(result.minCosine), max abs error \(result.maxAbsError)")
        return result
    }

    @Test func f32MatchesSentenceTransformers() throws {
        let result = try compare(.f32)
        #expect(result.minCosine >= 0.9999)
        #expect(result.maxAbsError <= 1e-4)
    }

    @Test func f16WeightsStayClose() throws {
        let result = try compare(.f16, limit: 96)
        #expect(result.minCosine >= 0.9999)
    }

    @Test func int8WeightsStayClose() throws {
        let result = try compare(.int8, limit: 96)
        #expect(result.minCosine >= 0.99)
    }

    @Test func batchingAndOrderDoNotChangeEmbeddings() throws {
        let embedder = try TextEmbedder(directory: try TextFixtures.modelDirectory(), options: .init(maxBatch: 3))
        let texts = ["a person jumping with arms raised", "", "someone sitting", String(repeating: "long caption ", count: 300), "hi"]
        let together = embedder.embed(texts)
        for (row, text) in texts.enumerated() {
            let alone = embedder.embed(text)
            let slice = together[(row * embedder.dimension)..<((row + 1) * embedder.dimension)]
            #expect(zip(alone, slice).allSatisfy { abs($0 - $1) <= 1e-5 }, "row \(row)")
        }
    }

    @Test func embedderProtocolPathMatchesTheStringPath() throws {
        let embedder = try TextEmbedder(directory: try TextFixtures.modelDirectory())
        let texts = ["a man running on a beach", "ein Mann läuft 🏃 am Strand", "男子在海滩上跑步"]
        let viaProtocol = try embedder.embed(batch: embedder.tokenIDs(for: texts), count: texts.count)
        let direct = embedder.embed(texts)
        #expect(zip(viaProtocol, direct).allSatisfy { abs($0 - $1) <= 1e-6 })
        #expect(embedder.inputShape == [256])
        var bad = embedder.tokenIDs(for: ["x"])
        bad[1] = 1e9
        #expect(throws: TextModelError.invalidTokenID(index: 1, value: 1e9)) { try embedder.embed(batch: bad, count: 1) }
        bad[1] = .nan
        #expect(throws: InferenceError.nonFiniteInput(index: 1)) { try embedder.embed(batch: bad, count: 1) }
    }

    @Test func embeddingsAreUnitLength() throws {
        let embedder = try TextEmbedder(directory: try TextFixtures.modelDirectory())
        let out = embedder.embed(["", " ", "\u{0}\u{7}", "😀😀", String(repeating: "x", count: 10_000)])
        for row in 0..<5 {
            let norm = out[(row * 384)..<((row + 1) * 384)].reduce(0) { $0 + $1 * $1 }.squareRoot()
            #expect(abs(norm - 1) < 1e-5)
        }
    }

    @Test func concurrentCallsGiveTheSameEmbeddingsAsSerialOnes() throws {
        let embedder = try TextEmbedder(directory: try TextFixtures.modelDirectory(), options: .init(maxBatch: 4))
        let corpus = try TextFixtures.corpus()
        let sets = (0..<4).map { k in Array(corpus[(k * 40)..<(k * 40 + 12)]) }
        let serial = sets.map { embedder.embed($0) }
        let results = Results(count: sets.count)
        DispatchQueue.concurrentPerform(iterations: sets.count) { k in results.set(k, embedder.embed(sets[k])) }
        for k in sets.indices { #expect(results.get(k) == serial[k], "set \(k)") }
    }
}

/// Collects per-thread results behind a lock.
private final class Results: @unchecked Sendable {
    private var values: [[Float]]
    private let lock = NSLock()
    init(count: Int) { values = Array(repeating: [], count: count) }
    func set(_ k: Int, _ value: [Float]) { lock.lock(); values[k] = value; lock.unlock() }
    func get(_ k: Int) -> [Float] { lock.lock(); defer { lock.unlock() }; return values[k] }
}
