import CDMLKernels
import CFaiss
import DMLIndex
import Foundation
import Testing

// CDMLKernels' exact Flat search (dml_flat_search) against a double-precision brute force and against FAISS's own
// Flat search, on every kernel path this CPU has, through both its batch (GEMM tile) and one-query (rows) paths.

private func flatPaths() -> [String] { ["scalar", "avx2", "avx512"].filter { dml_distance_kernels_named($0) != nil } }

private func uniform(_ count: Int, _ rng: inout SeededGenerator) -> [Float] {
    (0..<count).map { _ in Float.random(in: -2...2, using: &rng) }
}

private struct FlatResult {
    var status: Int32
    var distances: [Float]
    var labels: [Int64]
}

/// rowsBelow: 1 forces the GEMM path for every batch, Int.max the one-query rows path, 0 the built-in choice.
private func flatSearch(_ path: String, rowsBelow: Int = 0, base: [Float], d: Int, queries: [Float], k: Int,
                        l2: Bool, allowed: [UInt8]? = nil) -> FlatResult {
    let n = base.count / d, nq = queries.count / d
    var distances = [Float](repeating: .nan, count: nq * k)
    var labels = [Int64](repeating: -7, count: nq * k)
    let status = dml_flat_search_on(path, rowsBelow, base, n, d, nil, allowed, queries, nq, k,
                                    l2 ? DML_FLAT_L2 : DML_FLAT_INNER_PRODUCT, &distances, &labels)
    return FlatResult(status: status, distances: distances, labels: labels)
}

/// Score of base row i for a query, in double: the squared L2 distance or the inner product, with the scale of its
/// float rounding error (|x|^2 + |y|^2, or sum |x_j y_j|).
private func exactScore(_ base: [Float], _ i: Int, _ query: ArraySlice<Float>, d: Int, l2: Bool) -> (Double, Double) {
    var score = 0.0, scale = 0.0
    for j in 0..<d {
        let a = Double(query[query.startIndex + j]), b = Double(base[i * d + j])
        if l2 {
            score += (a - b) * (a - b); scale += a * a + b * b
        } else {
            score += a * b; scale += abs(a * b)
        }
    }
    return (score, scale)
}

/// Checks one search result against the double reference: every returned id's distance matches its exact score,
/// each rank holds the exact rank's score (ids may differ only between scores equal within float rounding), ids
/// are distinct, and the slots past min(k, rows) are -1 / +-inf. Only rows whose `allowed` entry is nonzero count
/// (every row without one). Comparisons are written to fail on NaN.
private func expectExact(_ r: FlatResult, base: [Float], d: Int, queries: [Float], k: Int, l2: Bool,
                         allowed: [UInt8]? = nil, _ label: String) {
    #expect(r.status == 0, "\(label): status \(r.status)")
    guard r.status == 0 else { return }
    let n = base.count / d, nq = queries.count / d
    let rows = (0..<n).filter { allowed == nil || allowed![$0] != 0 }
    for q in 0..<nq {
        let query = queries[q * d..<(q + 1) * d]
        let scored = (0..<n).map { exactScore(base, $0, query, d: d, l2: l2) }
        let order = rows.sorted { l2 ? scored[$0].0 < scored[$1].0 : scored[$0].0 > scored[$1].0 }
        let ids = r.labels[q * k..<(q + 1) * k]
        #expect(Set(ids.filter { $0 >= 0 }).count == ids.filter { $0 >= 0 }.count, "\(label) q\(q): repeated ids")
        for e in 0..<k {
            let got = r.labels[q * k + e], distance = r.distances[q * k + e]
            if e >= min(k, rows.count) {
                #expect(got == -1 && distance == (l2 ? Float.infinity : -Float.infinity), "\(label) q\(q) #\(e): padding")
                continue
            }
            guard got >= 0, got < n, allowed == nil || allowed![Int(got)] != 0 else {
                Issue.record("\(label) q\(q) #\(e): id \(got) out of range or not allowed")
                continue
            }
            let (own, scale) = scored[Int(got)]
            let (want, _) = scored[order[e]]
            #expect(abs(Double(distance) - own) <= 1e-5 * scale + 1e-4 * abs(own), "\(label) q\(q) #\(e): \(distance) vs \(own)")
            #expect(abs(own - want) <= 1e-5 * max(1, scale), "\(label) q\(q) #\(e): id \(got) scores \(own), rank holds \(want)")
        }
    }
}

