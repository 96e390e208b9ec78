import Foundation

/// Token ids of one text: `[CLS] pieces… [SEP]`, truncated to the maximum length. Every id is attended to and
/// has token type 0 (single sentences), so the attention mask of an unpadded encoding is all ones.
public struct Encoding: Sendable, Equatable {
    /// Token ids.
    public var ids: [Int32]
    /// Whether the text was cut to fit the maximum length.
    public var truncated: Bool
}

/// Equal-length rows for a batch: ids padded with the padding id and a mask marking real tokens.
public struct PaddedBatch: Sendable, Equatable {
    /// Row-major `[count, length]` ids.
    public var ids: [Int32]
    /// Row-major `[count, length]`: 1 for tokens, 0 for padding.
    public var attentionMask: [Int32]
    /// Number of rows.
    public var count: Int
    /// Row length (the longest encoding).
    public var length: Int
}

/// A BERT WordPiece tokenizer giving the same ids as Hugging Face `tokenizers` with a BERT `tokenizer.json`:
/// special tokens matched verbatim in the raw text, BERT normalisation, whitespace/punctuation pre-tokenisation,
/// WordPiece, `[CLS]`/`[SEP]`, truncation.
public struct BertTokenizer: Sendable {
    /// The settings in use.
    public let configuration: TokenizerConfiguration
    /// The vocabulary.
    public let vocabulary: Vocabulary
    private let normalizer: BertNormalizer
    private let wordPiece: WordPiece
    /// Special tokens as UTF-8 with their ids, longest first so the longest match wins.
    private let specials: [(bytes: [UInt8], id: Int32)]
    /// Whether a special token starts with this byte: most positions of a text need no comparison.
    private let startsSpecial: [Bool]
    /// Id of `[CLS]`, `[SEP]` and `[PAD]`.
    public let classID: Int32, separatorID: Int32, paddingID: Int32
    /// Id of the unknown token.
    public var unknownID: Int32 { wordPiece.unknownID }

    /// A tokenizer over `vocabulary`; fails when a special token is not in it.
    public init(vocabulary: Vocabulary, configuration: TokenizerConfiguration = .init()) throws {
        func id(_ token: String) throws -> Int32 {
            guard let id = vocabulary[token] else { throw TextModelError.invalidVocabulary("has no special token \(token)") }
            return id
        }
        self.vocabulary = vocabulary
        self.configuration = configuration
        normalizer = BertNormalizer(
            cleanText: true, handleChineseChars: configuration.tokenizeChineseChars,
            stripAccents: configuration.stripAccents, lowercase: configuration.lowercase)
        wordPiece = WordPiece(vocabulary: vocabulary, unknownID: try id(configuration.unknownToken),
                              maxInputCharsPerWord: configuration.maxInputCharsPerWord)
        classID = try id(configuration.classToken)
        separatorID = try id(configuration.separatorToken)
        paddingID = try id(configuration.paddingToken)
        specials = try configuration.specialTokens.filter { !$0.isEmpty }
            .map { (bytes: Array($0.utf8), id: try id($0)) }
            .sorted { $0.bytes.count > $1.bytes.count }
        var starts = [Bool](repeating: false, count: 256)
        for special in specials { starts[Int(special.bytes[0])] = true }
        startsSpecial = starts
    }

    /// Reads `vocab.txt` and `tokenizer_config.json` (and `sentence_bert_config.json` when present) from a model directory.
    public init(directory: URL) throws {
        let configuration = try TokenizerConfiguration(directory: directory)
        let vocabURL = directory.appendingPathComponent("vocab.txt")
        guard FileManager.default.fileExists(atPath: vocabURL.path) else { throw TextModelError.missingFile("vocab.txt") }
        try self.init(vocabulary: Vocabulary(contentsOf: vocabURL), configuration: configuration)
    }

    /// The word-piece ids of `text` without `[CLS]`/`[SEP]` and without truncation.
    public func pieces(_ text: String) -> [Int32] { pieces(text, limit: .max) }

    /// The pieces, stopping at the first word that ends beyond `limit` ids: truncation keeps only the start, so
    /// the ids are those of a full run cut to the same length.
    private func pieces(_ text: String, limit: Int) -> [Int32] {
        var ids: [Int32] = []
        forEachSegment(of: text) { segment in
            guard ids.count <= limit else { return }
            switch segment {
            case let .special(id): ids.append(id)
            case let .text(piece):
                let normalized = normalizer.normalize(piece)
                BertPreTokenizer.forEachWord(in: normalized) { word in
                    if ids.count <= limit { wordPiece.tokenize(word, into: &ids) }
                }
            }
        }
        return ids
    }

    /// `[CLS] pieces [SEP]`, keeping the first `maxLength - 2` pieces.
    public func encode(_ text: String) -> Encoding {
        let room = configuration.maxLength - 2
        var pieces = pieces(text, limit: room)
        let truncated = pieces.count > room
        if truncated { pieces.removeSubrange(room...) }
        return Encoding(ids: [classID] + pieces + [separatorID], truncated: truncated)
    }

    /// Encodes each text.
    public func encode(_ texts: [String]) -> [Encoding] { texts.map(encode) }

    /// Pads encodings to the longest one.
    public func pad(_ encodings: [Encoding]) -> PaddedBatch {
        let length = encodings.map(\.ids.count).max() ?? 0
        var ids = [Int32](repeating: paddingID, count: encodings.count * length)
        var mask = [Int32](repeating: 0, count: encodings.count * length)
        for (row, encoding) in encodings.enumerated() {
            for (column, id) in encoding.ids.enumerated() {
                ids[row * length + column] = id
                mask[row * length + column] = 1
            }
        }
        return PaddedBatch(ids: ids, attentionMask: mask, count: encodings.count, length: length)
    }

    private enum Segment { case special(Int32), text(Substring.UnicodeScalarView) }

    /// Splits raw text at verbatim special tokens (leftmost match, longest first), as `tokenizers` does for added
    /// tokens that are not normalised. Matching works on UTF-8 bytes, so a token is found even when a combining
    /// mark follows it.
    private func forEachSegment(of text: String, _ body: (Segment) -> Void) {
        let utf8 = text.utf8
        var segmentStart = utf8.startIndex
        var i = utf8.startIndex
        scan: while i < utf8.endIndex {
            for special in specials where startsSpecial[Int(utf8[i])] && utf8[i...].starts(with: special.bytes) {
                if segmentStart < i { body(.text(text.unicodeScalars[segmentStart..<i])) }
                body(.special(special.id))
                i = utf8.index(i, offsetBy: special.bytes.count)
                segmentStart = i
                continue scan
            }
            i = utf8.index(after: i)
        }
        if segmentStart < utf8.endIndex { body(.text(text.unicodeScalars[segmentStart...])) }
    }
}
