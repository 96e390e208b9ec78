import CDMLKernels
import CFaiss
import DMLIndex
import Foundation
import Testing

// CDMLKernels' HNSW insertion (dml_hnsw_add, what cfaiss runs for HNSW-Flat adds) against FAISS 1.7.3's own
// IndexHNSW::add: on one thread the same algorithm over the same distances, so the written files must be identical,
// byte for byte (levels, offsets, every link, entry point); on two threads a valid graph as good as FAISS's.

/// Clustered vectors with exact duplicates mixed in (every 7th row repeats an earlier one): equal distances, so the
/// heaps' tie order matters.
private func vectorsWithTies(_ n: Int, _ d: Int, seed: UInt64) -> [Float] {
    var v = clusteredVectors(n, d, clusters: 12, seed: seed)
    var rng = SeededGenerator(seed: seed &+ 1)
    for i in stride(from: 7, to: n, by: 7) {
        let j = Int.random(in: 0..<i, using: &rng)
        for k in 0..<d { v[i * d + k] = v[j * d + k] }
    }
    return v
}

private func makeIndex(_ description: String, d: Int, metric: cfaiss_metric) throws -> OpaquePointer {
    var raw: OpaquePointer?
    #expect(cfaiss_index_factory(Int32(d), description, metric, &raw) == CFAISS_OK)
    return try #require(raw)
}

/// Adds `vectors` in chunks of the given sizes on `path` (ids 1000 + 3i under an IDMap).
private func addChunks(_ index: OpaquePointer, _ vectors: [Float], d: Int, chunks: [Int], idmap: Bool,
                       _ path: cfaiss_search_path) -> Bool {
    var start = 0
    for count in chunks {
        let part = Array(vectors[start * d..<(start + count) * d])
        let status: cfaiss_status
        if idmap {
            let ids = (start..<start + count).map { 1000 + 3 * Int64($0) }
            status = cfaiss_index_add_with_ids_on_path(index, Int64(count), part, ids, path)
        } else {
            status = cfaiss_index_add_on_path(index, Int64(count), part, path)
        }
        if status != CFAISS_OK { return false }
        start += count
    }
    return true
}

func indexBytes(_ index: OpaquePointer) -> [UInt8] {
    var data: UnsafeMutablePointer<UInt8>?
    var size = 0
    guard cfaiss_write_index_buffer(index, &data, &size) == CFAISS_OK, let data else { return [] }
    defer { cfaiss_buffer_free(data) }
    return Array(UnsafeBufferPointer(start: data, count: size))
}

/// FAISS 1.7.3's HNSW fields as written in an IHNf file (also under an IDMap/IDMap2 header).
/// Writes the index, checks the file with the shim's checker and the graph with `WrittenHNSW.problems`; returns
/// the bytes.
@discardableResult
func expectValidHNSWFile(_ index: OpaquePointer, vectors n: Int) throws -> [UInt8] {
    let bytes = indexBytes(index)
    #expect(cfaiss_check_index_buffer(bytes, bytes.count) == CFAISS_OK, "\(String(cString: cfaiss_last_error()))")
    let graph = try #require(WrittenHNSW(bytes))
    #expect(graph.levels.count == n)
    let problems = graph.problems()
    #expect(problems.isEmpty, "\(problems.prefix(5))")
    return bytes
}

struct WrittenHNSW {
    var cum: [Int32] = [], levels: [Int32] = [], offsets: [UInt64] = [], neighbors: [Int32] = []
    var entry: Int32 = -1, maxLevel: Int32 = -1

