import CDMLBlas
import CDMLDnnl

/// `y = x W^T + b`, then an optional activation, over `rows` rows: oneDNN's matmul on weights packed once where
/// oneDNN took them, else the BLAS GEMM (the reference in tests). The one place that chooses between the two:
/// the linear op, the attention projections and the text encoder's dense layers all run through it.
package struct Projection: Sendable {
    let weight: FloatBuffer  // [outFeatures, inFeatures], as PyTorch stores it
    let bias: FloatBuffer?
    let inFeatures: Int
    let outFeatures: Int
    let activation: ActivationLayer.Function?
    /// oneDNN's handle when `backend` was `.onednn` and oneDNN took the weights.
    let onednn: OneDNNLinear?

    /// With oneDNN, the weights are packed now, for `typicalRows` rows (the layout every row count then shares),
    /// so the model file's pages need not stay resident for the first call.
    init(weight: FloatBuffer, bias: FloatBuffer?, inFeatures: Int, outFeatures: Int, activation: ActivationLayer.Function? = nil,
         backend: ConvBackend = ConvBackend.preferred, typicalRows: Int = 1) {
        self.weight = weight
        self.bias = bias
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.activation = activation
        onednn = backend == .onednn
            ? OneDNNLinear(weight: weight, bias: bias, inFeatures: inFeatures, outFeatures: outFeatures, activation: activation) : nil
        onednn?.prepare(rows: typicalRows)
    }

    /// For callers outside the graph (the text encoder), optionally followed by the exact-erf GELU.
    package init(weight: FloatBuffer, bias: FloatBuffer?, inFeatures: Int, outFeatures: Int, gelu: Bool) {
        self.init(weight: weight, bias: bias, inFeatures: inFeatures, outFeatures: outFeatures, activation: gelu ? .geluErf : nil)
    }

    /// `rows` rows of `x` (`[rows, inFeatures]`) into `y` (`[rows, outFeatures]`).
    package func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        if let onednn, onednn.run(x, y, rows: rows) {
            if !onednn.fusesActivation { activation?.apply(y, y, count: rows * outFeatures) }
            return
        }
        projectRows(x, rows: rows, inFeatures: inFeatures, weight: weight, bias: bias, outFeatures: outFeatures, into: y)
        activation?.apply(y, y, count: rows * outFeatures)
    }
}

/// `y = x W^T + b` over the last dimension, as one projection for the whole batch.
struct LinearLayer: Layer {
    let weight: FloatBuffer  // [outFeatures, inFeatures]
    let bias: FloatBuffer?
    let inFeatures: Int
    let outFeatures: Int
    /// Rows per sample: the product of all but the last input dimension.
    let rowsPerSample: Int
    let outputShape: [Int]
    /// An activation that read only this layer's output, applied in the epilogue (set by the graph builder).
    var activation: ActivationLayer.Function? { didSet { remakeProjection() } }
    /// The implementation that runs this layer (the conv's switch: `DMLKIT_CONV=reference` forces BLAS).
    var backend: ConvBackend = ConvBackend.preferred { didSet { remakeProjection() } }
    private(set) var projection: Projection
    var flops: Int { 2 * rowsPerSample * inFeatures * outFeatures }

    init(node: String, inputShape: [Int], weight: FloatBuffer, weightShape: [Int], bias: FloatBuffer?) throws {
        guard weightShape.count == 2 else { throw ModelError.shapeMismatch(node: node, reason: "linear weight must be 2-D, got \(weightShape)") }
        guard let last = inputShape.last, last == weightShape[1] else {
            throw ModelError.shapeMismatch(node: node, reason: "linear takes \(weightShape[1]) features, input shape is \(inputShape)")
        }
        if let bias, bias.count != weightShape[0] {
            throw ModelError.shapeMismatch(node: node, reason: "bias has \(bias.count) values, expected \(weightShape[0])")
        }
        self.weight = weight
        self.bias = bias
        inFeatures = weightShape[1]
        outFeatures = weightShape[0]
        rowsPerSample = inputShape.dropLast().reduce(1, *)
        outputShape = inputShape.dropLast() + [weightShape[0]]
        projection = Projection(weight: weight, bias: bias, inFeatures: inFeatures, outFeatures: outFeatures, typicalRows: rowsPerSample)
    }

    private mutating func remakeProjection() {
        projection = Projection(weight: weight, bias: bias, inFeatures: inFeatures, outFeatures: outFeatures, activation: activation,
                                backend: backend, typicalRows: rowsPerSample)
    }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        projection.apply(inputs[0], rows: batch * rowsPerSample, into: output)
    }
}

/// One linear layer's oneDNN matmul: weights reordered into oneDNN's layout once (shared by every row count),
/// a primitive per row count made on first use. Holds the weight and bias buffers the handle reads.
package final class OneDNNLinear: @unchecked Sendable {
    // The C handle locks its own cache, so concurrent `run` calls are safe.
    private let handle: OpaquePointer
    private let weight: FloatBuffer
    private let bias: FloatBuffer?
    /// Whether oneDNN applies the activation as a post-op (false: the caller's epilogue must run it).
    package let fusesActivation: Bool

    /// `weight` is `[outFeatures, inFeatures]` as PyTorch stores it. Nil when oneDNN is unavailable or refuses it.
    init?(weight: FloatBuffer, bias: FloatBuffer?, inFeatures: Int, outFeatures: Int, activation: ActivationLayer.Function?) {
        guard weight.count == inFeatures * outFeatures, bias.map({ $0.count == outFeatures }) ?? true,
              inFeatures <= Int(Int32.max), outFeatures <= Int(Int32.max) else { return nil }
        let (kind, alpha, beta) = OneDNNConvolution.postOp(activation)
        guard let handle = dml_dnnl_linear_create(Int32(inFeatures), Int32(outFeatures), weight.pointer, bias?.pointer,
                                                  kind, alpha, beta) else { return nil }
        self.handle = handle
        self.weight = weight
        self.bias = bias
        fusesActivation = activation == nil || kind != DML_DNNL_NONE
    }

    deinit { dml_dnnl_linear_destroy(handle) }

    /// Packs the weights for `rows` rows now (see `dml_dnnl_linear_prepare`); a failure only defers it to the first run.
    func prepare(rows: Int) { if rows >= 1, rows <= Int(Int32.max) { _ = dml_dnnl_linear_prepare(handle, Int32(rows)) } }

    /// Row-major `[rows, in]` -> `[rows, out]`; false when oneDNN could not run it (nothing usable was written).
    package func run(_ source: UnsafePointer<Float>, _ destination: UnsafeMutablePointer<Float>, rows: Int) -> Bool {
        rows <= Int(Int32.max) && dml_dnnl_linear_run(handle, source, destination, Int32(rows)) == 0
    }
}
