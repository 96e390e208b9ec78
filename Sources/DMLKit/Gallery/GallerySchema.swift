import DMLIndex
import Foundation

/// The gallery's store: its SQLite schema, the migrations between versions, and every SQL statement the gallery
/// runs (nothing else in DMLKit writes SQL). Callers hold the database lock. The format is described in
/// docs/FORMATS.md ("Gallery directory").
enum GallerySchema {
    /// 3: items carry the crop box they were embedded from (`crop` TEXT "x,y,width,height", NULL for whole images).
    /// 2: poses stored as 51 little-endian float64 (x, y, v per COCO joint) in a BLOB; 1 stored them as text
    /// ("x,y,v,..."), which took most of a pose query to parse. Older stores are converted when opened for
    /// writing; readers read any of them.
    static let version = 3

    static func create(in db: SQLiteDatabase) throws {
        try db.transaction {
            try db.execute("""
                CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS items(
                    id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, image TEXT, caption TEXT,
                    pose BLOB, class_label INTEGER, metadata TEXT, crop TEXT);
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
        var stored = try db.query("SELECT value FROM meta WHERE key = 'schema_version'").first?.text(0)
        if stored == "1" {
            try migrateFromVersion1(db)
            stored = "2"
        }
        if stored == "2" {
            // 2 → 3: the crop column (NULL: those items were embedded whole). One transaction with the version.
            try db.transaction {
                if !(try hasCropColumn(db)) { try db.execute("ALTER TABLE items ADD COLUMN crop TEXT") }
                try db.query("UPDATE meta SET value = ? WHERE key = 'schema_version'", [.text(String(version))])
            }
            db.cropColumn = true
            stored = String(version)
        }
        guard stored == String(version) else {
            throw GalleryError.storage("gallery schema version \(stored ?? "?") is not supported (this DMLKit reads \(version))")
        }
    }

    /// Version 1 → 2: text poses rewritten as BLOBs, in one transaction (the column keeps its declared TEXT type;
    /// SQLite stores BLOBs in it as they are). Data and generation are unchanged, so the index files stay current.
    private static func migrateFromVersion1(_ db: SQLiteDatabase) throws {
        try db.transaction {
            for row in try db.query("SELECT id, pose FROM items WHERE typeof(pose) = 'text'") {
                guard let id = row.int(0), let pose = decodePose(row, 1) else { continue }  // unreadable: left as it was
                try db.query("UPDATE items SET pose = ? WHERE id = ?", [encodePose(pose), .integer(id)])
            }
            try db.query("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        }
    }

    /// Whether the items table has the `crop` column (version 3); cached on the connection.
    static func hasCropColumn(_ db: SQLiteDatabase) throws -> Bool {
        if let known = db.cropColumn { return known }
        let has = try db.query("SELECT COUNT(*) FROM pragma_table_info('items') WHERE name = 'crop'").first?.int(0) == 1
        db.cropColumn = has
        return has
    }

    static func encodePose(_ pose: Pose) -> SQLiteValue {
        var data = Data(capacity: Pose.jointCount * 3 * 8)
        for value in pose.cocoValues {
            withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) }
        }
        return .blob(data)
    }

    /// The pose in column `i`: a BLOB (version 2), or text from a version-1 store; nil if absent or unreadable.
    static func decodePose(_ row: SQLiteRow, _ i: Int) -> Pose? {
        if let blob = row.blob(i) {
            guard blob.count == Pose.jointCount * 3 * 8 else { return nil }
            let values = blob.withUnsafeBytes { raw in
                (0..<Pose.jointCount * 3).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
            }
            return try? Pose(coco: values)
        }
        guard let text = row.text(i) else { return nil }
        return try? Pose(coco: text.split(separator: ",").compactMap { Double($0) })
    }

    /// For read-only handles: the file is a gallery store whose schema this code reads (1 or 2; nothing is
    /// converted), so a foreign SQLite file is refused rather than half-read.
    static func checkReadable(_ db: SQLiteDatabase, path: String) throws {
        let tables = Set(try db.query("SELECT name FROM sqlite_master WHERE type = 'table'").compactMap { $0.text(0) })
        guard ["meta", "items", "spaces", "embeddings"].allSatisfy(tables.contains) else {
            throw GalleryError.notAGallery("\(path) is not a gallery store (tables missing)")
        }
        let stored = try db.query("SELECT value FROM meta WHERE key = 'schema_version'").first?.text(0)
        guard ["1", "2", String(version)].contains(stored ?? "") else {
            throw GalleryError.storage("gallery schema version \(stored ?? "?") is not supported (this DMLKit reads \(version))")
        }
    }

    /// For read-only handles: every given space is stored, with the same fingerprint, dimension and metric.
    static func checkRegistered(_ spaces: [EmbeddingSpace], in db: SQLiteDatabase) throws {
        for space in spaces {
            guard let row = try db.query("SELECT dimension, fingerprint, metric FROM spaces WHERE name = ?", [.text(space.name)]).first else {
                throw GalleryError.unknownSpace(space.name)
            }
            try checkStored(space, row)
        }
    }

    /// A stored space row against the space a caller opens.
    private static func checkStored(_ space: EmbeddingSpace, _ row: SQLiteRow) throws {
        let fingerprint = row.text(1) ?? ""
        guard fingerprint == space.fingerprint else {
            throw GalleryError.fingerprintMismatch(space: space.name, stored: fingerprint, given: space.fingerprint)
        }
        guard row.int(0) == Int64(space.dimension), row.text(2) == space.metric.rawValue else {
            throw GalleryError.spaceMismatch(
                "space '\(space.name)' is stored with dimension \(row.int(0) ?? 0) and metric \(row.text(2) ?? "?")")
        }
    }

    /// Checks given spaces against stored ones and records new ones.
    static func register(_ spaces: [EmbeddingSpace], in db: SQLiteDatabase) throws {
        try db.transaction {
            for space in spaces {
                guard space.dimension > 0 else { throw GalleryError.spaceMismatch("space '\(space.name)' needs a positive dimension") }
                let rows = try db.query("SELECT dimension, fingerprint, metric FROM spaces WHERE name = ?", [.text(space.name)])
                if let row = rows.first {
                    try checkStored(space, row)
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
            let pose: SQLiteValue = item.pose.map(encodePose) ?? .null
            try db.query("INSERT INTO items(key, image, caption, pose, class_label, metadata, crop) VALUES(?, ?, ?, ?, ?, ?, ?)", [
                .text(item.key), item.image.map(SQLiteValue.text) ?? .null, item.caption.map(SQLiteValue.text) ?? .null, pose,
                item.classLabel.map(SQLiteValue.integer) ?? .null, item.metadata.map(SQLiteValue.text) ?? .null,
                item.crop.map { SQLiteValue.text($0.description) } ?? .null,
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
        let crop = try hasCropColumn(db) ? "crop" : "NULL"
        return try db.query("SELECT id, key, image, caption, pose, class_label, metadata, \(crop) FROM items WHERE \(clause)", values).map { row in
            let item = GalleryItem(key: row.text(1) ?? "", image: row.text(2), caption: row.text(3), pose: decodePose(row, 4),
                                   classLabel: row.int(5), metadata: row.text(6), crop: row.text(7).flatMap { try? CropBox(parsing: $0) })
            return (row.int(0) ?? -1, item)
        }
    }

    /// The poses of the items matching a WHERE clause, with their ids, in id order (only what pose scans need).
    static func poses(_ db: SQLiteDatabase, where clause: String = "1", _ values: [SQLiteValue] = []) throws -> [(Int64, Pose)] {
        try db.query("SELECT id, pose FROM items WHERE pose IS NOT NULL AND (\(clause)) ORDER BY id", values).compactMap { row in
            guard let id = row.int(0), let pose = decodePose(row, 1) else { return nil }
            return (id, pose)
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

    /// The stored embedding of the item `key` in `space`.
    static func embedding(_ db: SQLiteDatabase, key: String, space: String) throws -> [Float] {
        let rows = try db.query("""
            SELECT e.vector FROM items i LEFT JOIN embeddings e ON e.item_id = i.id AND e.space = ? WHERE i.key = ?
            """, [.text(space), .text(key)])
        guard let row = rows.first else { throw GalleryError.unknownKey(key) }
        guard let blob = row.blob(0) else { throw GalleryError.unknownSpace(space) }
        // Copied element by element: a blob's bytes carry no alignment promise.
        return blob.withUnsafeBytes { raw in (0..<raw.count / 4).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
    }

    // MARK: Items, spaces, meta

    static func count(_ db: SQLiteDatabase) throws -> Int {
        Int(try db.query("SELECT COUNT(*) FROM items").first?.int(0) ?? 0)
    }

    /// The stored spaces, by name.
    static func spaces(_ db: SQLiteDatabase) throws -> [EmbeddingSpace] {
        try db.query("SELECT name, dimension, fingerprint, metric, factory FROM spaces ORDER BY name").compactMap { row in
            guard let name = row.text(0), let dimension = row.int(1), let fingerprint = row.text(2),
                  let metric = row.text(3).flatMap(Metric.init(rawValue:)), let factory = row.text(4)
            else { return nil }
            return EmbeddingSpace(name: name, dimension: Int(dimension), fingerprint: fingerprint, metric: metric, factory: factory)
        }
    }

    /// The generation each index file was last saved at, by index name.
    static func indexGenerations(_ db: SQLiteDatabase) throws -> [String: Int64] {
        let prefix = "index_generation:"
        var result: [String: Int64] = [:]
        for row in try db.query("SELECT key, value FROM meta WHERE key LIKE 'index_generation:%'") {
            guard let key = row.text(0), let value = row.text(1).flatMap({ Int64($0) }) else { continue }
            result[String(key.dropFirst(prefix.count))] = value
        }
        return result
    }

    /// The ids of the stored items among `keys` (unknown keys are left out).
    static func ids(_ db: SQLiteDatabase, keys: [String]) throws -> [Int64] {
        try keys.compactMap { try db.query("SELECT id FROM items WHERE key = ?", [.text($0)]).first?.int(0) }
    }

    /// The key of the item `id`.
    static func key(_ db: SQLiteDatabase, id: Int64) throws -> String? {
        try db.query("SELECT key FROM items WHERE id = ?", [.integer(id)]).first?.text(0)
    }

    /// Stores a fitted calibration (`meta.calibration:SPACE`, JSON).
    static func setCalibration(_ db: SQLiteDatabase, space: String, json: String) throws {
        try db.query("INSERT OR REPLACE INTO meta VALUES(?, ?)", [.text("calibration:\(space)"), .text(json)])
    }

    // MARK: Derived indexes and calibrations

    /// The stored embeddings of `ids` in `space` (ids without one are absent), queried in chunks.
    static func vectors(_ db: SQLiteDatabase, space: String, ids: [Int64]) throws -> [(Int64, [Float])] {
        var result: [(Int64, [Float])] = []
        for start in stride(from: 0, to: ids.count, by: 500) {
            let chunk = ids[start..<min(start + 500, ids.count)]
            let placeholders = Array(repeating: "?", count: chunk.count).joined(separator: ",")
            let rows = try db.query("SELECT item_id, vector FROM embeddings WHERE space = ? AND item_id IN (\(placeholders))",
                                    [.text(space)] + chunk.map { .integer($0) })
            for row in rows {
                guard let id = row.int(0), let blob = row.blob(1) else { continue }
                result.append((id, blob.withUnsafeBytes { raw in (0..<raw.count / 4).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }))
            }
        }
        return result
    }


    /// The ids of the store rows an index is checked against: the items with an embedding in `space`, or every item
    /// for the pose index. Both queries read only an index of ids (SQLite answers them from the embeddings' primary
    /// key and the items' key index), not the rows, so the check stays cheap. (For the pose index, a pose changed
    /// outside DMLKit without a generation bump is not noticed; items added or removed are.)
    static func indexedIDs(_ db: SQLiteDatabase, for source: DerivedIndex.Source) throws -> StoreIDs {
        let rows: [SQLiteRow]
        switch source {
        case .poseLabels: rows = try db.query("SELECT id FROM items")
        case .embeddings(let space): rows = try db.query("SELECT item_id FROM embeddings WHERE space = ?", [.text(space)])
        }
        return StoreIDs(rows.compactMap { $0.int(0) })
    }

    /// The rows a derived index is rebuilt from: ids and vectors (row-major), in id order.
    static func indexRows(_ db: SQLiteDatabase, for source: DerivedIndex.Source) throws -> ([Int64], [Float]) {
        switch source {
        case .embeddings(let space):
            return try vectors(db, space: space)
        case .poseLabels:
            let posed = try poses(db).compactMap { id, pose in (try? pose.normalized()).map { (id, $0.labelVector) } }
            return (posed.map(\.0), posed.flatMap(\.1))
        }
    }

    static func indexRecord(_ db: SQLiteDatabase, space: String) throws -> IndexRecord? {
        guard let text = try db.query("SELECT value FROM meta WHERE key = ?", [.text("index_check:\(space)")]).first?.text(0) else {
            return nil
        }
        return try? JSONDecoder().decode(IndexRecord.self, from: Data(text.utf8))
    }

    /// Records the generation an index file reflects and what it holds, in one transaction.
    static func setIndexRecord(_ db: SQLiteDatabase, space: String, generation: Int64, _ record: IndexRecord) throws {
        let json = String(decoding: try JSONEncoder().encode(record), as: UTF8.self)
        try db.transaction {
            try setIndexGeneration(db, space: space, generation)
            try db.query("INSERT OR REPLACE INTO meta VALUES(?, ?)", [.text("index_check:\(space)"), .text(json)])
        }
    }


    /// Stored calibrations by space (unreadable entries are skipped: they are refitted on the next refresh).
    static func calibrations(_ db: SQLiteDatabase) throws -> [String: DistanceCalibration] {
        var result: [String: DistanceCalibration] = [:]
        for row in try db.query("SELECT key, value FROM meta WHERE key LIKE 'calibration:%'") {
            guard let key = row.text(0), let json = row.text(1),
                  let calibration = try? JSONDecoder().decode(DistanceCalibration.self, from: Data(json.utf8))
            else { continue }
            result[String(key.dropFirst("calibration:".count))] = calibration
        }
        return result
    }

}
