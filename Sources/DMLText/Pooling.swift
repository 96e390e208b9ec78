import Foundation

/// How token vectors become one sentence vector, read from `1_Pooling/config.json` (sentence-transformers).
public enum Pooling: String, Sendable, Equatable {
    /// Mean over the sequence's tokens (`[CLS]` and `[SEP]` included).
    case mean
    /// The `[CLS]` token's vector.
    case cls
    /// Element-wise maximum over the tokens.
    case max
    /// Sum over the tokens divided by the square root of their count.
    case meanSqrtLength

    /// Reads `1_Pooling/config.json`; exactly one mode must be on.
    public init(directory: URL) throws {
        let name = "1_Pooling/config.json"
        guard let file = try JSONFile.load(name, in: directory, required: true) else { throw TextModelError.missingFile(name) }
        let modes: [(String, Pooling)] = [("pooling_mode_mean_tokens", .mean), ("pooling_mode_cls_token", .cls),
                                          ("pooling_mode_max_tokens", .max), ("pooling_mode_mean_sqrt_len_tokens", .meanSqrtLength)]
        var chosen: [Pooling] = []
        for (key, mode) in modes where try file.bool(key) == true { chosen.append(mode) }
        for key in ["pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"] where try file.bool(key) == true {
            throw TextModelError.unsupportedConfig(file: name, key: key, value: "true")
        }
        guard chosen.count == 1, let mode = chosen.first else {
            throw TextModelError.invalidConfig(file: name, key: "pooling_mode_*", reason: "must turn on exactly one supported mode, found \(chosen.count)")
        }
        self = mode
    }

    /// Pools `length` rows of width `width` at `tokens` into `out`.
    func pool(_ tokens: UnsafePointer<Float>, length: Int, width: Int, into out: UnsafeMutablePointer<Float>) {
        switch self {
        case .cls:
            out.update(from: tokens, count: width)
        case .max:
            out.update(from: tokens, count: width)
            for t in 1..<Swift.max(length, 1) {
                let row = tokens + t * width
                for j in 0..<width where row[j] > out[j] { out[j] = row[j] }
            }
        case .mean, .meanSqrtLength:
            out.update(repeating: 0, count: width)
            for t in 0..<length {
                let row = tokens + t * width
                for j in 0..<width { out[j] += row[j] }
            }
            let divisor = self == .mean ? Float(length) : Float(length).squareRoot()
            for j in 0..<width { out[j] /= divisor }
        }
    }
}
