import DMLText
import Foundation
import Testing

/// Differences from Hugging Face `tokenizers` found by `Fuzz/fuzz.sh parity` (fuzz-tokenizer's texts re-encoded by
/// the model's tokenizer.json). Reference ids from tokenizers 0.23.3:
/// `Tokenizer.from_file(".../tokenizer.json")` with `BertNormalizer(clean_text=True, handle_chinese_chars=True,
/// strip_accents=False, lowercase=True)` (or `strip_accents=None`, the model's own setting), `encode(text).ids`.
@Suite struct TokenizerFuzzRegressions {
    /// Swift's `String ==` is canonical equivalence, so the vocabulary's "·" (U+00B7) matched a text's
    /// GREEK ANO TELEIA (U+0387), which decomposes to it; Hugging Face compares bytes and gives [UNK] unless accent
    /// stripping has decomposed the text first. Same for ANGSTROM SIGN → Å and OHM SIGN → Ω.
    @Test func vocabularyMatchesBytesNotCanonicalEquivalents() throws {
        let model = try BertTokenizer(directory: try TextFixtures.modelDirectory())
        var configuration = model.configuration
        configuration.stripAccents = false
        let keepingAccents = try BertTokenizer(vocabulary: model.vocabulary, configuration: configuration)
        #expect(keepingAccents.encode("Ο\u{387}L").ids == [101, 1169, 100, 1048, 102])
        let text = "a\u{387}b \u{B7} \u{212B} \u{C5} \u{2126}"
        #expect(keepingAccents.encode(text).ids == [101, 1037, 100, 1038, 1087, 100, 100, 1179, 102])
        // The model's own setting decomposes first, so all of them find their tokens.
        #expect(model.encode(text).ids == [101, 1037, 1087, 1038, 1087, 1037, 1037, 1179, 102])
    }

    /// Canonically equivalent tokens keep their own ids, as in `tokenizers` (which keys its vocabulary by bytes).
    @Test func canonicallyEquivalentTokensStayDistinct() {
        let vocabulary = Vocabulary(tokens: ["[UNK]", "\u{B7}", "\u{387}", "\u{C5}", "\u{212B}"])
        #expect(vocabulary["\u{B7}"] == 1 && vocabulary["\u{387}"] == 2)
        #expect(vocabulary["\u{C5}"] == 3 && vocabulary["\u{212B}"] == 4)
        #expect(vocabulary["A\u{30A}"] == nil)
    }
}
