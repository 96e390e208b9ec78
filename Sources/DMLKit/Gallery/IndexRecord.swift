import Foundation

/// What the gallery records beside an index file's generation (`meta.index_check:SPACE`, JSON), so that an index
/// file it did not write, or a store whose rows changed without a generation bump, is noticed and the index rebuilt
/// from the store instead of being used.
///
/// - `bytes`, `fileHash`: the saved file, read back after the save. A file that was damaged, truncated, or replaced
///   (another gallery's index, other ids) since then no longer matches.
/// - `count`: vectors in the index when it was saved; a loaded index holding another number is stale (a writer that
///   saved a short file without noticing is caught here).
/// - `storeIDs`: the ids of the store rows the index was built from (`StoreIDs`), compared with the store's rows now.
///
/// Checking costs one read of the file (hashed at about 2.5 GB/s in release builds: ~80 ms for 200 MiB of index
/// files) and one pass over an id index of the store for the space;
/// a rebuild reads every row and vector.
struct IndexRecord: Codable, Equatable {
    var bytes: Int
    var fileHash: String
    var count: Int
    var storeIDs: StoreIDs

    /// The record of the file at `url`, just saved from an index holding `count` vectors of the rows `storeIDs`.
    init(fileAt url: URL, count: Int, storeIDs: StoreIDs) throws {
        let data = try Data(contentsOf: url, options: .alwaysMapped)
        bytes = data.count
        fileHash = Self.hash(data)
        self.count = count
        self.storeIDs = storeIDs
    }

    /// Whether `data` is the file this record describes.
    func matches(file data: Data) -> Bool { data.count == bytes && Self.hash(data) == fileHash }

    /// Whether the file at `url` is the one this record describes; false when it cannot be read. The file is
    /// mapped, not copied: index files are replaced by rename, never rewritten in place.
    func matches(fileAt url: URL) -> Bool {
        guard let data = try? Data(contentsOf: url, options: .alwaysMapped) else { return false }
        return matches(file: data)
    }

    /// A 64-bit hash of the bytes (word-wise multiply-rotate, with the length): detects damage, not tampering.
    static func hash(_ data: Data) -> String {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(data.count)
        data.withUnsafeBytes { raw in
            let words = raw.count / 8
            for i in 0..<words {
                let w = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))
                h = ((h ^ w) &* 0xFF51_AFD7_ED55_8CCD)
                h = (h << 31) | (h >> 33)
            }
            var tail: UInt64 = 0
            for i in (words * 8)..<raw.count { tail = (tail << 8) | UInt64(raw[i]) }
            h = (h ^ tail) &* 0xC4CE_B9FE_1A85_EC53
        }
        h ^= h >> 33
        return String(format: "%016llx", h)
    }
}

/// A set of ids summarised by its size and an order-independent hash (the wrapping sum of each id's mix), so it can
/// be computed straight from an unordered query.
struct StoreIDs: Codable, Equatable {
    var count = 0
    var digest: UInt64 = 0

    init<S: Sequence>(_ ids: S) where S.Element == Int64 {
        for id in ids {
            count += 1
            digest &+= Self.mix(UInt64(bitPattern: id))
        }
    }

    /// SplitMix64's finaliser: nearby ids give unrelated values, so sums of different sets rarely collide.
    private static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
