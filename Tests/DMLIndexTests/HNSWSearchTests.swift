import CDMLKernels
import CFaiss
import DMLIndex
import Foundation
import Testing

// CDMLKernels' HNSW search (dml_hnsw_search, what cfaiss runs for unfiltered HNSW-Flat searches) against FAISS
// 1.7.3's own IndexHNSW::search on the same graph: the same algorithm over the same distances, so labels and
// distances must be identical, bit for bit; and the batched by-id distance kernels against the one-row kernels.

private struct Hits: Equatable {
    var distances: [UInt32]  // bit patterns: identical means bitwise identical (and NaN cannot compare equal by accident)
    var labels: [Int64]
}

private func search(_ index: OpaquePointer, _ queries: [Float], d: Int, k: Int, ef: Int32,
                    _ path: cfaiss_search_path) -> (cfaiss_status, Hits) {
    let nq = queries.count / d
    var distances = [Float](repeating: .nan, count: nq * k), labels = [Int64](repeating: -7, count: nq * k)
    var params = cfaiss_search_params(nprobe: 0, ef_search: ef, allowed_ids: nil, allowed_count: -1)
    let status = cfaiss_index_search_on_path(index, Int64(nq), queries, Int64(k), &params, &distances, &labels, path)
    return (status, Hits(distances: distances.map(\.bitPattern), labels: labels))
}

private func hnswIndex(_ description: String, d: Int, metric: cfaiss_metric, vectors: [Float]) throws -> OpaquePointer {
    var raw: OpaquePointer?
    #expect(cfaiss_index_factory(Int32(d), description, metric, &raw) == CFAISS_OK)
    let index = try #require(raw)
    let n = vectors.count / d
    if n > 0 && description.hasPrefix("IDMap") {  // ids of our own, so labels must come back mapped
        let ids = (0..<Int64(n)).map { 1000 + 3 * $0 }
        #expect(cfaiss_index_add_with_ids(index, Int64(n), vectors, ids) == CFAISS_OK)
    } else if n > 0 {
        #expect(cfaiss_index_add(index, Int64(n), vectors) == CFAISS_OK)
    }
    return index
}

@Suite struct HNSWSearchTests {
    @Test func byIdDistancesAreBitwiseTheOneRowKernels() {
        var rng = SeededGenerator(seed: 91)
        for path in ["scalar", "avx2", "avx512"] {
            guard let k = dml_distance_kernels_named(path)?.pointee else { continue }
            for d in [1, 5, 8, 16, 31, 48, 128, 130] {
                let rows = 40
                let base = (0..<rows * d).map { _ in Float.random(in: -3...3, using: &rng) }
                let x = (0..<d).map { _ in Float.random(in: -3...3, using: &rng) }
                for n in [0, 1, 3, 4, 5, 9, 17] {
                    let ids = (0..<n).map { _ in Int32.random(in: 0..<Int32(rows), using: &rng) }
                    var l2 = [Float](repeating: .nan, count: n), ip = [Float](repeating: .nan, count: n)
                    base.withUnsafeBufferPointer { b in
                        k.l2sqr_by_id(&l2, x, b.baseAddress, d, ids, n)
                        k.inner_products_by_id(&ip, x, b.baseAddress, d, ids, n)
                        for (i, id) in ids.enumerated() {
                            let row = b.baseAddress! + Int(id) * d
                            #expect(l2[i].bitPattern == k.l2sqr(x, row, d).bitPattern, "\(path) d \(d) n \(n) L2 \(i)")
                            #expect(ip[i].bitPattern == k.inner_product(x, row, d).bitPattern, "\(path) d \(d) IP \(i)")
                        }
                    }
                }
            }
        }
    }

    @Test func ownSearchIsFAISSsBitForBit() throws {
        // Clustered data (many close neighbours, long searches), both metrics, one query and batches, several
        // efSearch values (also below k: the queue holds max(ef, k)), one and two threads, unwrapped and IDMap2.
        let d = 40, n = 3000, nq = 60
        let base = clusteredVectors(n, d, seed: 7), queries = clusteredVectors(nq, d, seed: 8)
        for metric in [CFAISS_METRIC_L2, CFAISS_METRIC_INNER_PRODUCT] {
            for description in ["HNSW16", "IDMap2,HNSW32"] {
                let index = try hnswIndex(description, d: d, metric: metric, vectors: base)
                defer { cfaiss_index_free(index) }
                for threads: Int32 in [1, 2] {
                    cfaiss_set_num_threads(threads)
                    for (k, ef) in [(1, Int32(16)), (10, 8), (10, 64), (50, 200)] {
                        for batch in [Array(queries[0..<d]), queries] {
                            let (s1, ours) = search(index, batch, d: d, k: k, ef: ef, CFAISS_SEARCH_OWN)
                            let (s2, theirs) = search(index, batch, d: d, k: k, ef: ef, CFAISS_SEARCH_FAISS)
                            #expect(s1 == CFAISS_OK && s2 == CFAISS_OK)
                            #expect(ours == theirs, "\(description) metric \(metric) threads \(threads) k \(k) ef \(ef) nq \(batch.count / d)")
                        }
                    }
                }
                cfaiss_set_num_threads(0)
            }
        }
    }

