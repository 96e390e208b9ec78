// Times DMLIndex's VectorIndex on the benchmark data, for bench/index/run.py, which runs the Python FAISS peers
// on the same files with the same thread settings. Prints one JSON object per line.
import DMLIndex
import DMLNpy
import Foundation

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

let arguments = CommandLine.arguments
guard arguments.count >= 6 else {
    FileHandle.standardError.write(Data("usage: index-bench BASE.npy QUERIES.npy FACTORY K REPEATS [efSearch=N] [nprobe=N] [single=N]\n".utf8))
    exit(1)
}
do {
    let base = try Npy.readMatrix(contentsOf: URL(fileURLWithPath: arguments[1]))
    let queries = try Npy.readMatrix(contentsOf: URL(fileURLWithPath: arguments[2]))
    let factory = arguments[3]
    let k = Int(arguments[4]) ?? 10
    let repeats = Int(arguments[5]) ?? 3
    var parameters = SearchParameters()
    var singleQueries = 0  // > 0: also time this many one-query searches (latency percentiles)
    for option in arguments.dropFirst(6) {
        let parts = option.split(separator: "=")
        guard parts.count == 2, let value = Int(parts[1]) else { continue }
        if parts[0] == "efSearch" { parameters.efSearch = value }
        if parts[0] == "nprobe" { parameters.nprobe = value }
        if parts[0] == "single" { singleQueries = value }
    }
    let index = try VectorIndex(dimension: base.columns, factory: factory, metric: .l2)
    let train = try index.isTrained ? 0 : seconds { try index.train(base.values) }
    let add = try seconds { try index.add(base.values) }
    var searchTimes: [Double] = []
    var results: SearchResults?
    for _ in 0..<repeats {
        searchTimes.append(try seconds { results = try index.search(queries.values, k: k, parameters: parameters) })
    }
    // One query per call, as an app searches: each latency on its own, after one untimed warm-up query.
    var latencies: [Double] = []
    if singleQueries > 0 {
        let d = queries.columns
        _ = try index.search(vector: Array(queries.values[0..<d]), k: k, parameters: parameters)
        for i in 0..<singleQueries {
            let row = i % queries.rows
            let query = Array(queries.values[row * d..<(row + 1) * d])
            latencies.append(try seconds { _ = try index.search(vector: query, k: k, parameters: parameters) })
        }
    }
    let out = URL(fileURLWithPath: arguments[2]).deletingLastPathComponent().appendingPathComponent("swift_ids.npy")
    try Npy.write(results!.ids, shape: [queries.rows, k], to: out)
    var report: [String: Any] = [
        "train_s": train, "add_s": add, "search_s": searchTimes.min()!, "ids": out.path,
        "omp_threads": VectorIndex.threadCount,
    ]
    if !latencies.isEmpty { report["single_s"] = latencies }
    print(String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]), as: UTF8.self))
} catch {
    FileHandle.standardError.write(Data("index-bench: \(error)\n".utf8))
    exit(1)
}
