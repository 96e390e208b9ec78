import CDMLBlas

/// `y = x W^T + b` over the last dimension, as one GEMM for the whole batch.
struct LinearLayer: Layer {
    let weight: FloatBuffer  // [outFeatures, inFeatures]
    let bias: FloatBuffer?
    let inFeatures: Int
    let outFeatures: Int
    /// Rows per sample: the product of all but the last input dimension.
    let rowsPerSample: Int
    let outputShape: [Int]
    /// An activation that read only this layer's output, applied in the epilogue (set by the graph builder).
    var activation: ActivationLayer.Function?
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
    }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        let rows = batch * rowsPerSample
        var beta: Float = 0
        if let bias {
            // Pre-fill rows with the bias and accumulate into it (beta = 1) rather than a second pass.
            for r in 0..<rows { (output + r * outFeatures).update(from: bias.pointer, count: outFeatures) }
            beta = 1
        }
        dml_sgemm(0, 1, Int32(rows), Int32(outFeatures), Int32(inFeatures), 1, inputs[0], Int32(inFeatures),
                  weight.pointer, Int32(inFeatures), beta, output, Int32(outFeatures))
        activation?.apply(output, output, count: rows * outFeatures)
    }
}