    @Test func ownSearchFindsTheTrueNeighbours() throws {
        // Not only FAISS's answer: recall@10 against a brute force computed here.
        let d = 24, n = 2000, nq = 40, k = 10
        let base = clusteredVectors(n, d, seed: 17), queries = clusteredVectors(nq, d, seed: 18)
        let index = try hnswIndex("HNSW32", d: d, metric: CFAISS_METRIC_L2, vectors: base)
        defer { cfaiss_index_free(index) }
        let (status, hits) = search(index, queries, d: d, k: k, ef: 200, CFAISS_SEARCH_OWN)
        #expect(status == CFAISS_OK)
        let exact = bruteForce(base: base, queries: queries, d: d, k: k, metric: .l2)
        var found = 0
        for q in 0..<nq {
            let truth = Set(exact[q].map(\.id))
            found += hits.labels[q * k..<(q + 1) * k].filter { truth.contains($0) }.count
        }
        let recall = Double(found) / Double(nq * k)
        #expect(recall >= 0.97, "recall@10 \(recall)")
        for q in 0..<nq {  // ascending distances
            let row = hits.labels[q * k..<(q + 1) * k]
            #expect(!row.contains(-1))
        }
    }

    @Test func emptyAndTinyIndexesPadLikeFAISS() throws {
        let d = 8
        var rng = SeededGenerator(seed: 3)
        let query = (0..<d).map { _ in Float.random(in: -1...1, using: &rng) }
        for count in [0, 1, 3] {
            let vectors = (0..<count * d).map { _ in Float.random(in: -1...1, using: &rng) }
            for metric in [CFAISS_METRIC_L2, CFAISS_METRIC_INNER_PRODUCT] {
                let index = try hnswIndex("HNSW8", d: d, metric: metric, vectors: vectors)
                defer { cfaiss_index_free(index) }
                let (s1, ours) = search(index, query, d: d, k: 5, ef: 0, CFAISS_SEARCH_OWN)
                let (s2, theirs) = search(index, query, d: d, k: 5, ef: 0, CFAISS_SEARCH_FAISS)
                #expect(s1 == CFAISS_OK && s2 == CFAISS_OK)
                #expect(ours == theirs, "\(count) vectors, metric \(metric)")
                #expect(ours.labels.filter { $0 >= 0 }.count == count)
            }
        }
    }

    @Test func badGraphsAndArgumentsAreRefused() {
        // The C entry point checks what it reads before it reads it.
        let neighbors: [Int32] = [1, -1, 0, -1]
        let offsets: [Int] = [0, 2, 4]
        let cum: [Int32] = [0, 2]
        let base: [Float] = [0, 0, 1, 1]
        let query: [Float] = [0.2, 0.1]
        var distances = [Float](repeating: .nan, count: 2), labels = [Int64](repeating: -7, count: 2)
        func run(entry: Int32, maxLevel: Int32, offsetsCount: Int, neighborsCount: Int, k: Int = 2) -> Int32 {
            neighbors.withUnsafeBufferPointer { nb in
                offsets.withUnsafeBufferPointer { off in
                    cum.withUnsafeBufferPointer { c in
                        var g = DMLHNSWGraph(neighbors: nb.baseAddress, neighbors_count: neighborsCount,
                                             offsets: off.baseAddress, ntotal: offsetsCount - 1,
                                             cum_neighbors: c.baseAddress, cum_neighbors_count: cum.count,
                                             entry_point: entry, max_level: maxLevel)
                        return dml_hnsw_search(&g, base, 2, DML_FLAT_L2, 16, 1, query, 1, k, &distances, &labels)
                    }
                }
            }
        }
        #expect(run(entry: 0, maxLevel: 0, offsetsCount: 3, neighborsCount: 4) == 0)
        #expect(labels == [0, 1])
        #expect(run(entry: 2, maxLevel: 0, offsetsCount: 3, neighborsCount: 4) == -1)  // entry point past ntotal
        #expect(run(entry: 0, maxLevel: 1, offsetsCount: 3, neighborsCount: 4) == -1)  // no level table for level 1
        #expect(run(entry: 0, maxLevel: 0, offsetsCount: 3, neighborsCount: 3) == -1)  // offsets past the links
        #expect(run(entry: 0, maxLevel: 0, offsetsCount: 3, neighborsCount: 4, k: 0) == -1)
    }
}
