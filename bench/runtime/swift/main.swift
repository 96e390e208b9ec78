// Benchmark driver for DMLRuntime, called by bench/runtime/run.py. Prints one JSON object.
//
//   runtime-bench latency MODEL BATCH ITERATIONS THREADS [SECONDS [BUDGET_MIB]]   per-call latency of embed(batch:): at most
//                                                          ITERATIONS calls, fewer (3 at least) past SECONDS
//   runtime-bench embed   MODEL COUNT BATCH THREADS        embeds COUNT inputs (load timed apart)
//   runtime-bench profile MODEL BATCH REPEATS THREADS      time per layer, with each layer's kind (kernel, stride, groups)
//   runtime-bench sgemm   M N K THREADS                    raw BLAS sgemm GFLOP/s
//   runtime-bench machine                                  FMA peak per ISA, OpenBLAS config and kernel
// Model loading (file checks, fingerprint, weight preparation) is never inside a timed region except `load_s`.
import CBenchMachine
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

/// What the profile needs to sort a layer into a kind: kernel size (from the weight's shape), stride and groups.
func shapeFacts(_ node: NodeSpec, _ file: SafetensorsFile) -> [String: Any] {
    func ints(_ value: JSONValue?) -> [Int]? {
        switch value {
        case let .int(i)?: return [i, i]
        case let .array(items)?: return items.compactMap { if case let .int(i) = $0 { return i } else { return nil } }
        default: return nil
        }
    }
    var facts: [String: Any] = [:]
    if let stride = ints(node.attributes["stride"]) { facts["stride"] = stride }
    if let groups = ints(node.attributes["groups"])?.first { facts["groups"] = groups }
    if let weight = node.tensors["weight"], let shape = file.tensors[weight]?.shape { facts["weight_shape"] = shape }
    return facts
}

let args = Array(CommandLine.arguments.dropFirst())
guard let mode = args.first else { fail("usage: runtime-bench latency|embed|profile|sgemm|machine ...") }
func int(_ i: Int) -> Int {
    guard i < args.count, let value = Int(args[i]) else { fail("argument \(i) must be an integer") }
    return value
}

func load(_ path: String, maxBatch: Int, threads: Int, budgetMiB: Int? = nil) -> EmbeddingModel {
    do {
        var options = EmbeddingModel.Options(maxBatch: maxBatch, threads: threads)
        if let budgetMiB { options.activationBudgetBytes = budgetMiB << 20 }
        return try EmbeddingModel(contentsOf: URL(fileURLWithPath: path), options: options)
    } catch {
        fail("\(error)")
    }
}

do {
    switch mode {
    case "latency":
        let batch = int(2), iterations = int(3)
        let budget = args.count > 5 ? Double(args[5]) ?? .infinity : .infinity
        let loadStart = now()
        // Optional 7th argument: the activation budget in MiB (0: none), to measure its effect.
        let model = load(args[1], maxBatch: batch, threads: int(4), budgetMiB: args.count > 6 ? int(6) : nil)
        let loadSeconds = now() - loadStart
        var input = [Float](repeating: 0, count: batch * model.inputSize)
        var generator = Inputs()
        generator.fill(&input)
        var output = [Float](repeating: 0, count: batch * model.dimension)
        func call() throws {
            try input.withUnsafeBufferPointer { i in try output.withUnsafeMutableBufferPointer { try model.embed(batch: i, count: batch, into: $0) } }
        }
        for _ in 0..<(batch == 1 ? 2 : 1) { try call() }  // warm-up: buffers planned, weights paged in
        var times: [Double] = []
        let started = now()
        while times.count < max(iterations, 1), times.count < 3 || now() - started < budget {
            let start = now()
            try call()
            times.append(now() - start)
        }
        times.sort()
        emit(["median_ms": times[times.count / 2] * 1000, "min_ms": times[0] * 1000, "p90_ms": times[times.count * 9 / 10] * 1000,
              "iterations": times.count, "load_s": loadSeconds])

    case "embed":
        let count = int(2), batch = int(3)
        let loadStart = now()
        let model = load(args[1], maxBatch: batch, threads: int(4))
        let loadSeconds = now() - loadStart
        let start = now()
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
        emit(["seconds": seconds, "per_second": Double(count) / seconds, "checksum": Double(checksum), "load_s": loadSeconds])

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
        let nodes = Dictionary(model.spec.nodes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var byOp: [String: Double] = [:]
        for layer in layers { byOp[layer.op, default: 0] += layer.seconds * 1000 }
        emit([
            "total_ms": total * 1000, "dense_ms": denseSeconds * 1000, "dense_gflops": denseFlops / denseSeconds / 1e9,
            "ms_by_op": byOp,
            "layers": layers.map { layer -> [String: Any] in
                var entry: [String: Any] = ["name": layer.name, "op": layer.op, "ms": layer.seconds * 1000, "flops": layer.flops,
                                            "gflops": layer.flops > 0 ? Double(layer.flops) / layer.seconds / 1e9 : 0]
                if let node = nodes[layer.name] { entry.merge(shapeFacts(node, model.file), uniquingKeysWith: { a, _ in a }) }
                return entry
            },
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

    case "machine":
        var peaks: [String: Double] = [:]
        // Many short runs, the ISAs alternating, best kept: on a shared machine one of them lands in a quiet slice.
        for _ in 0..<300 {
            for isa in ["avx512", "avx2"] where bench_cpu_has(isa) != 0 {
                peaks[isa] = max(peaks[isa] ?? 0, bench_fma_peak_gflops(isa, 1_000_000, 1))
            }
        }
        emit(["fma_peak_gflops": peaks, "blas": EmbeddingModel.blasName,
              "openblas_config": String(cString: bench_openblas_config()),
              "openblas_corename": String(cString: bench_openblas_corename())])

    default:
        fail("unknown mode \(mode)")
    }
} catch {
    fail("\(error)")
}