@Suite struct FlatSearchMatchesADoubleReference {
    // (n, d, nq, k): empty base, k > n, k = n, k = 1, d = 1 and d off every SIMD width, one query and many.
    static let shapes: [(Int, Int, Int, Int)] = [
        (0, 5, 3, 4), (7, 3, 4, 10), (40, 9, 13, 40), (100, 1, 5, 1), (257, 17, 1, 5), (300, 33, 37, 10),
        (129, 128, 70, 16), (61, 131, 33, 3),
    ]

    @Test(arguments: [true, false])
    func everyPathAndShape(l2: Bool) throws {
        var rng = SeededGenerator(seed: 31)
        for (n, d, nq, k) in Self.shapes {
            let base = uniform(n * d, &rng), queries = uniform(nq * d, &rng)
            for path in flatPaths() {
                for rowsBelow in [0, 1, Int.max] {
                    let r = flatSearch(path, rowsBelow: rowsBelow, base: base, d: d, queries: queries, k: k, l2: l2)
                    expectExact(r, base: base, d: d, queries: queries, k: k, l2: l2,
                                "\(path) rowsBelow \(rowsBelow) n\(n) d\(d) nq\(nq) k\(k) \(l2 ? "L2" : "IP")")
                }
            }
        }
    }

    @Test func everyPathAgreesWithFAISSOnClusteredData() throws {
        // Clustered data (many near neighbours) through FAISS's own IndexFlat, unwrapped and under an IDMap2.
        let d = 48, n = 1500, nq = 45, k = 12
        let base = clusteredVectors(n, d, seed: 41), queries = clusteredVectors(nq, d, seed: 42)
        for metric in [CFAISS_METRIC_L2, CFAISS_METRIC_INNER_PRODUCT] {
            var raw: OpaquePointer?
            #expect(cfaiss_index_factory(Int32(d), "Flat", metric, &raw) == CFAISS_OK)
            let flat = try #require(raw)
            defer { cfaiss_index_free(flat) }
            #expect(cfaiss_index_add(flat, Int64(n), base) == CFAISS_OK)
            func search(_ path: cfaiss_search_path, _ batch: [Float]) -> FlatResult {
                let m = batch.count / d
                var dist = [Float](repeating: .nan, count: m * k), ids = [Int64](repeating: -7, count: m * k)
                let s = cfaiss_index_search_on_path(flat, Int64(m), batch, Int64(k), nil, &dist, &ids, path)
                return FlatResult(status: s == CFAISS_OK ? 0 : -1, distances: dist, labels: ids)
            }
            for batch in [Array(queries[0..<d]), queries] {  // one query (rows path) and a batch (GEMM path)
                let ours = search(CFAISS_SEARCH_OWN, batch), theirs = search(CFAISS_SEARCH_FAISS, batch)
                let l2 = metric == CFAISS_METRIC_L2
                expectExact(ours, base: base, d: d, queries: batch, k: k, l2: l2, "own \(metric)")
                expectExact(theirs, base: base, d: d, queries: batch, k: k, l2: l2, "FAISS \(metric)")
                for i in 0..<ours.labels.count where ours.labels[i] != theirs.labels[i] {
                    // A swap is allowed only between scores equal within float rounding.
                    #expect(abs(ours.distances[i] - theirs.distances[i]) <= 1e-5 * max(1, abs(theirs.distances[i])),
                            "own vs FAISS \(metric) slot \(i): \(ours.labels[i]) / \(theirs.labels[i])")
                }
            }
        }
    }

    @Test func idMapLabelsAreTheCallersIDs() throws {
        let d = 20, n = 300, k = 6
        let base = clusteredVectors(n, d, seed: 51), queries = clusteredVectors(9, d, seed: 52)
        let ids = (0..<n).map { Int64(1_000_003 * ($0 + 1) % 99_991) + 5_000 }
        var rawFlat: OpaquePointer?, rawMap: OpaquePointer?
        #expect(cfaiss_index_factory(Int32(d), "Flat", CFAISS_METRIC_L2, &rawFlat) == CFAISS_OK)
        let flat = try #require(rawFlat)
        #expect(cfaiss_index_wrap_idmap(flat, &rawMap) == CFAISS_OK)
        let map = try #require(rawMap)
        defer { cfaiss_index_free(map) }
        #expect(cfaiss_index_add_with_ids(map, Int64(n), base, ids) == CFAISS_OK)
        for batch in [Array(queries[0..<d]), queries] {
            let m = batch.count / d
            var od = [Float](repeating: 0, count: m * k), ol = [Int64](repeating: 0, count: m * k)
            var fd = od, fl = ol
            #expect(cfaiss_index_search_on_path(map, Int64(m), batch, Int64(k), nil, &od, &ol, CFAISS_SEARCH_OWN) == CFAISS_OK)
            #expect(cfaiss_index_search_on_path(map, Int64(m), batch, Int64(k), nil, &fd, &fl, CFAISS_SEARCH_FAISS) == CFAISS_OK)
            #expect(ol == fl)
            #expect(zip(od, fd).allSatisfy { abs($0 - $1) <= 1e-4 * max(1, abs($1)) })
            let plain = flatSearch(try #require(flatPaths().last), base: base, d: d, queries: batch, k: k, l2: true)
            #expect(ol == plain.labels.map { ids[Int($0)] })
        }
    }

    @Test func anAllowMaskKeepsOnlyItsRows() throws {
        var rng = SeededGenerator(seed: 91)
        for (n, d, nq, k) in [(300, 21, 19, 10), (50, 8, 3, 30), (40, 5, 6, 4)] {
            let base = uniform(n * d, &rng), queries = uniform(nq * d, &rng)
            // About a third of the rows; the last shape allows none (every slot missing).
            let allowed = (0..<n).map { _ in UInt8(n == 40 ? 0 : (UInt64.random(in: 0..<3, using: &rng) == 0 ? 1 : 0)) }
            for path in flatPaths() {
                for rowsBelow in [1, Int.max] {
                    for l2 in [true, false] {
                        let r = flatSearch(path, rowsBelow: rowsBelow, base: base, d: d, queries: queries, k: k, l2: l2,
                                           allowed: allowed)
                        expectExact(r, base: base, d: d, queries: queries, k: k, l2: l2, allowed: allowed,
                                    "\(path) rowsBelow \(rowsBelow) filtered n\(n) k\(k) \(l2 ? "L2" : "IP")")
                    }
                }
            }
        }
    }

    @Test(arguments: ["Flat", "HNSW16"])
    func filteredSearchesAgreeWithFAISS(factory: String) throws {
        // Under an IDMap2, an allow-list of caller ids; filtered HNSW searches run exactly on the HNSW's storage.
        let d = 16, n = 800, k = 8
        let base = clusteredVectors(n, d, seed: 93), queries = clusteredVectors(12, d, seed: 94)
        let ids = (0..<n).map { Int64($0) * 7 + 3 }
        let allowedIDs = ids.enumerated().filter { $0.offset % 5 == 1 }.map(\.element) + [999_999]  // plus an unknown id
        var rawInner: OpaquePointer?, rawMap: OpaquePointer?
        #expect(cfaiss_index_factory(Int32(d), factory, CFAISS_METRIC_L2, &rawInner) == CFAISS_OK)
        let inner = try #require(rawInner)
        #expect(cfaiss_index_wrap_idmap(inner, &rawMap) == CFAISS_OK)
        let map = try #require(rawMap)
        defer { cfaiss_index_free(map) }
        #expect(cfaiss_index_add_with_ids(map, Int64(n), base, ids) == CFAISS_OK)
        allowedIDs.withUnsafeBufferPointer { allow in
            var params = cfaiss_search_params(nprobe: 0, ef_search: 0, allowed_ids: allow.baseAddress,
                                              allowed_count: Int64(allow.count))
            for batch in [Array(queries[0..<d]), queries] {
                let m = batch.count / d
                var od = [Float](repeating: 0, count: m * k), ol = [Int64](repeating: 0, count: m * k)
                var fd = od, fl = ol
                #expect(cfaiss_index_search_on_path(map, Int64(m), batch, Int64(k), &params, &od, &ol, CFAISS_SEARCH_OWN) == CFAISS_OK)
                #expect(cfaiss_index_search_on_path(map, Int64(m), batch, Int64(k), &params, &fd, &fl, CFAISS_SEARCH_FAISS) == CFAISS_OK)
                #expect(ol == fl, "\(factory) m \(m)")
                #expect(zip(od, fd).allSatisfy { abs($0 - $1) <= 1e-4 * max(1, abs($1)) }, "\(factory) m \(m)")
                #expect(ol.allSatisfy { Set(allowedIDs).contains($0) })
            }
        }
    }

    @Test func equalScoresKeepTheLowerRowFirst() throws {
        // Row 3's vector also sits at rows 8, 12 and 29: for that query all four tie (L2 0, same IP).
        var rng = SeededGenerator(seed: 61)
        let d = 19, n = 40
        var base = uniform(n * d, &rng)
        for copy in [8, 12, 29] { for j in 0..<d { base[copy * d + j] = base[3 * d + j] } }
        let query = Array(base[3 * d..<4 * d])
        let queries = query + uniform(6 * d, &rng) + query  // a batch, so the GEMM path runs too
        for path in flatPaths() {
            for rowsBelow in [1, Int.max] {
                let l2 = flatSearch(path, rowsBelow: rowsBelow, base: base, d: d, queries: queries, k: 5, l2: true)
                #expect(Array(l2.labels[0..<4]) == [3, 8, 12, 29] && Array(l2.labels[35..<39]) == [3, 8, 12, 29],
                        "\(path) rowsBelow \(rowsBelow) L2 tie order \(l2.labels[0..<4])")
                #expect(l2.distances[0..<4].allSatisfy { $0 >= 0 && $0 <= 1e-4 }, "\(path) L2 self distance")
                // IP: the four copies score the same; whatever ranks above them, they appear in row order.
                let ip = flatSearch(path, rowsBelow: rowsBelow, base: base, d: d, queries: queries, k: n, l2: false)
                let copies = ip.labels[0..<n].filter { [3, 8, 12, 29].contains($0) }
                #expect(copies == [3, 8, 12, 29], "\(path) rowsBelow \(rowsBelow) IP tie order \(copies)")
            }
        }
    }

    @Test func nanQueriesFindNothingAndNaNRowsAreNeverReturned() throws {
        var rng = SeededGenerator(seed: 71)
        let d = 11, n = 90, k = 4
        var base = uniform(n * d, &rng)
        base[17 * d + 5] = .nan  // row 17 can never be compared
        var queries = uniform(8 * d, &rng)
        queries[2 * d + 3] = .nan
        let clean = queries.enumerated().filter { $0.offset / d != 2 }.map(\.element)
        for path in flatPaths() {
            for rowsBelow in [1, Int.max] {
                for l2 in [true, false] {
                    let r = flatSearch(path, rowsBelow: rowsBelow, base: base, d: d, queries: queries, k: k, l2: l2)
                    #expect(r.status == 0)
                    #expect(Array(r.labels[2 * k..<3 * k]) == [-1, -1, -1, -1], "\(path) NaN query ids")
                    #expect(r.distances[2 * k..<3 * k].allSatisfy { $0 == (l2 ? .infinity : -.infinity) })
                    #expect(!r.labels.contains(17), "\(path) returned the NaN row")
                    // The other queries get what they get without the NaN one beside them.
                    let alone = flatSearch(path, rowsBelow: rowsBelow, base: base, d: d, queries: clean, k: k, l2: l2)
                    let others = (0..<8).filter { $0 != 2 }.flatMap { r.labels[$0 * k..<($0 + 1) * k] }
                    #expect(others == alone.labels, "\(path) rowsBelow \(rowsBelow) l2 \(l2)")
                }
            }
        }
    }

    @Test func badArgumentsAreRefused() throws {
        let base: [Float] = [1, 2, 3, 4], query: [Float] = [1, 2]
        var dist = [Float](repeating: 0, count: 4), ids = [Int64](repeating: 0, count: 4)
        #expect(dml_flat_search(base, 2, 0, nil, nil, query, 1, 1, DML_FLAT_L2, &dist, &ids) == -1)  // d = 0
        #expect(dml_flat_search(base, 2, 2, nil, nil, query, 1, 0, DML_FLAT_L2, &dist, &ids) == -1)  // k = 0
        #expect(dml_flat_search(nil, 2, 2, nil, nil, query, 1, 1, DML_FLAT_L2, &dist, &ids) == -1)
        #expect(dml_flat_search(base, 2, 2, nil, nil, nil, 1, 1, DML_FLAT_L2, &dist, &ids) == -1)
        #expect(dml_flat_search(base, 2, 2, nil, nil, query, 1, 1, DMLFlatMetric(rawValue: 7), &dist, &ids) == -1)
        #expect(dml_flat_search(base, 2, 2, nil, nil, query, Int.max, 4, DML_FLAT_L2, &dist, &ids) == -1)  // nq x k overflows
        #expect(dml_flat_search(base, 2, 2, nil, nil, nil, 0, 3, DML_FLAT_L2, nil, nil) == 0)  // no queries: nothing to do
        #expect(dml_flat_search_on("sse9", 0, base, 2, 2, nil, nil, query, 1, 1, DML_FLAT_L2, &dist, &ids) == -1)
        // Batches use the caller's |y|^2 as given (a cache): right ones give the exact answer, and a wrong one shows
        // they are not recomputed (row 0 "at" |y|^2 = 100 loses to row 1 for the query (1, 2)).
        for path in flatPaths() {
            var got = [Float](repeating: 0, count: 2), gotIDs = [Int64](repeating: 0, count: 2)
            #expect(dml_flat_search_on(path, 1, base, 2, 2, [5, 25], nil, [1, 2, 3, 4], 2, 1, DML_FLAT_L2, &got, &gotIDs) == 0)
            #expect(gotIDs == [0, 1] && got == [0, 0], "\(path)")
            #expect(dml_flat_search_on(path, 1, base, 2, 2, [100, 25], nil, [1, 2, 3, 4], 2, 1, DML_FLAT_L2, &got, &gotIDs) == 0)
            #expect(gotIDs == [1, 1], "\(path)")
        }
    }
}

