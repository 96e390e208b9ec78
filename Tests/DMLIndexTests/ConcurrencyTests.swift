import CFaiss
import DMLIndex
import Dispatch
import Foundation
import Testing

/// Run again under ThreadSanitizer by `make test-tsan` (`--filter Concurrency`).
@Suite struct Concurrency {
    @Test func searchesRunWhileOneWriterAddsAndResultsStayConsistent() throws {
        let d = 16
        let initial = clusteredVectors(500, d, seed: 21)
        let extra = clusteredVectors(2000, d, seed: 22)
        let index = try VectorIndex(dimension: d, factory: "Flat", metric: .l2)
        try index.add(initial)
        let readers = 4
        let failures = Failures()

        DispatchQueue.concurrentPerform(iterations: readers + 1) { worker in
            do {
                if worker == readers {
                    // The writer: many small adds.
                    for chunk in stride(from: 0, to: 2000, by: 50) {
                        try index.add(Array(extra[chunk * d..<(chunk + 50) * d]))
                    }
                } else {
                    for round in 0..<60 {
                        let row = (worker * 60 + round) % 500
                        let query = Array(initial[row * d..<(row + 1) * d])
                        let hits = try index.search(vector: query, k: 5)
                        // A vector present from the start is always its own nearest neighbour, at distance 0,
                        // and every id returned exists: below the number of vectors ever added.
                        if hits.count != 5 || hits[0].id != Int64(row) || hits[0].distance > 1e-5
                            || hits.contains(where: { $0.id < 0 || $0.id >= 2500 })
                        {
                            failures.record("worker \(worker) round \(round): \(hits)")
                        }
                    }
                }
            } catch {
                failures.record("worker \(worker): \(error)")
            }
        }
        #expect(failures.all.isEmpty, "\(failures.all.prefix(3))")
        #expect(index.count == 2500)
    }
}

extension Concurrency {
    /// Per-call efSearch values that differ are served one at a time (FAISS 1.7.3 needs the setting on the index);
    /// results must equal a single-threaded run with the same setting.
    @Test func hnswSearchesWithDifferentEfSearchGiveSequentialResults() throws {
        let d = 16
        let base = clusteredVectors(3000, d, seed: 31)
        let queries = clusteredVectors(20, d, seed: 32)
        let index = try VectorIndex(dimension: d, factory: "HNSW16", metric: .l2)
        try index.add(base)
        let settings = [8, 32, 128]
        let expected = try settings.map { try index.search(queries, k: 10, parameters: .init(efSearch: $0)) }
        let failures = Failures()
        DispatchQueue.concurrentPerform(iterations: 6) { worker in
            for round in 0..<10 {
                let which = (worker + round) % settings.count
                do {
                    let got = try index.search(queries, k: 10, parameters: .init(efSearch: settings[which]))
                    if got != expected[which] { failures.record("worker \(worker) efSearch \(settings[which]) differs") }
                } catch {
                    failures.record("worker \(worker): \(error)")
                }
            }
        }
        #expect(failures.all.isEmpty, "\(failures.all.prefix(3))")
    }
}

extension Concurrency {
    /// Searches that keep the index's efSearch share the index and run at once, each taking visited tables from
    /// DMLKit's HNSW search pool (single queries and batches, which also use the OpenMP team): results must equal a
    /// sequential run.
    @Test func hnswSearchesSharingTheIndexGiveSequentialResults() throws {
        let d = 16
        let base = clusteredVectors(3000, d, seed: 33)
        let queries = clusteredVectors(24, d, seed: 34)
        let index = try VectorIndex(dimension: d, factory: "HNSW16", metric: .l2)
        try index.add(base)
        let expectedBatch = try index.search(queries, k: 10)
        let expectedSingle = try (0..<24).map { try index.search(vector: Array(queries[$0 * d..<($0 + 1) * d]), k: 10) }
        let failures = Failures()
        DispatchQueue.concurrentPerform(iterations: 6) { worker in
            for round in 0..<10 {
                do {
                    if (worker + round) % 2 == 0 {
                        if try index.search(queries, k: 10) != expectedBatch { failures.record("worker \(worker) batch differs") }
                    } else {
                        let q = (worker * 10 + round) % 24
                        let got = try index.search(vector: Array(queries[q * d..<(q + 1) * d]), k: 10)
                        if got != expectedSingle[q] { failures.record("worker \(worker) query \(q) differs") }
                    }
                } catch {
                    failures.record("worker \(worker): \(error)")
                }
            }
        }
        #expect(failures.all.isEmpty, "\(failures.all.prefix(3))")
    }
}

extension Concurrency {
    /// DMLKit's HNSW insertion on two threads (FAISS's protocol: a lock per vertex, other vertices' links read while
    /// their owners rewrite them), in two adds so the second links into a graph already there: the graph must hold
    /// together and every stored vector must find itself.
    @Test func hnswTwoThreadOwnBuildIsValid() throws {
        let d = 16, n = 3000
        let base = clusteredVectors(n, d, seed: 35)
        var raw: OpaquePointer?
        #expect(cfaiss_index_factory(Int32(d), "HNSW16", CFAISS_METRIC_L2, &raw) == CFAISS_OK)
        let index = try #require(raw)
        defer { cfaiss_index_free(index) }
        cfaiss_set_num_threads(2)
        defer { cfaiss_set_num_threads(0) }
        #expect(cfaiss_index_add_on_path(index, 2000, Array(base[0..<2000 * d]), CFAISS_SEARCH_OWN) == CFAISS_OK)
        #expect(cfaiss_index_add_on_path(index, 1000, Array(base[2000 * d..<n * d]), CFAISS_SEARCH_OWN) == CFAISS_OK)
        try expectValidHNSWFile(index, vectors: n)
        let probes = stride(from: 0, to: n, by: 30).map { $0 }
        let queries = probes.flatMap { base[$0 * d..<($0 + 1) * d] }
        var distances = [Float](repeating: .nan, count: probes.count), labels = [Int64](repeating: -7, count: probes.count)
        var params = cfaiss_search_params(nprobe: 0, ef_search: 64, allowed_ids: nil, allowed_count: -1)
        #expect(cfaiss_index_search(index, Int64(probes.count), queries, 1, &params, &distances, &labels) == CFAISS_OK)
        #expect(labels == probes.map { Int64($0) })
    }
}

/// A thread-safe list of failure messages.
final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var messages: [String] = []
    func record(_ message: String) { lock.withLock { messages.append(message) } }
    var all: [String] { lock.withLock { messages } }
}
