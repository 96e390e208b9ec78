import CDMLBlas
import CDMLDnnl
import Foundation

/// A model loaded from one `.safetensors` file (weights + architecture), ready to embed.
///
/// Loading validates the file, verifies `dml.fingerprint` (unless told not to), refuses NaN/infinite
/// weights, checks every shape, folds BatchNorm and dequantises int8/f16 weights to
/// `Float`; aligned f32 weights stay in the memory-mapped file. Inference reuses buffers sized for
/// the largest batch seen so far, up to `maxBatch` samples (larger batches run in chunks), so an app that
/// embeds one input at a time holds buffers for one. Calls are serialised by a lock, so one instance
/// can be shared across threads; BLAS itself runs multi-threaded per `threads`.
public final class EmbeddingModel: Embedder, @unchecked Sendable {
    /// Load-time settings.
    public struct Options: Sendable {
        /// Most samples per forward pass; buffers grow to this many at most.
        public var maxBatch: Int
        /// BLAS worker threads (process-wide); nil leaves the BLAS default.
        public var threads: Int?
        /// Whether to recompute `dml.fingerprint` at load and refuse a file whose contents do not match it
        /// (a file without a fingerprint loads either way).
        public var verifyFingerprint: Bool
        /// Most bytes of activations one forward pass holds: a batch that would need more runs in even chunks
        /// that fit (one sample at least). 16 MiB (half a typical 32 MiB last-level cache, which the weights
        /// share): a pass's activations are still in cache when the next layer reads them. Measured at batch 16
        /// (bench/runtime): 32 MiB was 0-15% faster than 64 MiB (MobileNetV2 68 -> 58 ms, Zen 5), 16 MiB 3-10%
        /// faster than 32 on the mobile nets (Zen 4), other nets level, 9-22 MiB less peak RSS. 0: only
        /// `maxBatch` limits a pass.
        public var activationBudgetBytes: Int

        /// Settings with the given batch cap, BLAS thread count, fingerprint check and activation budget.
        public init(maxBatch: Int = 64, threads: Int? = nil, verifyFingerprint: Bool = true,
                    activationBudgetBytes: Int = 16 << 20) {
            self.maxBatch = maxBatch
            self.threads = threads
            self.verifyFingerprint = verifyFingerprint
            self.activationBudgetBytes = activationBudgetBytes
        }
    }

    /// The architecture and metadata read from the file.
    public let spec: ModelSpec
    /// The underlying file (tensor table, metadata).
    public let file: SafetensorsFile
    /// Length of one embedding (all outputs concatenated).
    public let dimension: Int
    /// Most samples per forward pass.
    public let maxBatch: Int
    /// Most samples per forward pass within the activation budget (at most `maxBatch`).
    public let samplesPerPass: Int
    let graph: CompiledGraph
    /// Where the activations live (the same for every batch size).
    private let layout: ExecutionPlan.Layout

    // Guarded by `lock`: the plans' buffers are reused across calls (one plan per thread a batch is split over).
    private let lock = NSLock()
    private var plans: [ExecutionPlan] = []
    /// Whether a batch of several samples is split over the threads (`DMLKIT_SAMPLE_THREADS=off`: every layer
    /// runs on all threads instead, an A/B switch).
    private let splitsSamples = ProcessInfo.processInfo.environment["DMLKIT_SAMPLE_THREADS"] != "off"

    /// Shape of one input sample.
    public var inputShape: [Int] { spec.inputShape }

    /// Opens and prepares the model at `url`.
    public convenience init(contentsOf url: URL, options: Options = Options()) throws {
        try self.init(file: SafetensorsFile(contentsOf: url), options: options)
    }