@Suite(.serialized) struct FlatSearchThreads {
    /// Splitting the base rows (or, when the per-thread heaps would be large, the queries) between threads gives
    /// the single-thread answer, and it is exact.
    @Test func twoThreadsGiveTheOneThreadAnswer() throws {
        let saved = VectorIndex.threadCount
        defer { VectorIndex.setThreadCount(saved) }
        var rng = SeededGenerator(seed: 81)
        let d = 128, n = 20_000  // n x d is above the size at which one query's base is split between threads
        let base = uniform(n * d, &rng)
        // Rows path and GEMM split by base rows; the last (64 x k = n heaps per thread) splits the queries.
        for (nq, k) in [(1, 9), (3, 9), (7, 9), (40, 9), (64, 9), (64, n)] {
            let queries = uniform(nq * d, &rng)
            for path in flatPaths() where path != "scalar" || nq <= 3 {
                for l2 in [true, false] {
                    VectorIndex.setThreadCount(1)
                    let one = flatSearch(path, base: base, d: d, queries: queries, k: k, l2: l2)
                    VectorIndex.setThreadCount(2)
                    let two = flatSearch(path, base: base, d: d, queries: queries, k: k, l2: l2)
                    #expect(one.labels == two.labels && one.distances == two.distances, "\(path) nq \(nq) k \(k) l2 \(l2)")
                    if nq <= 3 {
                        expectExact(two, base: base, d: d, queries: queries, k: k, l2: l2, "\(path) nq \(nq) 2 threads")
                    }
                }
            }
        }
    }
}
