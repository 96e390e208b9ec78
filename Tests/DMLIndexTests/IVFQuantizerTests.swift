import CFaiss
import DMLIndex
import Foundation
import Testing

// IVF indexes with a plain Flat coarse quantizer run it on DMLKit's exact search (k-means training, add's
// assignment, every search's coarse step). Checked against the same index on FAISS's own quantizer search, against
// a brute force, and through files and clones (FAISS sees the IndexFlat it always saw).

private func ivf(_ description: String, d: Int, metric: cfaiss_metric, path: cfaiss_search_path,
                 train: [Float], add: [Float]) throws -> OpaquePointer {
    var raw: OpaquePointer?
    #expect(cfaiss_index_factory(Int32(d), description, metric, &raw) == CFAISS_OK)
    let index = try #require(raw)
    #expect(cfaiss_index_set_quantizer_path(index, path) == 0, "\(description) has DMLKit's quantizer")
    #expect(cfaiss_index_train(index, Int64(train.count / d), train) == CFAISS_OK)
    if description.hasPrefix("IDMap") {
        let ids = (0..<Int64(add.count / d)).map { 7 * $0 + 1 }
        #expect(cfaiss_index_add_with_ids(index, Int64(add.count / d), add, ids) == CFAISS_OK)
    } else {
        #expect(cfaiss_index_add(index, Int64(add.count / d), add) == CFAISS_OK)
    }
    return index
}

private func search(_ index: OpaquePointer, _ queries: [Float], d: Int, k: Int, nprobe: Int32) -> ([Float], [Int64]) {
    let nq = queries.count / d
    var distances = [Float](repeating: .nan, count: nq * k), labels = [Int64](repeating: -7, count: nq * k)
    var params = cfaiss_search_params(nprobe: nprobe, ef_search: 0, allowed_ids: nil, allowed_count: -1)
    #expect(cfaiss_index_search(index, Int64(nq), queries, Int64(k), &params, &distances, &labels) == CFAISS_OK)
    return (distances, labels)
}

@Suite struct IVFQuantizerTests {
    @Test func trainingAddAndSearchAgreeWithFAISSsQuantizer() throws {
        let d = 32, k = 10, nq = 60
        let base = clusteredVectors(4000, d, clusters: 40, seed: 51), queries = clusteredVectors(nq, d, clusters: 40, seed: 52)
        for metric in [CFAISS_METRIC_L2, CFAISS_METRIC_INNER_PRODUCT] {
            let ours = try ivf("IVF32,Flat", d: d, metric: metric, path: CFAISS_SEARCH_OWN, train: base, add: base)
            let theirs = try ivf("IVF32,Flat", d: d, metric: metric, path: CFAISS_SEARCH_FAISS, train: base, add: base)
            defer { cfaiss_index_free(ours); cfaiss_index_free(theirs) }
            // Few lists probed: k-means and assignment differ only where float rounding breaks a near tie.
            let (_, a) = search(ours, queries, d: d, k: k, nprobe: 4)
            let (_, b) = search(theirs, queries, d: d, k: k, nprobe: 4)
            let same = zip(a, b).filter { $0 == $1 }.count
            #expect(Double(same) >= 0.97 * Double(a.count), "metric \(metric): \(same) of \(a.count) slots agree")
            // Every list probed: exact search, whatever the centroids.
            let (_, all) = search(ours, queries, d: d, k: k, nprobe: 32)
            let exact = bruteForce(base: base, queries: queries, d: d, k: k,
                                   metric: metric == CFAISS_METRIC_L2 ? .l2 : .innerProduct)
            var found = 0
            for q in 0..<nq { found += Set(all[q * k..<(q + 1) * k]).intersection(exact[q].map(\.id)).count }
            #expect(Double(found) >= 0.99 * Double(nq * k), "metric \(metric): exact recall \(found) / \(nq * k)")
        }
    }

    @Test func filesAndClonesKeepTheQuantizerAndTheResults() throws {
        let d = 16, k = 5
        let base = clusteredVectors(2000, d, seed: 53), queries = clusteredVectors(20, d, seed: 54)
        for description in ["IVF16,Flat", "IDMap,IVF16,Flat", "IVF16,SQ8"] {
            let index = try ivf(description, d: d, metric: CFAISS_METRIC_L2, path: CFAISS_SEARCH_AUTO, train: base, add: base)
            defer { cfaiss_index_free(index) }
            let before = search(index, queries, d: d, k: k, nprobe: 3)

            var data: UnsafeMutablePointer<UInt8>?
            var size = 0
            #expect(cfaiss_write_index_buffer(index, &data, &size) == CFAISS_OK)
            defer { cfaiss_buffer_free(data) }
            var read: OpaquePointer?
            #expect(cfaiss_read_index_buffer(data, size, &read) == CFAISS_OK)
            let loaded = try #require(read)
            defer { cfaiss_index_free(loaded) }
            #expect(cfaiss_index_set_quantizer_path(loaded, CFAISS_SEARCH_AUTO) == 0, "\(description) read back")
            let after = search(loaded, queries, d: d, k: k, nprobe: 3)
            #expect(after.1 == before.1 && after.0.map(\.bitPattern) == before.0.map(\.bitPattern), "\(description)")

            // The file FAISS writes from the read-back index is byte for byte the first one.
            var again: UnsafeMutablePointer<UInt8>?
            var againSize = 0
            #expect(cfaiss_write_index_buffer(loaded, &again, &againSize) == CFAISS_OK)
            defer { cfaiss_buffer_free(again) }
            #expect(againSize == size && memcmp(data!, again!, size) == 0, "\(description) rewritten")

            var copied: OpaquePointer?
            #expect(cfaiss_index_clone(index, &copied) == CFAISS_OK)
            let copy = try #require(copied)
            defer { cfaiss_index_free(copy) }
            #expect(cfaiss_index_set_quantizer_path(copy, CFAISS_SEARCH_AUTO) == 0, "\(description) clone")
            #expect(search(copy, queries, d: d, k: k, nprobe: 3).1 == before.1, "\(description) clone")
        }
    }

