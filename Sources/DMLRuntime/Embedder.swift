/// Something that turns inputs into embeddings. The rest of DMLKit (galleries, indexes, evaluation) talks
/// to models only through this protocol.
public protocol Embedder: Sendable {
    /// Length of one embedding.
    var dimension: Int { get }
    /// Shape of one input sample, without the batch dimension (e.g. `[3, 224, 224]`).
    var inputShape: [Int] { get }
    /// Embeds `count` samples stored back to back in `inputs`, writing `count * dimension` floats to `output`.
    /// Embeddings are L2-normalised unless the model declares otherwise.
    func embed(batch inputs: UnsafeBufferPointer<Float>, count: Int, into output: UnsafeMutableBufferPointer<Float>) throws
}

extension Embedder {
    /// Floats in one input sample.
    public var inputSize: Int { inputShape.reduce(1, *) }

    /// Embeds one sample.
    public func embed(_ input: [Float]) throws -> [Float] {
        try embed(batch: input, count: 1)
    }

    /// Embeds `count` samples stored back to back; returns `count * dimension` floats.
    public func embed(batch inputs: [Float], count: Int) throws -> [Float] {
        guard let expected = checkedProduct(count, inputSize), inputs.count == expected,
              let outputCount = checkedProduct(count, dimension)
        else {
            throw InferenceError.inputSizeMismatch(expected: checkedProduct(max(count, 0), inputSize) ?? Int.max, got: inputs.count, shape: inputShape)
        }
        var output = [Float](repeating: 0, count: outputCount)
        try inputs.withUnsafeBufferPointer { source in
            try output.withUnsafeMutableBufferPointer { try embed(batch: source, count: count, into: $0) }
        }
        return output
    }
}