    /// Prepares a model from an opened file.
    public init(file: SafetensorsFile, options: Options = Options()) throws {
        let spec = try ModelSpec(metadata: file.metadata)
        if options.verifyFingerprint, let stored = spec.fingerprint, let computed = try file.computeFingerprint(), computed != stored {
            throw ModelError.fingerprintMismatch(stored: stored, computed: computed)
        }
        // Before the graph is built: oneDNN splits each primitive made at load for the thread count set then.
        if let threads = options.threads { Self.setThreads(threads) }
        let graph = try GraphBuilder(spec: spec, weights: ModelWeights(file: file)).build()
        // The fingerprint check and the weight reorders touched every page; what is still read per call
        // (linear weights, refused convs) comes back on demand.
        file.releaseResidentPages()
        self.file = file
        self.spec = spec
        self.graph = graph
        dimension = graph.outputs.map { graph.valueShapes[$0].elementCount }.reduce(0, +)
        maxBatch = max(1, options.maxBatch)
        layout = ExecutionPlan.layout(of: graph)
        let bytesPerSample = max(1, layout.floatsPerSample * MemoryLayout<Float>.stride)
        samplesPerPass = options.activationBudgetBytes > 0
            ? min(maxBatch, max(1, options.activationBudgetBytes / bytesPerSample)) : maxBatch
    }

    /// Sets the number of BLAS threads for the whole process, and the OpenMP threads oneDNN convolutions use
    /// (applied on each thread that runs a model; FAISS shares the same libgomp and sees that thread's setting).
    /// oneDNN splits a primitive's work when it is made, so each layer makes its primitives again, on next use,
    /// for a new count.
    public static func setThreads(_ threads: Int) {
        dml_blas_set_threads(Int32(clamping: threads))
        dml_dnnl_set_threads(Int32(clamping: threads))
    }

    /// Name of the BLAS in use (e.g. "OpenBLAS", "Accelerate").
    public static var blasName: String { String(cString: dml_blas_name()) }

    /// One computed layer: node name, op and per-sample output shape.
    public struct LayerInfo: Sendable, Equatable {
        /// Node name from the architecture.
        public var name: String
        /// Op, with `+relu` when a following ReLU was fused into it.
        public var op: String
        /// Shape of one output sample.
        public var outputShape: [Int]
    }

    /// The layers as run, in order (BatchNorm folded at load does not appear).
    public var layers: [LayerInfo] {
        graph.steps.map { LayerInfo(name: $0.name, op: $0.op, outputShape: graph.valueShapes[$0.output]) }
    }

    /// Names of BatchNorm nodes folded into the conv/linear before them at load.
    public var foldedBatchNorms: [String] { graph.foldedBatchNorms }

    /// Number of weight values the model holds (int8 scales not counted).
    public var parameterCount: Int {
        Set(spec.nodes.flatMap { $0.tensors.values }).compactMap { file.tensors[$0]?.elementCount }.reduce(0, +)
    }

    /// Storage dtypes of the weight tensors (e.g. `["F32"]`, `["F32", "I8"]`).
    public var weightDTypes: [String] {
        Set(spec.nodes.flatMap { $0.tensors.values }.compactMap { file.tensors[$0]?.dtype.rawValue }).sorted()
    }

    /// Embeds `count` samples: the raw outputs (`forward`), L2-normalised unless the model declares `normalize: false`.
    public func embed(batch inputs: UnsafeBufferPointer<Float>, count: Int, into output: UnsafeMutableBufferPointer<Float>) throws {
        try embed(batch: inputs, count: count, into: output, splittingOver: nil)
    }

    /// `embed`, with the samples split over `threads` shares (tests: nil takes `sampleThreads(for:)`).
    func embed(batch inputs: UnsafeBufferPointer<Float>, count: Int, into output: UnsafeMutableBufferPointer<Float>,
               splittingOver threads: Int?) throws {
        try forward(batch: inputs, count: count, into: output, splittingOver: threads)
        if spec.normalize, let base = output.baseAddress { l2NormalizeRows(base, rows: count, width: dimension) }
    }

    /// The model's raw outputs (concatenated, not normalised) for `count` samples.
    /// Input must be finite: NaN or infinity is refused with `InferenceError.nonFiniteInput`.
    public func forward(batch inputs: UnsafeBufferPointer<Float>, count: Int, into output: UnsafeMutableBufferPointer<Float>) throws {
        try forward(batch: inputs, count: count, into: output, splittingOver: nil)
    }

