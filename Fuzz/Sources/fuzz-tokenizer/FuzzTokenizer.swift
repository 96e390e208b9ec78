import DMLText
import Foundation
import FuzzSupport

/// Arbitrary bytes through `BertTokenizer` with the MiniLM vocabulary. Input layout: byte 0 switches normaliser
/// steps off (bit 0 lower-casing, bit 1 accent stripping, bit 2 CJK splitting), byte 1 picks the maximum length
/// (0: the model's, else 2 + byte % 128, so truncation is exercised), the rest is the text (invalid UTF-8 is
/// repaired, as `String(decoding:)` does for the CLI's input lines).
private let model: BertTokenizer = {
    let directory = environmentPath("DML_FUZZ_TEXT_MODEL", default: "models/text/all-MiniLM-L6-v2")
    do { return try BertTokenizer(directory: directory) } catch {
        fatalError("fuzz-tokenizer needs the MiniLM directory (make text-model, or set DML_FUZZ_TEXT_MODEL): \(error)")
    }
}()

/// With `DML_FUZZ_IDS_OUT=FILE`, every input's text (hex UTF-8), flags and full ids are appended to FILE, for
/// `Fuzz/tokenizer-parity.py` to compare with Hugging Face `tokenizers` (`Fuzz/fuzz.sh parity`).
private let idsOut: FileHandle? = ProcessInfo.processInfo.environment["DML_FUZZ_IDS_OUT"].flatMap { path in
    if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
    let handle = FileHandle(forWritingAtPath: path)
    _ = handle?.seekToEndOfFile()
    return handle
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTokenizer(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = fuzzData(start, count)
    guard data.count >= 2 else { return 0 }
    let flags = data[data.startIndex], lengthByte = data[data.startIndex + 1]
    var configuration = model.configuration
    if flags & 1 != 0 { configuration.lowercase = false }
    if flags & 2 != 0 { configuration.stripAccents = false }
    if flags & 4 != 0 { configuration.tokenizeChineseChars = false }
    if lengthByte != 0 { configuration.maxLength = 2 + Int(lengthByte % 128) }
    guard let tokenizer = try? BertTokenizer(vocabulary: model.vocabulary, configuration: configuration) else {
        fatalError("a valid configuration was refused")
    }
    let text = String(decoding: data.dropFirst(2), as: UTF8.self)

    let encoding = tokenizer.encode(text)
    let ids = encoding.ids
    invariant(ids.count >= 2 && ids.count <= configuration.maxLength, "\(ids.count) ids for maximum length \(configuration.maxLength)")
    invariant(ids.first == tokenizer.classID && ids.last == tokenizer.separatorID, "not framed by [CLS] ... [SEP]")
    invariant(ids.allSatisfy { $0 >= 0 && Int($0) < tokenizer.vocabulary.count }, "id outside the vocabulary")
    // Truncation stops early; the ids must be those of the full run cut to length.
    let pieces = tokenizer.pieces(text)
    let room = configuration.maxLength - 2
    invariant(encoding.truncated == (pieces.count > room), "truncated flag \(encoding.truncated) for \(pieces.count) pieces")
    invariant(Array(ids.dropFirst().dropLast()) == Array(pieces.prefix(room)), "early-stopped ids differ from the full run")

    if let idsOut {
        let hex = text.utf8.map { String(format: "%02x", $0) }.joined()
        let full = [tokenizer.classID] + pieces + [tokenizer.separatorID]
        idsOut.write(Data("\(hex)\t\(flags & 7)\t\(full.map(String.init).joined(separator: " "))\n".utf8))
    }

    let batch = tokenizer.pad([encoding, tokenizer.encode("")])
    invariant(batch.count == 2 && batch.length == ids.count && batch.ids.count == 2 * ids.count, "padded shape")
    invariant(batch.attentionMask.reduce(0, +) == Int32(ids.count + 2), "attention mask")
    return 0
}
