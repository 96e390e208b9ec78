import DMLText
import Foundation
import Testing

/// The Swift tokenizer against ids Hugging Face `tokenizers` wrote for the committed corpus.
@Suite struct TokenizerParityTests {
    @Test func corpusIsLargeAndVaried() throws {
        let corpus = try TextFixtures.corpus()
        #expect(corpus.count >= 2000)
        #expect(corpus.contains { $0.unicodeScalars.contains { $0.properties.isEmojiPresentation } })
        #expect(corpus.contains { $0.unicodeScalars.contains { (0x4E00...0x9FFF).contains($0.value) } })
        #expect(corpus.contains { $0.unicodeScalars.contains { $0.value < 0x20 && $0 != "\t" } })
        #expect(corpus.contains { $0.unicodeScalars.count > 10_000 })
    }

    @Test func idsMatchHuggingFaceTokenizersOnEveryCorpusLine() throws {
        let tokenizer = try BertTokenizer(directory: try TextFixtures.modelDirectory())
        let corpus = try TextFixtures.corpus()
        let reference = try TextFixtures.referenceIDs()
        try #require(corpus.count == reference.count)
        var mismatches: [Int] = []
        for (i, line) in corpus.enumerated() {
            let ids = [tokenizer.classID] + tokenizer.pieces(line) + [tokenizer.separatorID]
            if ids != reference[i] { mismatches.append(i) }
        }
        let shown = mismatches.prefix(5).map { i in
            "line \(i) \(corpus[i].unicodeScalars.prefix(60).map { String(format: "%04X", $0.value) }.joined(separator: " ")): "
                + "got \(tokenizer.pieces(corpus[i]).prefix(20)) want \(reference[i].prefix(22))"
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) of \(corpus.count) lines differ:\n\(shown.joined(separator: "\n"))")
    }

    @Test func longTextIsTruncatedToTheMaximumLengthKeepingTheStart() throws {
        let tokenizer = try BertTokenizer(directory: try TextFixtures.modelDirectory())
        #expect(tokenizer.configuration.maxLength == 256)  // sentence_bert_config.json's max_seq_length
        let corpus = try TextFixtures.corpus()
        let reference = try TextFixtures.referenceIDs()
        var checked = 0
        for (line, full) in zip(corpus, reference) where full.count > 256 {
            let encoding = tokenizer.encode(line)
            #expect(encoding.truncated)
            #expect(encoding.ids == Array(full.prefix(255)) + [tokenizer.separatorID])
            checked += 1
        }
        #expect(checked >= 10)
        #expect(!tokenizer.encode("short text").truncated)
    }

    @Test func emptyAndWhitespaceOnlyTextGiveClassAndSeparatorOnly() throws {
        let tokenizer = try BertTokenizer(directory: try TextFixtures.modelDirectory())
        for text in ["", " ", "\t\u{3000}\u{00A0}", "\u{0}\u{200B}\u{FEFF}"] {
            #expect(tokenizer.encode(text).ids == [101, 102])
        }
    }

    @Test func paddingFillsShortRowsAndMasksThem() throws {
        let tokenizer = try BertTokenizer(directory: try TextFixtures.modelDirectory())
        let batch = tokenizer.pad(tokenizer.encode(["a person jumping", "hi"]))
        #expect(batch.count == 2)
        #expect(batch.length == tokenizer.encode("a person jumping").ids.count)
        let second = Array(batch.ids[batch.length...])
        #expect(second.prefix(3) == [101, tokenizer.vocabulary["hi"]!, 102])
        #expect(second.dropFirst(3).allSatisfy { $0 == tokenizer.paddingID })
        #expect(Array(batch.attentionMask[batch.length...]) == [1, 1, 1] + Array(repeating: 0, count: batch.length - 3))
    }
}

/// Setting the tokenizer up from a directory, and what it says when the directory is wrong.
@Suite final class TokenizerConfigurationTests {
    private var made: [URL] = []
    deinit { for url in made { try? FileManager.default.removeItem(at: url) } }

    private func directory(_ files: [String: String]) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dmltext-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        made.append(url)
        for (name, text) in files { try Data(text.utf8).write(to: url.appendingPathComponent(name)) }
        return url
    }

    private let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n##s\n,\n"

    @Test func readsSettingsAndTokenizesWithASmallVocabulary() throws {
        let url = try directory(["vocab.txt": vocab, "tokenizer_config.json": #"{"do_lower_case": true, "model_max_length": 4}"#])
        let tokenizer = try BertTokenizer(directory: url)
        #expect(tokenizer.configuration.maxLength == 4)
        #expect(tokenizer.pieces("Hello, worlds! héllo") == [5, 8, 6, 7, 1, 5])
        #expect(tokenizer.encode("hello world hello").ids == [2, 5, 6, 3])
    }

    @Test func vocabularyWithWindowsLineEndsReadsTheSameTokens() throws {
        let url = try directory(["vocab.txt": vocab.replacingOccurrences(of: "\n", with: "\r\n"), "tokenizer_config.json": "{}"])
        let tokenizer = try BertTokenizer(directory: url)
        #expect(tokenizer.vocabulary.count == 9 && tokenizer.vocabulary["world"] == 6)
    }

    @Test func missingVocabularyIsNamed() throws {
        let url = try directory(["tokenizer_config.json": "{}"])
        #expect(throws: TextModelError.missingFile("vocab.txt")) { try BertTokenizer(directory: url) }
    }

    @Test func missingTokenizerConfigIsNamed() throws {
        let url = try directory(["vocab.txt": vocab])
        #expect(throws: TextModelError.missingFile("tokenizer_config.json")) { try BertTokenizer(directory: url) }
    }

    @Test func unsupportedTokenizerClassIsRefused() throws {
        let url = try directory(["vocab.txt": vocab, "tokenizer_config.json": #"{"tokenizer_class": "GPT2Tokenizer"}"#])
        #expect(throws: TextModelError.unsupportedConfig(file: "tokenizer_config.json", key: "tokenizer_class", value: "GPT2Tokenizer")) {
            try BertTokenizer(directory: url)
        }
    }

    @Test func malformedConfigValuesAreNamed() throws {
        let url = try directory(["vocab.txt": vocab, "tokenizer_config.json": #"{"do_lower_case": "yes"}"#])
        #expect(throws: TextModelError.invalidConfig(file: "tokenizer_config.json", key: "do_lower_case", reason: "must be true or false")) {
            try BertTokenizer(directory: url)
        }
        let broken = try directory(["vocab.txt": vocab, "tokenizer_config.json": "{not json"])
        #expect(throws: TextModelError.unreadableFile(path: "tokenizer_config.json", reason: "not valid JSON")) {
            try BertTokenizer(directory: broken)
        }
    }

    @Test func vocabularyWithoutASpecialTokenIsRefused() throws {
        let url = try directory(["vocab.txt": "[PAD]\n[UNK]\n[CLS]\nhello\n", "tokenizer_config.json": "{}"])
        #expect(throws: TextModelError.invalidVocabulary("has no special token [SEP]")) { try BertTokenizer(directory: url) }
    }

    @Test func vocabularyThatIsNotUTF8IsRefused() throws {
        let url = try directory(["tokenizer_config.json": "{}"])
        try Data([0x5B, 0x50, 0xFF, 0xFE, 0x0A]).write(to: url.appendingPathComponent("vocab.txt"))
        #expect(throws: TextModelError.invalidVocabulary("not valid UTF-8")) { try BertTokenizer(directory: url) }
    }
}