    private func forward(batch inputs: UnsafeBufferPointer<Float>, count: Int, into output: UnsafeMutableBufferPointer<Float>,
                         splittingOver threads: Int?) throws {
        let sampleSize = inputSize
        guard let expected = checkedProduct(count, sampleSize), inputs.count == expected else {
            throw InferenceError.inputSizeMismatch(expected: checkedProduct(max(count, 0), sampleSize) ?? Int.max, got: inputs.count, shape: inputShape)
        }
        guard let needed = checkedProduct(count, dimension), output.count >= needed else {
            throw InferenceError.outputTooSmall(expected: checkedProduct(count, dimension) ?? Int.max, got: output.count)
        }
        guard count > 0, let source = inputs.baseAddress, let destination = output.baseAddress else { return }
        if let bad = inputs.firstIndex(where: { !$0.isFinite }) { throw InferenceError.nonFiniteInput(index: bad) }
        lock.lock()
        defer { lock.unlock() }
        // With several samples and threads each thread runs an even share of the batch on its own plan, its
        // layers single-threaded (no barrier per layer; measured in bench/RESULTS.md), within an even share of the
        // activation budget so the passes of all threads together stay in cache. One share: the whole batch
        // here, every layer on all threads.
        let workers = threads.map { max(1, min($0, count)) } ?? sampleThreads(for: count)
        let shares = passes(of: count, atMost: (count + workers - 1) / workers)
        let sharePasses = shares.map { passes(of: $0.count, atMost: max(1, samplesPerPass / workers)) }
        let plans = sharePasses.indices.map { preparedPlan($0, batch: sharePasses[$0][0].count) }
        func runShare(_ index: Int) {
            run(sharePasses[index], on: plans[index], source: source + shares[index].start * sampleSize,
                destination: destination + shares[index].start * dimension)
        }
        guard shares.count > 1 else { return runShare(0) }
        parallelFor(shares.count, grain: 1) { range in
            dml_dnnl_set_thread_threads(1)
            defer { dml_dnnl_set_thread_threads(0) }
            range.forEach(runShare)
        }
    }

    /// How many threads a call with `count` samples splits them over (1: every layer on all threads).
    func sampleThreads(for count: Int) -> Int {
        splitsSamples ? max(1, min(Int(dml_parallel_threads()), count)) : 1
    }

    /// Runs `passes` (of the samples at `source`) one after the other on `plan`, outputs to `destination`.
    private func run(_ passes: [(start: Int, count: Int)], on plan: ExecutionPlan, source: UnsafePointer<Float>,
                     destination: UnsafeMutablePointer<Float>) {
        for pass in passes {
            plan.input.update(from: source + pass.start * inputSize, count: pass.count * inputSize)
            plan.run(batch: pass.count)
            copyOutputs(plan, batch: pass.count, into: destination + pass.start * dimension)
        }
    }

    /// Embeds 8-bit images (`count` images of `width` x `height`, back to back) using the model's preprocessing.
    public func embed(pixels: UnsafeBufferPointer<UInt8>, width: Int, height: Int, format: PixelFormat, count: Int = 1) throws -> [Float] {
        guard let preprocessing = spec.preprocessing else { throw InferenceError.preprocessing("the model declares no image preprocessing") }
        guard count >= 1, width > 0, height > 0, let imageBytes = [width, height, format.channels].checkedElementCount,
              checkedProduct(imageBytes, count) == pixels.count
        else {
            throw InferenceError.preprocessing("\(pixels.count) bytes do not hold \(count) image(s) of \(width)x\(height)x\(format.channels)")
        }
        var tensor = [Float](repeating: 0, count: count * inputSize)
        try tensor.withUnsafeMutableBufferPointer { out in
            guard let base = out.baseAddress else { return }
            for i in 0..<count {
                try preprocessing.apply(UnsafeBufferPointer(rebasing: pixels[(i * imageBytes)..<((i + 1) * imageBytes)]),
                                        width: width, height: height, format: format, into: base + i * inputSize)
            }
        }
        return try embed(batch: tensor, count: count)
    }

