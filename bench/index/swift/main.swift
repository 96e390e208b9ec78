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
    FileHandle.standardError.write(Data("usage: index-bench BASE.npy QUERIES.npy FACTORY K REPEATS [efSearch=N|nprobe=N]\n".utf8))
    exit(1)
}
do {
    let base = try Npy.readMatrix(contentsOf: URL(fileURLWithPath: arguments[1]))
    let queries = try Npy.readMatrix(contentsOf: URL(fileURLWithPath: arguments[2]))
    let factory = arguments[3]
    let k = Int(arguments[4]) ?? 10
    let repeats = Int(arguments[5]) ?? 3
    var parameters = SearchParameters()
    if arguments.count > 6 {
        let parts = arguments[6].split(separator: "=")
        if parts[0] == "efSearch" { parameters.efSearch = Int(parts[1]) }
        if parts[0] == "nprobe" { parameters.nprobe = Int(parts[1]) }
    }
    let index = try VectorIndex(dimension: base.columns, factory: factory, metric: .l2)
    let train = try index.isTrained ? 0 : seconds { try index.train(base.values) }
    let add = try seconds { try index.add(base.values) }
    var searchTimes: [Double] = []
    var results: SearchResults?
    for _ in 0..<repeats {
        searchTimes.append(try seconds { results = try index.search(queries.values, k: k, parameters: parameters) })
    }
    let out = URL(fileURLWithPath: arguments[2]).deletingLastPathComponent().appendingPathComponent("swift_ids.npy")
    try Npy.write(results!.ids, shape: [queries.rows, k], to: out)
    let report: [String: Any] = [
        "train_s": train, "add_s": add, "search_s": searchTimes.min()!, "ids": out.path,
        "omp_threads": VectorIndex.threadCount,
    ]
    print(String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]), as: UTF8.self))
} catch {
    FileHandle.standardError.write(Data("index-bench: \(error)\n".utf8))
    exit(1)
}
