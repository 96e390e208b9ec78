// Benchmark driver for DMLRuntime, called by bench/runtime/run.py. Prints one JSON object.
//
//   runtime-bench latency MODEL BATCH ITERATIONS THREADS   per-call latency of embed(batch:)
//   runtime-bench embed   MODEL COUNT BATCH THREADS        embeds COUNT inputs (the parent reads peak RSS)
//   runtime-bench profile MODEL BATCH REPEATS THREADS      time per layer, GFLOP/s of dense layers
//   runtime-bench sgemm   M N K THREADS                    raw BLAS sgemm GFLOP/s
import CDMLBlas
import DMLRuntime
import Dispatch
import Foundation

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("runtime-bench: \(message)\n".utf8))
    exit(1)
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }

/// This process's peak resident set (VmHWM, MiB) where /proc exists. Read here rather than from the parent's
/// wait4 rusage, which on Linux carries the high-water mark of the parent across fork + exec.
func peakRSSMiB() -> Double? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kib = Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    else { return nil }
    return kib / 1024
}

func emit(_ object: [String: Any]) {
    var object = object
    if let rss = peakRSSMiB() { object["peak_rss_mib"] = rss }
    guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { fail("cannot encode result") }
    print(String(decoding: data, as: UTF8.self))
}

/// Deterministic pseudo-random inputs in [-1, 1) (xorshift), generated per batch to keep memory flat.
struct Inputs {
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    mutating func fill(_ values: inout [Float]) {
        for i in values.indices {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            values[i] = Float(state >> 40) / Float(1 << 23) - 1
        }
    }
}

let args = Array(CommandLine.arguments.dropFirst())
guard let mode = args.first else { fail("usage: runtime-bench latency|embed|profile|sgemm ...") }
func int(_ i: Int) -> Int {
    guard i < args.count, let value = Int(args[i]) else { fail("argument \(i) must be an integer") }
    return value
}

func load(_ path: String, maxBatch: Int, threads: Int) -> EmbeddingModel {
    do {
        return try EmbeddingModel(contentsOf: URL(fileURLWithPath: path), options: .init(maxBatch: maxBatch, threads: threads))
    } catch {
        fail("\(error)")
    }
}

do {
    switch mode {
    case "latency":
        let batch = int(2), iterations = int(3)
        let model = load(args[1], maxBatch: batch, threads: int(4))
        var input = [Float](repeating: 0, count: batch * model.inputSize)
        var generator = Inputs()
        generator.fill(&input)
        var output = [Float](repeating: 0, count: batch * model.dimension)
        func call() throws {
            try input.withUnsafeBufferPointer { i in try output.withUnsafeMutableBufferPointer { try model.embed(batch: i, count: batch, into: $0) } }
        }
        for _ in 0..<5 { try call() }
        var times: [Double] = []
        for _ in 0..<iterations {
            let start = now()
            try call()
            times.append(now() - start)
        }
        times.sort()
        emit(["median_ms": times[times.count / 2] * 1000, "min_ms": times[0] * 1000, "p90_ms": times[times.count * 9 / 10] * 1000])

    case "embed":
        let count = int(2), batch = int(3)
        let start = now()
        let model = load(args[1], maxBatch: batch, threads: int(4))
        var input = [Float](repeating: 0, count: batch * model.inputSize)
        var output = [Float](repeating: 0, count: batch * model.dimension)
        var generator = Inputs()
        var done = 0, checksum: Float = 0
        while done < count {
            let n = min(batch, count - done)
            generator.fill(&input)
            try input.withUnsafeBufferPointer { i in
                try output.withUnsafeMutableBufferPointer { try model.embed(batch: UnsafeBufferPointer(rebasing: i[0..<(n * model.inputSize)]), count: n, into: $0) }
            }
            checksum += output[0]
            done += n
        }
        let seconds = now() - start
        emit(["seconds": seconds, "per_second": Double(count) / seconds, "checksum": Double(checksum)])

    case "profile":
        let batch = int(2)
        let model = load(args[1], maxBatch: batch, threads: int(4))
        var input = [Float](repeating: 0, count: batch * model.inputSize)
        var generator = Inputs()
        generator.fill(&input)
        let layers = try model.profile(batch: input, count: batch, repeats: int(3))
        let total = layers.map(\.seconds).reduce(0, +)
        let dense = layers.filter { $0.flops > 0 }
        let denseSeconds = dense.map(\.seconds).reduce(0, +)
        let denseFlops = dense.map { Double($0.flops) }.reduce(0, +)
        var byOp: [String: Double] = [:]
        for layer in layers { byOp[layer.op, default: 0] += layer.seconds * 1000 }
        emit([
            "total_ms": total * 1000, "dense_ms": denseSeconds * 1000, "dense_gflops": denseFlops / denseSeconds / 1e9,
            "ms_by_op": byOp,
            "layers": layers.map { ["name": $0.name, "op": $0.op, "ms": $0.seconds * 1000, "gflops": $0.flops > 0 ? Double($0.flops) / $0.seconds / 1e9 : 0] },
        ])

    case "sgemm":
        let m = int(1), n = int(2), k = int(3)
        dml_blas_set_threads(Int32(int(4)))
        var a = [Float](repeating: 0, count: m * k), b = [Float](repeating: 0, count: k * n)
        var c = [Float](repeating: 0, count: m * n)
        var generator = Inputs()
        generator.fill(&a)
        generator.fill(&b)
        func gemm() { dml_sgemm(0, 0, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(n), 0, &c, Int32(n)) }
        for _ in 0..<3 { gemm() }
        var best = Double.infinity
        for _ in 0..<20 {
            let start = now()
            gemm()
            best = min(best, now() - start)
        }
        emit(["gflops": 2.0 * Double(m * n * k) / best / 1e9, "m": m, "n": n, "k": k])

    default:
        fail("unknown mode \(mode)")
    }
} catch {
    fail("\(error)")
}