    /// Time spent in one layer, from `profile`.
    public struct LayerProfile: Sendable {
        /// Node name from the architecture.
        public var name: String
        /// Op, with `+relu` when a following ReLU was fused into it.
        public var op: String
        /// Seconds per forward pass of the profiled batch (fastest of the repeats).
        public var seconds: Double
        /// Floating-point operations per forward pass of the profiled batch (dense layers; 0 otherwise).
        public var flops: Int
    }

    /// Runs `repeats` forward passes of `count` samples and reports each layer's fastest time
    /// (the minimum filters out preemption on a busy machine).
    public func profile(batch inputs: [Float], count: Int, repeats: Int = 10) throws -> [LayerProfile] {
        guard count >= 1, count <= maxBatch, inputs.count == checkedProduct(count, inputSize) else {
            throw InferenceError.inputSizeMismatch(expected: count * inputSize, got: inputs.count, shape: inputShape)
        }
        lock.lock()
        defer { lock.unlock() }
        // The passes `forward` runs on one thread's share (each layer's time summed over them), so the kernels
        // timed are the ones used; a batch `forward` splits over several threads is timed here unsplit, every
        // layer on all threads.
        let passes = self.passes(of: count, atMost: samplesPerPass)
        let plan = preparedPlan(0, batch: passes[0].count)
        var best = [Double](repeating: .infinity, count: graph.steps.count)
        var timings = [Double](repeating: 0, count: graph.steps.count)
        func runPasses(_ sums: UnsafeMutablePointer<Double>?) {
            for pass in passes {
                inputs.withUnsafeBufferPointer { plan.input.update(from: $0.baseAddress! + pass.start * inputSize, count: pass.count * inputSize) }
                plan.run(batch: pass.count, timings: sums)
            }
        }
        runPasses(nil)  // warm-up
        for _ in 0..<max(1, repeats) {
            for i in timings.indices { timings[i] = 0 }
            timings.withUnsafeMutableBufferPointer { runPasses($0.baseAddress) }
            for i in timings.indices { best[i] = min(best[i], timings[i]) }
        }
        return graph.steps.enumerated().map { index, step in
            LayerProfile(name: step.name, op: step.op, seconds: best[index], flops: step.layer.flops * count)
        }
    }

    /// The passes for a batch of `count` (at least 1) samples, in order: even chunks of at most `limit` (16 in
    /// passes of at most 12 runs as 8 + 8, not 12 + 4); the first is the largest.
    private func passes(of count: Int, atMost limit: Int) -> [(start: Int, count: Int)] {
        let passCount = (count + limit - 1) / limit
        let perPass = (count + passCount - 1) / passCount
        return stride(from: 0, to: count, by: perPass).map { ($0, min(perPass, count - $0)) }
    }

    /// Plan number `index` (one per thread a batch is split over), reallocated when a pass larger than its
    /// capacity arrives (at most `maxBatch`).
    private func preparedPlan(_ index: Int, batch: Int) -> ExecutionPlan {
        if index < plans.count, plans[index].capacity >= batch { return plans[index] }
        let fresh = ExecutionPlan(graph: graph, layout: layout, capacity: batch)
        if index < plans.count { plans[index] = fresh } else { plans.append(fresh) }
        return fresh
    }

    /// Writes each output value, flattened per sample, side by side.
    private func copyOutputs(_ plan: ExecutionPlan, batch: Int, into destination: UnsafeMutablePointer<Float>) {
        var offset = 0
        for value in graph.outputs {
            let width = graph.valueShapes[value].elementCount
            let source = plan.buffer(of: value)
            for n in 0..<batch { (destination + n * dimension + offset).update(from: source + n * width, count: width) }
            offset += width
        }
    }
}
