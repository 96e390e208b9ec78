/// A 64-bit checksum of file contents (FNV-1a over 8-byte little-endian words, then the tail bytes), used to tell
/// whether two files written as one unit still belong together. Not cryptographic: it catches a stale or
/// mismatched file, not a forged one.
public enum Checksum {
    /// The checksum of `bytes`, as 16 lowercase hex digits.
    public static func hex(_ bytes: UnsafeRawBufferPointer) -> String {
        let value = compute(bytes)
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    static func compute(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        let prime: UInt64 = 0x0000_0100_0000_01b3
        let words = bytes.count / 8
        for i in 0..<words {
            let word = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))
            hash = (hash ^ word) &* prime
            hash ^= hash >> 29
        }
        for i in (words * 8)..<bytes.count {
            hash = (hash ^ UInt64(bytes[i])) &* prime
        }
        return hash ^ UInt64(bytes.count)
    }
}
