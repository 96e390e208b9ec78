import DMLRuntime

/// `Embedder` conformance, so galleries can hold a text model next to image models. The protocol passes floats,
/// so a text arrives as its token ids: one row of `maxLength` values per text, `[CLS] … [SEP]` followed by the
/// padding id (`tokenIDs(for:)` builds such rows); a row that starts with the padding id holds no tokens and embeds
/// as zeros. Callers holding strings should use `embed(_:)` directly.
extension TextEmbedder: Embedder {
    /// `[maxLength]`: one row of token ids.
    public var inputShape: [Int] { [tokenizer.configuration.maxLength] }

    /// Embeds `count` rows of token ids.
    public func embed(batch inputs: UnsafeBufferPointer<Float>, count: Int, into output: UnsafeMutableBufferPointer<Float>) throws {
        let width = inputShape[0]
        guard count >= 0, inputs.count == count * width else {
            throw InferenceError.inputSizeMismatch(expected: max(count, 0) * width, got: inputs.count, shape: inputShape)
        }
        guard output.count >= count * dimension else { throw InferenceError.outputTooSmall(expected: count * dimension, got: output.count) }
        let vocabulary = Float(tokenizer.vocabulary.count)
        var encodings: [Encoding] = []
        encodings.reserveCapacity(count)
        for row in 0..<count {
            var ids: [Int32] = []
            for column in 0..<width {
                let index = row * width + column
                let value = inputs[index]
                guard value.isFinite else { throw InferenceError.nonFiniteInput(index: index) }
                guard value >= 0, value < vocabulary, value.rounded() == value else {
                    throw TextModelError.invalidTokenID(index: index, value: value)
                }
                let id = Int32(value)
                if id == tokenizer.paddingID { break }
                ids.append(id)
            }
            encodings.append(Encoding(ids: ids, truncated: false))
        }
        let embeddings = embed(encodings: encodings)
        for i in embeddings.indices { output[i] = embeddings[i] }
    }

    /// Token-id rows for `texts` in the layout `embed(batch:count:into:)` takes.
    public func tokenIDs(for texts: [String]) -> [Float] {
        let width = inputShape[0]
        var rows = [Float](repeating: Float(tokenizer.paddingID), count: texts.count * width)
        for (row, encoding) in tokenizer.encode(texts).enumerated() {
            for (column, id) in encoding.ids.enumerated() { rows[row * width + column] = Float(id) }
        }
        return rows
    }
}
