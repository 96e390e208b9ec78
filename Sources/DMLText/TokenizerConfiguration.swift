import Foundation

/// How a BERT WordPiece tokenizer is set up, read from a model directory's `tokenizer_config.json`
/// (and `sentence_bert_config.json` for the maximum length sentence-transformers uses).
public struct TokenizerConfiguration: Sendable, Equatable {
    /// Lower-case the text (`do_lower_case`).
    public var lowercase = true
    /// Strip accents (`strip_accents`; when absent it follows `lowercase`, as in BERT).
    public var stripAccents = true
    /// Split CJK ideographs into single characters (`tokenize_chinese_chars`).
    public var tokenizeChineseChars = true
    /// Longest sequence in tokens, `[CLS]` and `[SEP]` included; longer text is truncated.
    public var maxLength = 512
    /// Special tokens.
    public var unknownToken = "[UNK]", classToken = "[CLS]", separatorToken = "[SEP]", paddingToken = "[PAD]", maskToken = "[MASK]"
    /// Words longer than this many characters become the unknown token.
    public var maxInputCharsPerWord = 100

    /// BERT uncased defaults.
    public init() {}

    /// Reads `tokenizer_config.json` (required) and `sentence_bert_config.json` (optional) from `directory`.
    public init(directory: URL) throws {
        guard let config = try JSONFile.load("tokenizer_config.json", in: directory, required: true) else { throw TextModelError.missingFile("tokenizer_config.json") }
        if let tokenizerClass = try config.string("tokenizer_class"), !["BertTokenizer", "BertTokenizerFast"].contains(tokenizerClass) {
            throw TextModelError.unsupportedConfig(file: config.name, key: "tokenizer_class", value: tokenizerClass)
        }
        if let basic = try config.bool("do_basic_tokenize"), !basic {
            throw TextModelError.unsupportedConfig(file: config.name, key: "do_basic_tokenize", value: "false")
        }
        lowercase = try config.bool("do_lower_case") ?? true
        stripAccents = try config.bool("strip_accents") ?? lowercase
        tokenizeChineseChars = try config.bool("tokenize_chinese_chars") ?? true
        unknownToken = try config.token("unk_token") ?? unknownToken
        classToken = try config.token("cls_token") ?? classToken
        separatorToken = try config.token("sep_token") ?? separatorToken
        paddingToken = try config.token("pad_token") ?? paddingToken
        maskToken = try config.token("mask_token") ?? maskToken
        // transformers writes a huge sentinel when a model sets no limit.
        if let modelMax = try config.int("model_max_length"), modelMax > 0, modelMax < 1_000_000 { maxLength = modelMax }
        if let sbert = try JSONFile.load("sentence_bert_config.json", in: directory, required: false),
           let sequence = try sbert.int("max_seq_length") {
            maxLength = sequence
        }
        guard maxLength >= 2 else {
            throw TextModelError.invalidConfig(file: "sentence_bert_config.json", key: "max_seq_length", reason: "must be at least 2 ([CLS] and [SEP])")
        }
    }

    /// The special tokens, matched verbatim in raw text before normalisation.
    var specialTokens: [String] { [paddingToken, unknownToken, classToken, separatorToken, maskToken] }
}