    init?(_ bytes: [UInt8]) {
        var at = 0
        func take<T>(_: T.Type) -> T? {
            guard at + MemoryLayout<T>.size <= bytes.count else { return nil }
            defer { at += MemoryLayout<T>.size }
            return bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: T.self) }
        }
        func array<T>(_: T.Type) -> [T]? {
            guard let count = take(UInt64.self), at + Int(count) * MemoryLayout<T>.size <= bytes.count else { return nil }
            return (0..<Int(count)).map { _ in take(T.self)! }
        }
        func header() -> String? {  // fourcc, then d, ntotal, two dummies, is_trained, metric (L2 / IP: no argument)
            guard at + 4 + 33 <= bytes.count else { return nil }
            let fourcc = String(decoding: bytes[at..<at + 4], as: UTF8.self)
            at += 4 + 29
            guard let metric = take(Int32.self), metric <= 1 else { return nil }
            return fourcc
        }
        var fourcc = header()
        if fourcc == "IxM2" || fourcc == "IxMp" { fourcc = header() }
        guard fourcc == "IHNf", array(Double.self) != nil, let cum = array(Int32.self), let levels = array(Int32.self),
              let offsets = array(UInt64.self), let neighbors = array(Int32.self), let entry = take(Int32.self),
              let maxLevel = take(Int32.self)
        else { return nil }
        (self.cum, self.levels, self.offsets, self.neighbors, self.entry, self.maxLevel) =
            (cum, levels, offsets, neighbors, entry, maxLevel)
    }

    /// Problems with the graph: a list with a gap, a self link, a repeated link, a link outside the graph or to a
    /// node without that level, a node without links on level 0, an entry point that is not on the top level.
    func problems() -> [String] {
        var found: [String] = []
        let n = levels.count
        guard offsets.count == n + 1 else { return ["\(offsets.count) offsets for \(n) nodes"] }
        for i in 0..<n {
            for l in 0..<Int(levels[i]) {
                let list = neighbors[Int(offsets[i]) + Int(cum[l])..<Int(offsets[i]) + Int(cum[l + 1])]
                let links = list.prefix { $0 >= 0 }
                if list.dropFirst(links.count).contains(where: { $0 >= 0 }) { found.append("node \(i) level \(l): a gap") }
                if links.contains(Int32(i)) { found.append("node \(i) level \(l): links to itself") }
                if Set(links).count != links.count { found.append("node \(i) level \(l): a repeated link") }
                if links.contains(where: { Int($0) >= n || levels[Int($0)] <= l }) {
                    found.append("node \(i) level \(l): a link outside the level")
                }
                if l == 0 && n > 1 && links.isEmpty { found.append("node \(i): no links") }
            }
        }
        if n > 0 && (entry < 0 || Int(entry) >= n || levels[Int(entry)] != maxLevel + 1 || levels.max()! != maxLevel + 1) {
            found.append("entry point \(entry) at max level \(maxLevel)")
        }
        return found
    }
}

/// recall@k of the index's search (efSearch `ef`) against exact neighbours (row positions, mapped by `ids`).
private func hnswRecall(_ index: OpaquePointer, queries: [Float], d: Int, k: Int, ef: Int32, exact: [[Neighbor]],
                    ids: (Int) -> Int64) -> Double {
    let nq = queries.count / d
    var distances = [Float](repeating: .nan, count: nq * k), labels = [Int64](repeating: -7, count: nq * k)
    var params = cfaiss_search_params(nprobe: 0, ef_search: ef, allowed_ids: nil, allowed_count: -1)
    #expect(cfaiss_index_search(index, Int64(nq), queries, Int64(k), &params, &distances, &labels) == CFAISS_OK)
    var hits = 0
    for q in 0..<nq {
        let truth = Set(exact[q].map { ids(Int($0.id)) })
        hits += labels[q * k..<(q + 1) * k].filter { truth.contains($0) }.count
    }
    return Double(hits) / Double(nq * k)
}

@Suite struct HNSWBuildTests {
    @Test func oneThreadBuildIsFAISSsByteForByte() throws {
        // Both metrics, M 8/16/32, unwrapped and IDMap2, one add and incremental adds: chunks of one vertex (the
        // first sets the entry point), small ones (FAISS runs levels of <= 100 vertices serially) and large ones.
        cfaiss_set_num_threads(1)
        defer { cfaiss_set_num_threads(0) }
        let d = 24, n = 2500
        let vectors = vectorsWithTies(n, d, seed: 41)
        for metric in [CFAISS_METRIC_L2, CFAISS_METRIC_INNER_PRODUCT] {
            for m in [8, 16, 32] {
                for description in ["HNSW\(m)", "IDMap2,HNSW\(m)"] {
                    for chunks in [[n], [1, 1, 37, 160, 801, 1500]] {
                        let idmap = description.hasPrefix("IDMap")
                        let ours = try makeIndex(description, d: d, metric: metric)
                        let theirs = try makeIndex(description, d: d, metric: metric)
                        defer {
                            cfaiss_index_free(ours)
                            cfaiss_index_free(theirs)
                        }
                        #expect(addChunks(ours, vectors, d: d, chunks: chunks, idmap: idmap, CFAISS_SEARCH_OWN))
                        #expect(addChunks(theirs, vectors, d: d, chunks: chunks, idmap: idmap, CFAISS_SEARCH_FAISS))
                        let a = indexBytes(ours), b = indexBytes(theirs)
                        #expect(!a.isEmpty && a == b, "\(description) metric \(metric) chunks \(chunks)")
                        if a != b, let ga = WrittenHNSW(a), let gb = WrittenHNSW(b) {
                            let first = zip(ga.neighbors, gb.neighbors).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                            Issue.record("levels equal \(ga.levels == gb.levels), first differing link \(String(describing: first)), entry \(ga.entry)/\(gb.entry)")
                        }
                    }
                }
            }
        }
    }

