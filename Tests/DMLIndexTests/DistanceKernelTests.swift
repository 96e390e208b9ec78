import CDMLKernels
import DMLIndex
import Foundation
import Testing

/// The kernel paths this CPU can run (scalar always; avx2 / avx512 where cpuid has them).
private func availablePaths() -> [(String, DMLDistanceKernels)] {
    ["scalar", "avx2", "avx512"].compactMap { name in dml_distance_kernels_named(name).map { (name, $0.pointee) } }
}

private func randomFloats(_ n: Int, _ rng: inout SeededGenerator) -> [Float] {
    (0..<n).map { _ in Float.random(in: -2...2, using: &rng) }
}

/// Fails on NaN: the comparison is written so that NaN never passes.
private func close(_ got: Float, _ want: Double, scale: Double) -> Bool {
    abs(Double(got) - want) <= 1e-5 * max(1, scale)
}

// Dimensions around every SIMD width and its tails (16 lanes x 2 accumulators on AVX-512, 8 x 2 on AVX2).
private let dimensions = [0, 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 48, 63, 64, 100, 128, 131, 257]

@Suite struct DistanceKernelsMatchADoubleReference {
    @Test func everyPathIsListedAndTheActiveOneIsTheBestAvailable() throws {
        #expect(availablePaths().first?.0 == "scalar")
        let active = String(cString: dml_distance_kernels().pointee.name)
        #expect(active == availablePaths().last?.0 || ProcessInfo.processInfo.environment["DMLKIT_SIMD"] != nil)
        #expect(dml_distance_kernels_named("neon-or-unknown") == nil)
        #expect(dml_distance_kernels_select("no-such-path") == -1)
    }

    @Test func theSettingCanOnlyLowerThePath() throws {
        let best = try #require(availablePaths().last).0
        func chosen(_ value: String?) -> String { String(cString: dml_distance_kernels_for_setting(value).pointee.name) }
        #expect(chosen(nil) == best)
        #expect(chosen("") == best)
        #expect(chosen("scalar") == "scalar")
        #expect(chosen("avx2") == (dml_distance_kernels_named("avx2") != nil ? "avx2" : best))
        #expect(chosen("avx512") == best)
        #expect(chosen("sse9") == best)
    }

    @Test func pairwiseReductions() throws {
        var rng = SeededGenerator(seed: 11)
        for (name, k) in availablePaths() {
            for d in dimensions {
                let x = randomFloats(d, &rng), y = randomFloats(d, &rng)
                var l2 = 0.0, ip = 0.0, ipScale = 0.0, norm = 0.0, l1 = 0.0, linf = 0.0
                for i in 0..<d {
                    let a = Double(x[i]), b = Double(y[i])
                    l2 += (a - b) * (a - b); ip += a * b; ipScale += abs(a * b); norm += a * a
                    l1 += abs(a - b); linf = max(linf, abs(a - b))
                }
                #expect(close(k.l2sqr(x, y, d), l2, scale: l2), "\(name) l2sqr d=\(d)")
                #expect(close(k.inner_product(x, y, d), ip, scale: ipScale), "\(name) ip d=\(d)")
                #expect(close(k.norm_l2sqr(x, d), norm, scale: norm), "\(name) norm d=\(d)")
                #expect(close(k.l1(x, y, d), l1, scale: l1), "\(name) l1 d=\(d)")
                #expect(close(k.linf(x, y, d), linf, scale: linf), "\(name) linf d=\(d)")
            }
        }
    }

    @Test func manyRowsAndNoWriteBeyondTheOutput() throws {
        var rng = SeededGenerator(seed: 12)
        let sentinel: Float = -12345
        for (name, k) in availablePaths() {
            for d in [1, 2, 7, 16, 33, 128] {
                for ny in [0, 1, 3, 17] {
                    let x = randomFloats(d, &rng), y = randomFloats(d * ny, &rng)
                    var l2 = [Float](repeating: sentinel, count: ny + 1)
                    var ip = [Float](repeating: sentinel, count: ny + 1)
                    k.l2sqr_ny(&l2, x, y, d, ny)
                    k.inner_products_ny(&ip, x, y, d, ny)
                    for i in 0..<ny {
                        var wantL2 = 0.0, wantIP = 0.0, ipScale = 0.0
                        for j in 0..<d {
                            let a = Double(x[j]), b = Double(y[i * d + j])
                            wantL2 += (a - b) * (a - b); wantIP += a * b; ipScale += abs(a * b)
                        }
                        #expect(close(l2[i], wantL2, scale: wantL2), "\(name) l2sqr_ny d=\(d) ny=\(ny) i=\(i)")
                        #expect(close(ip[i], wantIP, scale: ipScale), "\(name) ip_ny d=\(d) ny=\(ny) i=\(i)")
                    }
                    #expect(l2[ny] == sentinel && ip[ny] == sentinel, "\(name) wrote past ny=\(ny)")
                }
            }
        }
    }

