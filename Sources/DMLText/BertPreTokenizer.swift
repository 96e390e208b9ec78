/// The BERT pre-tokeniser: splits on whitespace and makes every punctuation character a word of its own.
enum BertPreTokenizer {
    /// Calls `body` with each word's scalars (a reused buffer, valid only during the call).
    static func forEachWord(in scalars: [Unicode.Scalar], _ body: (ArraySlice<Unicode.Scalar>) -> Void) {
        var start = 0
        for (i, s) in scalars.enumerated() {
            let v = s.value
            if CharacterClasses.isWhitespace(v) {
                if start < i { body(scalars[start..<i]) }
                start = i + 1
            } else if CharacterClasses.isPunctuation(v) {
                if start < i { body(scalars[start..<i]) }
                body(scalars[i...i])
                start = i + 1
            }
        }
        if start < scalars.count { body(scalars[start...]) }
    }
}
