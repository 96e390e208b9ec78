/// How weight matrices are stored. Compute is always `Float`; `f16` and `int8` round the matrices as a model file
/// in that storage would hold them (half the size, a quarter of the size), so their accuracy cost can be measured
/// and shipped models can be checked before they are converted. LayerNorm parameters and biases stay `Float`.
public enum WeightPrecision: String, Sendable, CaseIterable {
    /// As stored in the file.
    case f32
    /// IEEE half precision (round to nearest even).
    case f16
    /// Symmetric int8 with one `Float` scale per output row (`scale = max|w| / 127`).
    case int8

    /// Rounds a row-major `[rows, columns]` matrix in place.
    func round(_ values: inout [Float], rows: Int, columns: Int) {
        switch self {
        case .f32:
            return
        case .f16:
            for i in values.indices { values[i] = roundToHalf(values[i]) }
        case .int8:
            for r in 0..<rows {
                let range = (r * columns)..<((r + 1) * columns)
                let peak = values[range].reduce(0) { max($0, abs($1)) }
                guard peak > 0 else { continue }
                let scale = peak / 127
                for i in range { values[i] = (values[i] / scale).rounded().clamped(-127, 127) * scale }
            }
        }
    }
}

extension Float {
    fileprivate func clamped(_ low: Float, _ high: Float) -> Float { Swift.min(Swift.max(self, low), high) }
}

/// The nearest IEEE half-precision value (ties to even), as a `Float`; overflow gives infinity.
/// Done by hand because `Float16` is missing on some Apple CPUs.
func roundToHalf(_ x: Float) -> Float {
    let bits = x.bitPattern
    let sign = bits & 0x8000_0000
    let magnitude = Float(bitPattern: bits & 0x7FFF_FFFF)
    guard magnitude.isFinite else { return x }
    if magnitude >= 65520 { return Float(bitPattern: sign | 0x7F80_0000) }  // rounds past the largest half
    if magnitude < 6.103515625e-05 {
        // Subnormal halves are multiples of 2^-24: round to that grid.
        let step: Float = 5.960464477539063e-08
        let rounded = (magnitude / step).rounded(.toNearestOrEven) * step
        return Float(bitPattern: sign | rounded.bitPattern)
    }
    // Normal: keep 10 of the 23 mantissa bits, ties to even.
    let m = bits & 0x7FFF_FFFF
    let dropped = m & 0x1FFF
    var kept = m & ~UInt32(0x1FFF)
    if dropped > 0x1000 || (dropped == 0x1000 && (kept & 0x2000) != 0) { kept += 0x2000 }
    return Float(bitPattern: sign | kept)
}