    @Test func transposedRowsUseTheGivenSquaredLengthsAndStride() throws {
        var rng = SeededGenerator(seed: 13)
        let sentinel: Float = -12345
        for (name, k) in availablePaths() {
            for (d, ny) in [(1, 1), (3, 0), (5, 7), (16, 16), (33, 21), (64, 40)] {
                let stride = ny + 3  // d_offset is wider than ny, as in FAISS's k-means blocks
                let x = randomFloats(d, &rng), y = randomFloats(d * stride, &rng)
                let sq = (0..<ny).map { i in (0..<d).reduce(Float(0)) { $0 + y[$1 * stride + i] * y[$1 * stride + i] } }
                var dis = [Float](repeating: sentinel, count: ny + 1)
                k.l2sqr_ny_transposed(&dis, x, y, sq, d, stride, ny)
                for i in 0..<ny {
                    var want = 0.0, scale = 0.0
                    for j in 0..<d {
                        let diff = Double(x[j]) - Double(y[j * stride + i])
                        want += diff * diff; scale += Double(x[j] * x[j]) + Double(y[j * stride + i] * y[j * stride + i])
                    }
                    #expect(close(dis[i], want, scale: scale), "\(name) transposed d=\(d) ny=\(ny) i=\(i)")
                }
                #expect(dis[ny] == sentinel, "\(name) transposed wrote past ny=\(ny)")
            }
        }
    }

    @Test func elementwiseAndPQTables() throws {
        var rng = SeededGenerator(seed: 14)
        for (name, k) in availablePaths() {
            for n in [0, 1, 7, 16, 37] {
                let a = randomFloats(n, &rng), b = randomFloats(n, &rng)
                var c = [Float](repeating: .nan, count: n)
                k.madd(n, a, 0.75, b, &c)
                #expect((0..<n).allSatisfy { close(c[$0], Double(a[$0]) + 0.75 * Double(b[$0]), scale: 4) }, "\(name) madd")
                k.add(n, a, b, &c)
                #expect((0..<n).allSatisfy { close(c[$0], Double(a[$0]) + Double(b[$0]), scale: 4) }, "\(name) add")
                k.add_scalar(n, a, 1.5, &c)
                #expect((0..<n).allSatisfy { close(c[$0], Double(a[$0]) + 1.5, scale: 4) }, "\(name) add scalar")
                k.sub(n, a, b, &c)
                #expect((0..<n).allSatisfy { close(c[$0], Double(a[$0]) - Double(b[$0]), scale: 4) }, "\(name) sub")
            }
            let (m, ksub, nx) = (3, 24, 2)
            let centroids = randomFloats(m * ksub * 2, &rng), x = randomFloats(nx * 2 * m, &rng)
            for ip in [Int32(0), 1] {
                var tables = [Float](repeating: .nan, count: nx * m * ksub)
                k.pq_tables_dsub2(m, ksub, centroids, nx, x, ip, &tables)
                for i in 0..<nx { for j in 0..<m { for c in 0..<ksub {
                    let x0 = Double(x[i * 2 * m + 2 * j]), x1 = Double(x[i * 2 * m + 2 * j + 1])
                    let c0 = Double(centroids[(j * ksub + c) * 2]), c1 = Double(centroids[(j * ksub + c) * 2 + 1])
                    let want = ip == 1 ? x0 * c0 + x1 * c1 : (x0 - c0) * (x0 - c0) + (x1 - c1) * (x1 - c1)
                    #expect(close(tables[(i * m + j) * ksub + c], want, scale: 16), "\(name) pq ip=\(ip)")
                } } }
            }
        }
    }
}

