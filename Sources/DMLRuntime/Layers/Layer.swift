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

    /// Product of the dimensions, or nil when a dimension is negative or the product overflows.
    var checkedElementCount: Int? {
        var product = 1
        for dim in self {
            guard dim >= 0 else { return nil }
            let (next, overflow) = product.multipliedReportingOverflow(by: dim)
            if overflow { return nil }
            product = next
        }
        return product
    }
}

/// `a * b`, or nil on overflow or a negative factor (sizes computed from caller-supplied counts).
func checkedProduct(_ a: Int, _ b: Int) -> Int? {
    guard a >= 0, b >= 0 else { return nil }
    let (product, overflow) = a.multipliedReportingOverflow(by: b)
    return overflow ? nil : product
}

/// Limits that keep a hostile model file from requesting absurd buffers: per-sample floats of any value.
enum RuntimeLimits {
    static let maxValueElements = 1 << 28
    static let maxAttribute = 1 << 24
}

/// Copies `count` floats unless source and destination are the same buffer (an op run in place).
@inline(__always)
func copyIfNeeded(_ source: UnsafePointer<Float>, _ destination: UnsafeMutablePointer<Float>, count: Int) {
    if UnsafePointer(destination) != source { destination.update(from: source, count: count) }
}
