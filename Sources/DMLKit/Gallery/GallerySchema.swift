import DMLIndex
import Foundation

/// The gallery's SQLite schema and the statements on it. Callers hold the database lock.
enum GallerySchema {
    static let version = 1

    static func create(in db: SQLiteDatabase) throws {
        try db.transaction {
            try db.execute("""
                CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS items(
                    id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, image TEXT, caption TEXT,
                    pose TEXT, class_label INTEGER, metadata TEXT);
                CREATE TABLE IF NOT EXISTS spaces(
                    name TEXT PRIMARY KEY, dimension INTEGER NOT NULL, fingerprint TEXT NOT NULL,
                    metric TEXT NOT NULL, factory TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS embeddings(
                    item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
                    space TEXT NOT NULL REFERENCES spaces(name), vector BLOB NOT NULL,
                    PRIMARY KEY(item_id, space));
                INSERT OR IGNORE INTO meta VALUES('schema_version', '\(version)');
                INSERT OR IGNORE INTO meta VALUES('generation', '0');
                """)
        }
        let stored = try db.query("SELECT value FROM meta WHERE key = 'schema_version'").first?.text(0)
        guard stored == String(version) else {
            throw GalleryError.storage("gallery schema version \(stored ?? "?") is not supported (this DMLKit reads \(version))")
        }
    }

    /// Checks given spaces against stored ones and records new ones.
    static func register(_ spaces: [EmbeddingSpace], in db: SQLiteDatabase) throws {
        try db.transaction {
            for space in spaces {
                guard space.dimension > 0 else { throw GalleryError.spaceMismatch("space '\(space.name)' needs a positive dimension") }
                let rows = try db.query("SELECT dimension, fingerprint, metric FROM spaces WHERE name = ?", [.text(space.name)])
                if let row = rows.first {
                    let fingerprint = row.text(1) ?? ""
                    guard fingerprint == space.fingerprint else {
                        throw GalleryError.fingerprintMismatch(space: space.name, stored: fingerprint, given: space.fingerprint)
                    }
                    guard row.int(0) == Int64(space.dimension), row.text(2) == space.metric.rawValue else {
                        throw GalleryError.spaceMismatch(
                            "space '\(space.name)' is stored with dimension \(row.int(0) ?? 0) and metric \(row.text(2) ?? "?")")
                    }
                } else {
                    let count = try db.query("SELECT COUNT(*) FROM items").first?.int(0) ?? 0
                    guard count == 0 else {
                        throw GalleryError.spaceMismatch("cannot add space '\(space.name)' to a gallery that already has \(count) items")
                    }
                    try db.query("INSERT INTO spaces VALUES(?, ?, ?, ?, ?)", [
                        .text(space.name), .integer(Int64(space.dimension)), .text(space.fingerprint),
                        .text(space.metric.rawValue), .text(space.factory),
                    ])
                }
            }
        }
    }

    static func generation(_ db: SQLiteDatabase) throws -> Int64 {
        Int64(try db.query("SELECT value FROM meta WHERE key = 'generation'").first?.text(0) ?? "0") ?? 0
    }

    static func indexGeneration(_ db: SQLiteDatabase, space: String) throws -> Int64? {
        try db.query("SELECT value FROM meta WHERE key = ?", [.text("index_generation:\(space)")]).first?.text(0).flatMap { Int64($0) }
    }

    static func setIndexGeneration(_ db: SQLiteDatabase, space: String, _ generation: Int64) throws {
        try db.query("INSERT OR REPLACE INTO meta VALUES(?, ?)", [.text("index_generation:\(space)"), .text(String(generation))])
    }

    private static func bumpGeneration(_ db: SQLiteDatabase) throws {
        try db.query("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'generation'")
    }

    /// Inserts items and their embeddings; returns their ids. Runs inside the caller's transaction.
    static func insert(_ items: [GalleryItem], embeddings: [String: [Float]], spaces: [EmbeddingSpace], into db: SQLiteDatabase)
        throws -> [Int64]
    {
        var ids: [Int64] = []
        for (row, item) in items.enumerated() {
            let pose: SQLiteValue = item.pose.map { .text($0.cocoValues.map { "\($0)" }.joined(separator: ",")) } ?? .null
            try db.query("INSERT INTO items(key, image, caption, pose, class_label, metadata) VALUES(?, ?, ?, ?, ?, ?)", [
                .text(item.key), item.image.map(SQLiteValue.text) ?? .null, item.caption.map(SQLiteValue.text) ?? .null, pose,
                item.classLabel.map(SQLiteValue.integer) ?? .null, item.metadata.map(SQLiteValue.text) ?? .null,
            ])
            let id = db.lastInsertedRowID
            ids.append(id)
            for space in spaces {
                guard let vectors = embeddings[space.name] else { continue }
                let slice = Array(vectors[row * space.dimension..<(row + 1) * space.dimension])
                try db.query("INSERT INTO embeddings VALUES(?, ?, ?)", [.integer(id), .text(space.name), .blob(slice.withUnsafeBytes { Data($0) })])
            }
        }
        try bumpGeneration(db)
        return ids
    }

    /// Deletes items by key; returns the ids removed. With `requireAll`, an unknown key throws (the caller's
    /// transaction then rolls back).
    static func delete(keys: [String], from db: SQLiteDatabase, requireAll: Bool = false) throws -> [Int64] {
        var ids: [Int64] = []
        for key in Set(keys).sorted() {
            guard let id = try db.query("SELECT id FROM items WHERE key = ?", [.text(key)]).first?.int(0) else {
                if requireAll { throw GalleryError.unknownKey(key) }
                continue
            }
            try db.query("DELETE FROM items WHERE id = ?", [.integer(id)])
            ids.append(id)
        }
        if !ids.isEmpty { try bumpGeneration(db) }
        return ids
    }

    /// Items matching a WHERE clause, with their ids.
    static func items(_ db: SQLiteDatabase, where clause: String, _ values: [SQLiteValue]) throws -> [(Int64, GalleryItem)] {
        try db.query("SELECT id, key, image, caption, pose, class_label, metadata FROM items WHERE \(clause)", values).map { row in
            var pose: Pose?
            if let text = row.text(4) {
                let numbers = text.split(separator: ",").compactMap { Double($0) }
                pose = try? Pose(coco: numbers)
            }
            let item = GalleryItem(key: row.text(1) ?? "", image: row.text(2), caption: row.text(3), pose: pose,
                                   classLabel: row.int(5), metadata: row.text(6))
            return (row.int(0) ?? -1, item)
        }
    }

    /// Every embedding of a space, in id order.
    static func vectors(_ db: SQLiteDatabase, space: String) throws -> ([Int64], [Float]) {
        var ids: [Int64] = []
        var vectors: [Float] = []
        for row in try db.query("SELECT item_id, vector FROM embeddings WHERE space = ? ORDER BY item_id", [.text(space)]) {
            guard let id = row.int(0), let blob = row.blob(1) else { continue }
            ids.append(id)
            // Copied element by element: a blob's bytes carry no alignment promise.
            vectors += blob.withUnsafeBytes { raw in (0..<raw.count / 4).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
        }
        return (ids, vectors)
    }
}
