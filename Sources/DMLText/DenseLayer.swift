import DMLRuntime

/// One of the encoder's linear layers, `y = x Wᵀ + b` (optionally followed by GELU), on the runtime's
/// `Projection`: oneDNN's matmul with the weights packed once at load, or the BLAS GEMM where oneDNN is unavailable.
struct DenseLayer: Sendable {
    private let projection: Projection

    init(weight: [Float], bias: [Float], inFeatures: Int, outFeatures: Int, gelu: Bool = false) {
        projection = Projection(weight: FloatBuffer(weight), bias: FloatBuffer(bias), inFeatures: inFeatures, outFeatures: outFeatures, gelu: gelu)
    }

    /// `rows` rows of `x` (`[rows, inFeatures]`) into `y` (`[rows, outFeatures]`).
    func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        projection.apply(x, rows: rows, into: y)
    }
}