/// The global symbols of FAISS 1.7.3's distances_simd.cpp.o that Sources/CFaiss/faiss_distances.cpp defines.
private let routedSymbols: Set<String> = [
    "_ZN5faiss10fvec_L2sqrEPKfS1_m", "_ZN5faiss11fvec_L1_refEPKfS1_m", "_ZN5faiss13fvec_L2sqr_nyEPfPKfS2_mm",
    "_ZN5faiss13fvec_Linf_refEPKfS1_m", "_ZN5faiss14fvec_L2sqr_refEPKfS1_m", "_ZN5faiss15fvec_norm_L2sqrEPKfm",
    "_ZN5faiss17fvec_L2sqr_ny_refEPfPKfS2_mm", "_ZN5faiss18fvec_inner_productEPKfS1_m",
    "_ZN5faiss19fvec_norm_L2sqr_refEPKfm", "_ZN5faiss20fvec_madd_and_argminEmPKffS1_Pf",
    "_ZN5faiss21fvec_L2sqr_ny_nearestEPfPKfS2_mm", "_ZN5faiss22fvec_inner_product_refEPKfS1_m",
    "_ZN5faiss22fvec_inner_products_nyEPfPKfS2_mm", "_ZN5faiss25fvec_L2sqr_ny_nearest_refEPfPKfS2_mm",
    "_ZN5faiss26fvec_inner_products_ny_refEPfPKfS2_mm", "_ZN5faiss27compute_PQ_dis_tables_dsub2EmmPKfmS1_bPf",
    "_ZN5faiss30fvec_L2sqr_ny_y_transposed_refEPfPKfS2_S2_mmm",
    "_ZN5faiss34fvec_L2sqr_ny_nearest_y_transposedEPfPKfS2_S2_mmm",
    "_ZN5faiss38fvec_L2sqr_ny_nearest_y_transposed_refEPfPKfS2_S2_mmm", "_ZN5faiss7fvec_L1EPKfS1_m",
    "_ZN5faiss8fvec_addEmPKfS1_Pf", "_ZN5faiss8fvec_addEmPKffPf", "_ZN5faiss8fvec_subEmPKfS1_Pf",
    "_ZN5faiss9fvec_LinfEPKfS1_m", "_ZN5faiss9fvec_maddEmPKffS1_Pf",
]

private func run(_ tool: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [tool] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0, "\(tool) \(arguments) failed")
    return String(decoding: data, as: UTF8.self)
}

/// Text symbols (type T) that `nm` lists as defined in a file.
private func definedTextSymbols(_ path: String) throws -> [String] {
    try run("nm", ["--defined-only", path]).split(separator: "\n").compactMap { line in
        let fields = line.split(separator: " ")
        return fields.count == 3 && fields[1] == "T" ? String(fields[2]) : nil
    }
}

@Suite(.serialized) struct FAISSDistanceSymbolsAreOurs {
    #if os(Linux)
    @Test func debiansMemberDefinesExactlyTheSymbolsWeRoute() throws {
        let archive = try #require(["/usr/lib/x86_64-linux-gnu/libfaiss.a", "/usr/lib/aarch64-linux-gnu/libfaiss.a",
                                    "/usr/lib/libfaiss.a"].first { FileManager.default.fileExists(atPath: $0) },
                                   "libfaiss.a not found")
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let member = dir.appendingPathComponent("distances_simd.cpp.o")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ar", "p", archive, "distances_simd.cpp.o"]
        #expect(FileManager.default.createFile(atPath: member.path, contents: nil))
        process.standardOutput = try FileHandle(forWritingTo: member)
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let theirs = Set(try definedTextSymbols(member.path))
        #expect(theirs == routedSymbols,
                "libfaiss.a's distances_simd.cpp.o changed: only theirs \(theirs.subtracting(routedSymbols)), only ours \(routedSymbols.subtracting(theirs)); update Sources/CFaiss/faiss_distances.cpp")
    }

    @Test func thisBinaryDefinesEachRoutedSymbolOnce() throws {
        let ours = try definedTextSymbols(URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path).filter { routedSymbols.contains($0) }
        #expect(ours.sorted() == routedSymbols.sorted())
    }
    #endif

    /// FAISS's own indexes reach the kernel table: the counting hook sees their distance calls.
    @Test(arguments: ["Flat", "HNSW8", "IVF4,Flat", "PQ4x4"])
    func faissIndexesCallOurKernels(factory: String) throws {
        let d = 8  // PQ4x4 at d 8: 2-d sub-vectors, 16 centroids each (fast to train)
        let base = clusteredVectors(700, d, seed: 21)
        let index = try VectorIndex(dimension: d, factory: factory, metric: .l2)
        if factory.hasPrefix("IVF") || factory.hasPrefix("PQ") { try index.train(base) }
        _ = try index.add(base)
        dml_distance_kernels_set_counting(1)
        defer { dml_distance_kernels_set_counting(0) }
        let results = try index.search(vector: Array(base[0..<d]), k: 3)
        #expect(dml_distance_kernels_call_count() > 0, "\(factory) search did not call the routed kernels")
        #expect(results.count == 3)
    }
}
