import DMLIndex
import Foundation

/// Read access to a gallery's store without knowing its embedders: what `dml gallery info`, `eval` and searches by
/// stored key need before (or instead of) opening a `Gallery` with a model.
///
/// A reader may be shared between tasks and threads: its calls take turns on one read-only connection.
public struct GalleryReader: @unchecked Sendable {
    /// The gallery directory.
    public let directory: URL
    let database: SQLiteDatabase
    /// Serialises the connection (opened without SQLite's own mutex); shared with the `Gallery` that holds this reader.
    private let lock: NSLock

    /// Opens the store of an existing gallery read-only; a directory without `gallery.sqlite`, an empty (0-byte)
    /// file or one that is not a gallery store is `GalleryError.notAGallery` (nothing is created), and a gallery in a
    /// read-only directory, on a read-only mount or on a full disk can be read.
    public init(directory: URL) throws {
        self.directory = directory
        lock = NSLock()
        let file = directory.appendingPathComponent(Gallery.storeName)
        try Gallery.requireStore(file, directory: directory)
        do {
            database = try SQLiteDatabase(path: file.path, readOnly: true)
            try GallerySchema.checkReadable(database, path: file.path)
        } catch let error as GalleryError {
            throw error
        } catch let error as SQLiteError {
            throw GalleryError(error)
        } catch {
            throw GalleryError.storage("\(error)")
        }
    }

    /// A reader over a `Gallery`'s own connection and lock.
    init(directory: URL, database: SQLiteDatabase, lock: NSLock) {
        self.directory = directory
        self.database = database
        self.lock = lock
    }

    /// Reads every page of the store (SQLite's `quick_check`); throws `GalleryError.storage` naming the first problem.
    public func verify() throws {
        try run { try database.quickCheck() }
    }

    /// Whether the store is open read-only (it always is; for tests).
    var isReadOnly: Bool { database.isReadOnly }

    func run<T>(_ body: () throws -> T) throws -> T {
        do { return try lock.withLock(body) } catch let error as SQLiteError { throw GalleryError(error) }
    }

    /// The embedding spaces stored, by name.
    public func spaces() throws -> [EmbeddingSpace] {
        try run { try GallerySchema.spaces(database) }
    }

    /// Items stored.
    public func count() throws -> Int {
        try run { try GallerySchema.count(database) }
    }

    /// The store's generation (bumped by every committed change).
    public func generation() throws -> Int64 { try run { try GallerySchema.generation(database) } }

    /// The generation each derived index file was last saved at, by index name.
    public func indexGenerations() throws -> [String: Int64] {
        try run { try GallerySchema.indexGenerations(database) }
    }

    /// The names of the derived index files (`NAME.faiss`): one per stored space, and the pose-label index.
    public func indexNames() throws -> [String] {
        try spaces().map(\.name) + [DerivedIndex.poseLabels.name]
    }

    /// Whether the index file `name` (a space, or "pose") is the one the gallery last saved at the store's current
    /// generation and still matches the store's rows (see `IndexRecord`), so opening the gallery loads it rather than
    /// rebuilding it. Reads the file once; does not load it into FAISS.
    public func indexIsCurrent(_ name: String) throws -> Bool {
        try run {
            guard let record = try GallerySchema.indexRecord(database, space: name),
                  try GallerySchema.indexGeneration(database, space: name) == GallerySchema.generation(database),
                  record.matches(fileAt: directory.appendingPathComponent("\(name).faiss"))
            else { return false }
            return try GallerySchema.indexedIDs(database, for: DerivedIndex.source(named: name)) == record.storeIDs
        }
    }

    /// Every item with its id, in id order.
    public func items() throws -> [(id: Int64, item: GalleryItem)] {
        try run { try GallerySchema.items(database, where: "1 ORDER BY id", []).map { (id: $0.0, item: $0.1) } }
    }

    /// The item stored under `key`.
    public func item(key: String) throws -> GalleryItem {
        guard let (_, item) = try run({ try GallerySchema.items(database, where: "key = ?", [.text(key)]) }).first else {
            throw GalleryError.unknownKey(key)
        }
        return item
    }

    /// The stored embedding of the item `key` in `space`.
    public func embedding(key: String, space: String) throws -> [Float] {
        try run { try GallerySchema.embedding(database, key: key, space: space) }
    }
}

extension GalleryReader {
    /// Every stored embedding of `space`, with item ids, in id order.
    public func embeddings(space: String) throws -> (ids: [Int64], vectors: [Float]) {
        let (ids, vectors) = try run { try GallerySchema.vectors(database, space: space) }
        return (ids, vectors)
    }
}