    @Test func twoThreadBuildIsValidWithFAISSsRecall() throws {
        // Queries from the base's distribution; FAISS's own two-thread graphs differ from run to run too. (Inner
        // product at M 16 is left out: on this data FAISS's own two-thread builds land on 0.954 or 0.964 from run
        // to run, 0.997 at one thread, and DMLKit's on either side of that, so no fixed tolerance holds for it.)
        let d = 48, n = 6000, nq = 300, k = 10
        let all = clusteredVectors(n + nq, d, seed: 51)
        let base = Array(all[0..<n * d]), queries = Array(all[n * d..<all.count])
        cfaiss_set_num_threads(2)
        defer { cfaiss_set_num_threads(0) }
        for metric in [CFAISS_METRIC_L2, CFAISS_METRIC_INNER_PRODUCT] {
            let exact = bruteForce(base: base, queries: queries, d: d, k: k,
                                   metric: metric == CFAISS_METRIC_L2 ? .l2 : .innerProduct)
            for description in ["HNSW32", metric == CFAISS_METRIC_L2 ? "IDMap2,HNSW16" : "IDMap2,HNSW32"] {
                let idmap = description.hasPrefix("IDMap")
                let ids: (Int) -> Int64 = { idmap ? 1000 + 3 * Int64($0) : Int64($0) }
                let ours = try makeIndex(description, d: d, metric: metric)
                let theirs = try makeIndex(description, d: d, metric: metric)
                defer {
                    cfaiss_index_free(ours)
                    cfaiss_index_free(theirs)
                }
                #expect(addChunks(ours, base, d: d, chunks: [4000, 2000], idmap: idmap, CFAISS_SEARCH_OWN))
                #expect(addChunks(theirs, base, d: d, chunks: [4000, 2000], idmap: idmap, CFAISS_SEARCH_FAISS))
                let own = hnswRecall(ours, queries: queries, d: d, k: k, ef: 64, exact: exact, ids: ids)
                let faiss = hnswRecall(theirs, queries: queries, d: d, k: k, ef: 64, exact: exact, ids: ids)
                #expect(abs(own - faiss) <= 0.01, "\(description) metric \(metric): recall@10 \(own) vs FAISS \(faiss)")
                #expect(own >= 0.98, "\(description) metric \(metric): recall@10 \(own)")

                let bytes = try expectValidHNSWFile(ours, vectors: n)
                var raw: OpaquePointer?
                #expect(cfaiss_read_index_buffer(bytes, bytes.count, &raw) == CFAISS_OK)
                let back = try #require(raw)
                defer { cfaiss_index_free(back) }
                #expect(cfaiss_index_ntotal(back) == Int64(n))
                #expect(hnswRecall(back, queries: queries, d: d, k: k, ef: 64, exact: exact, ids: ids) == own)
            }
        }
    }

