/// Greedy longest-match-first WordPiece over one pre-tokenised word, as Hugging Face `tokenizers` does it:
/// pieces after the first carry `##`; a word with an unmatchable remainder, or longer than
/// `maxInputCharsPerWord` characters, becomes the single unknown token.
struct WordPiece: Sendable {
    let vocabulary: Vocabulary
    let unknownID: Int32
    var maxInputCharsPerWord = 100
    var continuationPrefix = "##"

    /// Appends the ids of `word` to `ids`.
    func tokenize(_ word: ArraySlice<Unicode.Scalar>, into ids: inout [Int32]) {
        let count = word.count
        guard count <= maxInputCharsPerWord else { ids.append(unknownID); return }
        let mark = ids.count
        var start = word.startIndex
        var candidate = String.UnicodeScalarView()
        while start < word.endIndex {
            var end = min(word.endIndex, start + vocabulary.longestPiece)
            var found: Int32?
            while start < end {
                candidate.removeAll(keepingCapacity: true)
                if start > word.startIndex { candidate.append(contentsOf: continuationPrefix.unicodeScalars) }
                candidate.append(contentsOf: word[start..<end])
                if let id = vocabulary.ids[String(candidate)] { found = id; break }
                end -= 1
            }
            guard let found else {
                ids.removeSubrange(mark...)
                ids.append(unknownID)
                return
            }
            ids.append(found)
            start = end
        }
    }
}
