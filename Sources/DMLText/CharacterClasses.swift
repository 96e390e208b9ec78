/// Lookups into `UnicodeTables`, with a table for ASCII so ordinary text never reaches the binary searches.
enum CharacterClasses {
    private struct Flags: OptionSet {
        let rawValue: UInt8
        static let removed = Flags(rawValue: 1)
        static let whitespace = Flags(rawValue: 2)
        static let punctuation = Flags(rawValue: 4)
    }

    private static let ascii: [Flags] = (0..<128).map { cp -> Flags in
        var flags: Flags = []
        if contains(UnicodeTables.removed, UInt32(cp)) { flags.insert(.removed) }
        if contains(UnicodeTables.whitespace, UInt32(cp)) { flags.insert(.whitespace) }
        if contains(UnicodeTables.punctuation, UInt32(cp)) { flags.insert(.punctuation) }
        return flags
    }

    /// Dropped by text cleaning.
    static func isRemoved(_ v: UInt32) -> Bool { v < 128 ? ascii[Int(v)].contains(.removed) : contains(UnicodeTables.removed, v) }
    /// A pre-tokeniser split point.
    static func isWhitespace(_ v: UInt32) -> Bool { v < 128 ? ascii[Int(v)].contains(.whitespace) : contains(UnicodeTables.whitespace, v) }
    /// Isolated as its own word.
    static func isPunctuation(_ v: UInt32) -> Bool { v < 128 ? ascii[Int(v)].contains(.punctuation) : contains(UnicodeTables.punctuation, v) }
    /// Removed when stripping accents (after NFD).
    static func isNonspacingMark(_ v: UInt32) -> Bool { v >= 0x300 && contains(UnicodeTables.nonspacingMark, v) }
    /// A CJK ideograph.
    static func isChinese(_ v: UInt32) -> Bool { v >= 0x3400 && contains(UnicodeTables.chinese, v) }

    /// Binary search over sorted, disjoint closed ranges.
    static func contains(_ table: [ClosedRange<UInt32>], _ v: UInt32) -> Bool {
        var low = 0, high = table.count
        while low < high {
            let mid = (low + high) / 2
            if table[mid].upperBound < v { low = mid + 1 } else { high = mid }
        }
        return low < table.count && table[low].contains(v)
    }
}
