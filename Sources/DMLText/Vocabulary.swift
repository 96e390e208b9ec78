import Foundation

/// A WordPiece vocabulary: `vocab.txt`, one token per line, the line number being the id.
public struct Vocabulary: Sendable {
    /// Id of each token.
    public let ids: [String: Int32]
    /// Token of each id.
    public let tokens: [String]
    /// Longest token in scalars, not counting a `##` prefix: no longer piece can match.
    let longestPiece: Int

    /// Builds a vocabulary from tokens in id order. A repeated token keeps its last id, as `transformers` does.
    public init(tokens: [String]) {
        var ids: [String: Int32] = [:]
        ids.reserveCapacity(tokens.count)
        var longest = 1
        for (i, token) in tokens.enumerated() {
            ids[token] = Int32(i)
            let length = token.hasPrefix("##") ? token.unicodeScalars.count - 2 : token.unicodeScalars.count
            longest = max(longest, length)
        }
        self.ids = ids
        self.tokens = tokens
        self.longestPiece = longest
    }

    /// Reads `vocab.txt` (UTF-8, `\n` line ends; a trailing `\r` is kept as part of the token, as `transformers` does).
    public init(contentsOf url: URL) throws {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw TextModelError.missingFile(url.lastPathComponent) }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw TextModelError.invalidVocabulary("not valid UTF-8")
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        guard !lines.isEmpty else { throw TextModelError.invalidVocabulary("is empty") }
        guard lines.count <= Int(Int32.max) else { throw TextModelError.invalidVocabulary("has too many tokens") }
        self.init(tokens: lines)
    }

    /// Number of tokens.
    public var count: Int { tokens.count }

    /// The id of `token`, or nil.
    public subscript(token: String) -> Int32? { ids[token] }
}
