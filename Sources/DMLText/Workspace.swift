/// Scratch buffers for one forward pass, grown to the largest batch seen and reused after that.
final class Workspace {
    var hidden: [Float] = [], qkv: [Float] = [], context: [Float] = [], projected: [Float] = []
    var intermediate: [Float] = [], scores: [Float] = []

    /// Makes room for `tokens` packed tokens whose longest sequence has `longest` tokens.
    func reserve(tokens: Int, longest: Int, configuration c: BertConfiguration) {
        func grow(_ buffer: inout [Float], _ count: Int) {
            if buffer.count < count { buffer = [Float](repeating: 0, count: count) }
        }
        grow(&hidden, tokens * c.hiddenSize)
        grow(&qkv, tokens * 3 * c.hiddenSize)
        grow(&context, tokens * c.hiddenSize)
        grow(&projected, tokens * c.hiddenSize)
        grow(&intermediate, tokens * c.intermediateSize)
        grow(&scores, longest * longest)
    }
}