    @Test func addsKeepFAISSsChecksAndIdMaps() throws {
        let d = 8
        let vectors = clusteredVectors(300, d, seed: 61)
        // IDMap's add without ids and add_with_ids on a bare HNSW stay FAISS's errors; counts and ids as FAISS's.
        let map = try makeIndex("IDMap2,HNSW8", d: d, metric: CFAISS_METRIC_L2)
        defer { cfaiss_index_free(map) }
        #expect(cfaiss_index_add_on_path(map, 300, vectors, CFAISS_SEARCH_OWN) == CFAISS_FAISS_ERROR)
        let bare = try makeIndex("HNSW8", d: d, metric: CFAISS_METRIC_L2)
        defer { cfaiss_index_free(bare) }
        #expect(cfaiss_index_add_with_ids_on_path(bare, 1, vectors, [5], CFAISS_SEARCH_OWN) == CFAISS_FAISS_ERROR)
        #expect(cfaiss_index_add_on_path(bare, -1, vectors, CFAISS_SEARCH_OWN) == CFAISS_INVALID_ARGUMENT)
        #expect(cfaiss_index_add_on_path(bare, 0, nil, CFAISS_SEARCH_OWN) == CFAISS_OK)
        #expect(cfaiss_index_ntotal(bare) == 0)

        let ids = (0..<300).map { 7 * Int64($0) + 1 }
        #expect(cfaiss_index_add_with_ids_on_path(map, 300, vectors, ids, CFAISS_SEARCH_OWN) == CFAISS_OK)
        #expect(cfaiss_index_ntotal(map) == 300)
        var out = [Float](repeating: 0, count: d)
        #expect(cfaiss_index_reconstruct(map, ids[123], &out) == CFAISS_OK)  // IDMap2's reverse map
        #expect(out == Array(vectors[123 * d..<124 * d]))
        var first: Int64 = 0
        #expect(cfaiss_index_first_present_id(map, 2, [3, ids[299]], &first) == CFAISS_OK && first == ids[299])
        var distances = [Float](repeating: 0, count: 1), labels = [Int64](repeating: 0, count: 1)
        #expect(cfaiss_index_search(map, 1, Array(vectors[40 * d..<41 * d]), 1, nil, &distances, &labels) == CFAISS_OK)
        #expect(labels == [ids[40]])
    }

    @Test func badGraphsAndArgumentsAreRefused() {
        // One stored node (0) and one new (1), both on level 0 with 2 slots.
        var neighbors: [Int32] = [-1, -1, -1, -1]
        let offsets: [Int] = [0, 2, 4]
        let cum: [Int32] = [0, 2]
        let base: [Float] = [0, 0, 1, 1]
        func run(levels: [Int32] = [1, 1], entry: Int32 = 0, maxLevel: Int32 = 0, neighborsCount: Int = 4,
                 ntotal: Int = 2, n0: Int = 1, n: Int = 1, d: Int = 2, metric: DMLFlatMetric = DML_FLAT_L2) -> Int32 {
            neighbors = [-1, -1, -1, -1]
            return neighbors.withUnsafeMutableBufferPointer { nb in
                offsets.withUnsafeBufferPointer { off in
                    levels.withUnsafeBufferPointer { lv in
                        cum.withUnsafeBufferPointer { c in
                            var g = DMLHNSWBuildGraph(neighbors: nb.baseAddress, neighbors_count: neighborsCount,
                                                      offsets: off.baseAddress, ntotal: ntotal, levels: lv.baseAddress,
                                                      cum_neighbors: c.baseAddress, cum_neighbors_count: cum.count,
                                                      entry_point: entry, max_level: maxLevel, ef_construction: 40)
                            return dml_hnsw_add(&g, base, d, metric, n0, n)
                        }
                    }
                }
            }
        }
        #expect(run() == 0)
        #expect(neighbors == [1, -1, 0, -1])
        #expect(run(entry: -1, n0: 0, n: 2) == 0)  // an empty graph: the first vertex becomes the entry point
        #expect(neighbors == [1, -1, 0, -1])
        #expect(run(levels: [1, 2]) == -1)  // a level without a neighbour table
        #expect(run(levels: [1, 0]) == -1)
        #expect(run(entry: 1) == -1)  // the entry point is not a stored node
        #expect(run(maxLevel: 1) == -1)
        #expect(run(neighborsCount: 3) == -1)  // offsets past the links
        #expect(run(n: 2) == -1)  // n0 + n is not ntotal
        #expect(run(d: 0) == -1)
        #expect(run(metric: DMLFlatMetric(rawValue: 9)) == -1)
        #expect(neighbors == [-1, -1, -1, -1])  // refused before anything was written
    }
}
