// Benchmark driver for bench/text/run.py: embeds a caption file with DMLText and prints one JSON line.
// Usage: text-bench MODEL_DIR CAPTIONS.txt BATCH THREADS [f32|f16|int8]
import CDMLBlas
import DMLText
import Foundation

func peakRSSMiB() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kib = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
        return kib / 1024
    }
    return 0
}

let arguments = CommandLine.arguments
guard arguments.count >= 5, let batch = Int(arguments[3]), let threads = Int(arguments[4]), batch >= 1, threads >= 1 else {
    FileHandle.standardError.write(Data("usage: text-bench MODEL_DIR CAPTIONS.txt BATCH THREADS [f32|f16|int8]\n".utf8))
    exit(2)
}
let precision = arguments.count > 5 ? WeightPrecision(rawValue: arguments[5]) ?? .f32 : .f32
do {
    let captions = try String(contentsOfFile: arguments[2], encoding: .utf8).split(separator: "\n").map(String.init)
    let loadStart = Date()
    let embedder = try TextEmbedder(directory: URL(fileURLWithPath: arguments[1]),
                                    options: .init(precision: precision, maxBatch: batch, threads: threads))
    let loadSeconds = Date().timeIntervalSince(loadStart)
    _ = embedder.embed(Array(captions.prefix(batch)))  // warm-up: page in weights, size the buffers
    let start = Date()
    var checksum: Float = 0
    var i = 0
    while i < captions.count {
        let chunk = Array(captions[i..<min(i + batch, captions.count)])
        checksum += embedder.embed(chunk)[0]
        i += chunk.count
    }
    let seconds = Date().timeIntervalSince(start)
    let result: [String: Any] = [
        "seconds": seconds, "sentences_per_s": Double(captions.count) / seconds, "load_s": loadSeconds,
        "peak_rss_mib": peakRSSMiB(), "blas_threads": Int(dml_blas_threads()), "checksum": Double(checksum),
    ]
    print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
} catch {
    FileHandle.standardError.write(Data("text-bench: \(error)\n".utf8))
    exit(1)
}
