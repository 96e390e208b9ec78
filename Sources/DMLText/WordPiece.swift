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
        // Candidates as UTF-8 bytes: the vocabulary matches bytes, not canonically equivalent strings.
        var candidate: [UInt8] = []
        let prefix = Array(continuationPrefix.utf8)
        while start < word.endIndex {
            var end = min(word.endIndex, start + vocabulary.longestPiece)
            var found: Int32?
            while start < end {
                candidate.removeAll(keepingCapacity: true)
                if start > word.startIndex { candidate.append(contentsOf: prefix) }
                for scalar in word[start..<end] { UTF8.encode(scalar) { candidate.append($0) } }
                if let id = vocabulary.byteIDs[candidate] { found = id; break }
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