    @Test func indexesWithoutAFlatQuantizerAreLeftAlone() throws {
        for description in ["Flat", "HNSW8", "IVF8_HNSW8,Flat", "PQ4"] {
            var raw: OpaquePointer?
            #expect(cfaiss_index_factory(16, description, CFAISS_METRIC_L2, &raw) == CFAISS_OK)
            let index = try #require(raw)
            defer { cfaiss_index_free(index) }
            #expect(cfaiss_index_set_quantizer_path(index, CFAISS_SEARCH_OWN) == -1, "\(description)")
        }
    }

    /// IVF-Flat scans its lists with DMLKit's scanner: FAISS's steps with batched distances, so the same trained index
    /// gives bitwise FAISS's results on either path (k larger than what the probed lists hold included: -1 slots).
    @Test func ivfFlatScanGivesFAISSsResults() throws {
        let d = 24
        let base = clusteredVectors(3000, d, clusters: 30, seed: 55), queries = clusteredVectors(40, d, clusters: 30, seed: 56)
        for description in ["IVF24,Flat", "IDMap,IVF24,Flat"] {
            for metric in [CFAISS_METRIC_L2, CFAISS_METRIC_INNER_PRODUCT] {
                let index = try ivf(description, d: d, metric: metric, path: CFAISS_SEARCH_AUTO, train: base, add: base)
                defer { cfaiss_index_free(index) }
                #expect(cfaiss_index_has_own_ivf_scan(index) == 1, "\(description)")
                for (k, nprobe) in [(1, 1), (10, 3), (300, 1), (50, 24)] {
                    #expect(cfaiss_index_set_quantizer_path(index, CFAISS_SEARCH_OWN) == 0)
                    let ours = search(index, queries, d: d, k: k, nprobe: Int32(nprobe))
                    #expect(cfaiss_index_set_quantizer_path(index, CFAISS_SEARCH_FAISS) == 0)
                    let theirs = search(index, queries, d: d, k: k, nprobe: Int32(nprobe))
                    #expect(ours.1 == theirs.1, "\(description) metric \(metric) k \(k) nprobe \(nprobe): labels")
                    #expect(ours.0.map(\.bitPattern) == theirs.0.map(\.bitPattern), "\(description) k \(k): distances")
                    if k == 300 { #expect(ours.1.contains(-1), "k past the probed list fills with -1") }
                }
                // Range search goes through the same scanner.
                var results: [[Int64]] = []
                for path in [CFAISS_SEARCH_OWN, CFAISS_SEARCH_FAISS] {
                    #expect(cfaiss_index_set_quantizer_path(index, path) == 0)
                    var params = cfaiss_search_params(nprobe: 4, ef_search: 0, allowed_ids: nil, allowed_count: -1)
                    var out: UnsafeMutablePointer<cfaiss_range_result>?
                    let radius: Float = metric == CFAISS_METRIC_L2 ? 2.0 : 1.5
                    #expect(cfaiss_index_range_search(index, Int64(queries.count / d), queries, radius, &params, &out) == CFAISS_OK)
                    let r = try #require(out)
                    defer { cfaiss_range_result_free(r) }
                    let total = Int(r.pointee.lims[Int(r.pointee.nq)])
                    results.append(Array(UnsafeBufferPointer(start: r.pointee.labels, count: total)))
                }
                #expect(results[0] == results[1], "\(description) metric \(metric): range labels")
            }
        }
        // Read back and cloned indexes keep the scanner; other IVF kinds never get it.
        let flat = try ivf("IVF8,Flat", d: d, metric: CFAISS_METRIC_L2, path: CFAISS_SEARCH_AUTO, train: base, add: base)
        defer { cfaiss_index_free(flat) }
        var copied: OpaquePointer?
        #expect(cfaiss_index_clone(flat, &copied) == CFAISS_OK)
        defer { cfaiss_index_free(copied) }
        #expect(cfaiss_index_has_own_ivf_scan(copied) == 1, "clone")
        var data: UnsafeMutablePointer<UInt8>?
        var size = 0
        #expect(cfaiss_write_index_buffer(flat, &data, &size) == CFAISS_OK)
        defer { cfaiss_buffer_free(data) }
        var read: OpaquePointer?
        #expect(cfaiss_read_index_buffer(data, size, &read) == CFAISS_OK)
        defer { cfaiss_index_free(read) }
        #expect(cfaiss_index_has_own_ivf_scan(read) == 1, "read back")
        let sq = try ivf("IVF8,SQ8", d: d, metric: CFAISS_METRIC_L2, path: CFAISS_SEARCH_AUTO, train: base, add: base)
        defer { cfaiss_index_free(sq) }
        #expect(cfaiss_index_has_own_ivf_scan(sq) == 0)
    }
}
