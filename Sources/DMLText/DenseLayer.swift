import DMLRuntime

/// One of the encoder's linear layers, `y = x Wᵀ + b` (optionally followed by GELU), on the runtime's linear:
/// oneDNN's matmul with the weights packed once at load, or the BLAS GEMM where oneDNN is unavailable.
struct DenseLayer: Sendable {
    let weight: FloatBuffer  // [outFeatures, inFeatures], as PyTorch stores it
    let bias: FloatBuffer
    let inFeatures: Int, outFeatures: Int
    let gelu: Bool
    private let onednn: OneDNNLinear?

    init(weight: [Float], bias: [Float], inFeatures: Int, outFeatures: Int, gelu: Bool = false) {
        self.weight = FloatBuffer(weight)
        self.bias = FloatBuffer(bias)
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.gelu = gelu
        onednn = OneDNNLinear(weight: self.weight, bias: self.bias, inFeatures: inFeatures, outFeatures: outFeatures, gelu: gelu)
    }

    /// `rows` rows of `x` (`[rows, inFeatures]`) into `y` (`[rows, outFeatures]`).
    func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        if let onednn, onednn.run(x, y, rows: rows) {
            if gelu && !onednn.fusesActivation { geluInPlace(y, count: rows * outFeatures) }
            return
        }
        projectRows(x, rows: rows, inFeatures: inFeatures, weight: weight, bias: bias, outFeatures: outFeatures, into: y)
        if gelu { geluInPlace(y, count: rows * outFeatures) }
    }
}
