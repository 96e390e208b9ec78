import CDMLHash

/// SHA-256 (FIPS 180-4), used to check `dml.fingerprint`. Written here because the runtime takes no
/// third-party packages and CryptoKit exists only on Apple platforms; the block function is C (`CDMLHash`).
struct SHA256 {
    private var state: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
    private var buffer: [UInt8] = []
    private var length: UInt64 = 0

    /// Adds bytes to the message.
    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        length &+= UInt64(bytes.count)
        var index = 0
        if !buffer.isEmpty {
            let take = min(64 - buffer.count, bytes.count)
            buffer += bytes[0..<take]
            index = take
            if buffer.count == 64 {
                buffer.withUnsafeBytes { compress($0) }
                buffer.removeAll(keepingCapacity: true)
            }
        }
        let whole = (bytes.count - index) / 64 * 64
        if whole > 0 {
            compress(UnsafeRawBufferPointer(rebasing: bytes[index..<(index + whole)]))
            index += whole
        }
        if index < bytes.count { buffer += bytes[index...] }
    }

    mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    /// The digest as lowercase hex.
    mutating func hexDigest() -> String {
        let bits = length &* 8
        var tail: [UInt8] = [0x80]
        tail += [UInt8](repeating: 0, count: (119 - Int(length % 64)) % 64)
        tail += (0..<8).map { UInt8(truncatingIfNeeded: bits >> (56 - 8 * UInt64($0))) }
        let total = length
        update(tail)
        length = total
        let digits = Array("0123456789abcdef")
        return String(state.flatMap { word in (0..<8).map { digits[Int((word >> (28 - 4 * UInt32($0))) & 0xF)] } })
    }

    /// Whole 64-byte blocks, compressed in C: the fingerprint is hashed at every load, and Swift at -Onone
    /// (the debug build tests use) hashes ~60x slower than C at -O0.
    private mutating func compress(_ blocks: UnsafeRawBufferPointer) {
        guard let base = blocks.baseAddress else { return }
        state.withUnsafeMutableBufferPointer { state in
            dml_sha256_compress(state.baseAddress!, base.assumingMemoryBound(to: UInt8.self), blocks.count / 64)
        }
    }
}

extension SafetensorsFile {
    /// NumPy's dtype string for each safetensors dtype, as the exporter's fingerprint spells it.
    private static let numpyDType: [TensorDType: String] = [
        .f64: "<f8", .f32: "<f4", .f16: "<f2", .bf16: "<V2", .i64: "<i8", .i32: "<i4", .i16: "<i2",
        .i8: "|i1", .u8: "|u1", .bool: "|b1",
    ]

    /// Recomputes `dml.fingerprint` as `dmlkit.export` defines it: SHA-256 over the architecture JSON, then for
    /// every tensor in name order `"\0name\0dtype\0[shape]\0"` and its bytes. Nil when the file has no architecture.
    public func computeFingerprint() throws -> String? {
        guard let architecture = metadata["dml.architecture"] else { return nil }
        var hash = SHA256()
        hash.update(Array(architecture.utf8))
        for name in tensors.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            let info = try info(name)
            let shape = "[" + info.shape.map(String.init).joined(separator: ", ") + "]"
            hash.update(Array("\0\(name)\0\(Self.numpyDType[info.dtype] ?? info.dtype.rawValue)\0\(shape)\0".utf8))
            hash.update(try rawBytes(name))
            releaseResidentPages(of: [name])  // hashed pages need not stay resident until load ends
        }
        return "sha256:" + hash.hexDigest()
    }
}
