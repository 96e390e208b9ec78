import Foundation
import FuzzSupport

/// Seeds: two configuration bytes (see `fuzzTokenizer`) and a text each: captions like the gallery's, and the
/// cases the normaliser and WordPiece treat specially.
@_cdecl("LLVMFuzzerInitialize")
public func initializeTokenizer(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> CInt {
    writeSeedsIfRequested { save in
        let texts: [(String, UInt8, UInt8, String)] = [
            ("caption", 0, 0, "A person standing with both arms raised, seen from the left."),
            ("caption_truncated", 0, 6, "a woman in a red coat walks her dog along the beach at sunset"),
            ("accents", 0, 0, "Crème brûlée at the Café Müller, naïve Ångström façade"),
            ("accents_kept", 3, 0, "Crème brûlée at the Café Müller"),
            ("cjk", 0, 0, "一个人在跑步 東京タワー 서울"),
            ("cjk_unsplit", 4, 0, "一个人在跑步"),
            ("specials", 0, 0, "[CLS] hello [MASK] world [SEP][PAD][UNK]"),
            ("special_then_mark", 0, 0, "[MASK]\u{301} and [SEP]\u{308}"),
            ("punctuation", 0, 0, "well... (really?!) -- 3.14, $5; e-mail: a@b.c #tag"),
            ("long_word", 0, 0, "pre" + String(repeating: "x", count: 120) + " post"),
            ("whitespace_controls", 0, 0, "tab\there\r\nnew\u{0}line\u{200B}zero\u{FEFF}width\u{7F}"),
            ("emoji", 0, 0, "runner 🏃‍♀️ flag 🇫🇷 family 👨‍👩‍👧"),
            ("greek_turkish", 1, 0, "ΣΊΣΥΦΟΣ İstanbul ǅ ß ﬁ"),
            ("unknown_pieces", 0, 0, "qzxjkvw xylophonist ##ing ##"),
        ]
        for (name, flags, length, text) in texts { try save("\(name).txt", Data([flags, length]) + Data(text.utf8)) }
        try save("invalid_utf8.txt", Data([0, 0, 0x61, 0xFF, 0xC3, 0x28, 0xE2, 0x82, 0x20, 0xF0, 0x9F, 0x98]))
    }
    return 0
}
