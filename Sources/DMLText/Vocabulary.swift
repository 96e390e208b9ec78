import Foundation

/// A WordPiece vocabulary: `vocab.txt`, one token per line, the line number being the id.
public struct Vocabulary: Sendable {
    /// Id of each token. Swift compares strings by canonical equivalence ("\u{387}" == "\u{B7}"), so canonically
    /// equivalent tokens share an entry here; lookups go through `byteIDs`.
    public let ids: [String: Int32]
    /// Id of each token by its exact UTF-8 bytes, as Hugging Face `tokenizers` matches them: a text the normaliser
    /// leaves as U+0387 must not find the vocabulary's U+00B7 (found by `Fuzz/fuzz.sh parity`).
    let byteIDs: [[UInt8]: Int32]
    /// Token of each id.
    public let tokens: [String]
    /// Longest token in scalars, not counting a `##` prefix: no longer piece can match.
    let longestPiece: Int

    /// Builds a vocabulary from tokens in id order. A repeated token keeps its last id, as `transformers` does.
    public init(tokens: [String]) {
        var ids: [String: Int32] = [:], byteIDs: [[UInt8]: Int32] = [:]
        ids.reserveCapacity(tokens.count)
        byteIDs.reserveCapacity(tokens.count)
        var longest = 1
        for (i, token) in tokens.enumerated() {
            ids[token] = Int32(i)
            byteIDs[Array(token.utf8)] = Int32(i)
            let length = token.hasPrefix("##") ? token.unicodeScalars.count - 2 : token.unicodeScalars.count
            longest = max(longest, length)
        }
        self.ids = ids
        self.byteIDs = byteIDs
        self.tokens = tokens
        self.longestPiece = longest
    }

    /// Reads `vocab.txt` (UTF-8). Lines end with `\n` or `\r\n`, as Python's text mode reads them for `transformers`.
    public init(contentsOf url: URL) throws {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw TextModelError.missingFile(url.lastPathComponent) }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw TextModelError.invalidVocabulary("not valid UTF-8")
        }
        // Split on scalars: as Characters, "\r\n" is one grapheme and would not split on "\n".
        var lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            let trimmed = line.last == "\r" ? line.dropLast() : line
            return String(String.UnicodeScalarView(trimmed))
        }
        if lines.last == "" { lines.removeLast() }
        guard !lines.isEmpty else { throw TextModelError.invalidVocabulary("is empty") }
        guard lines.count <= Int(Int32.max) else { throw TextModelError.invalidVocabulary("has too many tokens") }
        self.init(tokens: lines)
    }

    /// Number of tokens.
    public var count: Int { tokens.count }

    /// The id of the token with exactly these UTF-8 bytes, or nil.
    public subscript(token: String) -> Int32? { byteIDs[Array(token.utf8)] }
}
