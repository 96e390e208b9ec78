import Foundation

/// The BERT normaliser, step for step as Hugging Face `tokenizers` applies it: drop control characters and map
/// whitespace to spaces, surround CJK ideographs with spaces, strip accents (canonical decomposition, then drop
/// nonspacing marks), lower-case (full Unicode mapping, one character at a time).
public struct BertNormalizer: Sendable, Equatable {
    /// Drop control characters and map whitespace to spaces.
    public var cleanText = true
    /// Surround each CJK ideograph with spaces.
    public var handleChineseChars = true
    /// Decompose and drop nonspacing marks.
    public var stripAccents = true
    /// Lower-case.
    public var lowercase = true

    /// A normaliser with the given steps.
    public init(cleanText: Bool = true, handleChineseChars: Bool = true, stripAccents: Bool = true, lowercase: Bool = true) {
        self.cleanText = cleanText
        self.handleChineseChars = handleChineseChars
        self.stripAccents = stripAccents
        self.lowercase = lowercase
    }

    /// The normalised text as scalars.
    public func normalize(_ text: String) -> [Unicode.Scalar] { normalize(text.unicodeScalars[...]) }

    /// The normalised scalars of part of a text.
    public func normalize(_ text: Substring.UnicodeScalarView) -> [Unicode.Scalar] {
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(text.count)
        var allASCII = true
        for s in text {
            let v = s.value
            if cleanText {
                if CharacterClasses.isRemoved(v) { continue }
                if CharacterClasses.isWhitespace(v) { scalars.append(" "); continue }
            }
            if handleChineseChars && CharacterClasses.isChinese(v) {
                scalars.append(" "); scalars.append(s); scalars.append(" ")
            } else {
                scalars.append(s)
            }
            if v >= 128 { allASCII = false }
        }
        if stripAccents && !allASCII {
            // Foundation's NFD: ASCII text is already decomposed, so it skips this.
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars)
            let decomposed = String(view).decomposedStringWithCanonicalMapping
            scalars.removeAll(keepingCapacity: true)
            for s in decomposed.unicodeScalars where !CharacterClasses.isNonspacingMark(s.value) { scalars.append(s) }
        }
        if lowercase {
            var lowered: [Unicode.Scalar] = []
            lowered.reserveCapacity(scalars.count)
            for s in scalars {
                if s.value < 128 {
                    lowered.append(s.value >= 65 && s.value <= 90 ? Unicode.Scalar(UInt8(s.value + 32)) : s)
                } else {
                    lowered.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars)
                }
            }
            scalars = lowered
        }
        return scalars
    }
}
