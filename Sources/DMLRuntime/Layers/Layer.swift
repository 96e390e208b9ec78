/// A forward-only op with its weights and shapes fixed at load time.
///
/// Shapes are per sample (no batch dimension); tensors are contiguous `Float` in row-major (NCHW) order,
/// `batch` samples back to back. Layers allocate nothing in `forward`: buffers and scratch space come
/// from the execution plan, sized once.
protocol Layer: Sendable {
    /// Shape of one output sample.
    var outputShape: [Int] { get }
    /// Floats of scratch space one `forward` call on up to `maxBatch` samples needs.
    func workspaceCount(maxBatch: Int) -> Int
    /// Whether the output may be written over the first input (elementwise ops).
    var canRunInPlace: Bool { get }
    /// Multiply-adds times two for one sample (0 for ops that are not dense arithmetic); for profiles.
    var flops: Int { get }
    /// Computes `batch` samples.
    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>)
}

extension Layer {
    func workspaceCount(maxBatch: Int) -> Int { 0 }
    var canRunInPlace: Bool { false }
    var flops: Int { 0 }
}

extension Array where Element == Int {
    /// Product of the dimensions.
    var elementCount: Int { reduce(1, *) }
}

/// Copies `count` floats unless source and destination are the same buffer (an op run in place).
@inline(__always)
func copyIfNeeded(_ source: UnsafePointer<Float>, _ destination: UnsafeMutablePointer<Float>, count: Int) {
    if UnsafePointer(destination) != source { destination.update(from: source, count: count) }
}
