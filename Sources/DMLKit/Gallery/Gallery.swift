import DMLIndex
import Foundation

/// A gallery of items, searchable by embedding and by pose.
///
/// A gallery is a directory. `gallery.sqlite` is the source of truth: items (key, image reference, caption, pose,
/// class label, metadata JSON), their embeddings per space, each space's embedder fingerprint, and a generation
/// counter bumped by every committed change. The FAISS indexes beside it (`SPACE.faiss`, `pose.faiss`) are derived:
/// an index whose recorded generation differs from the store's, that is missing or fails to load, or that is not
/// the file this gallery saved for the store's current rows (see `IndexRecord`), is rebuilt from the store when the
/// gallery opens. Adds and removes commit to SQLite first, in one transaction, so a process
/// killed mid-add leaves either the whole batch or none of it, and the indexes catch up on the next open.
///
/// Searches may run concurrently; adds and removes are serialised.
///
/// A handle opened with `access: .readOnly` never writes: the store is opened read-only, and indexes that need a
/// rebuild are rebuilt in memory only, so read-only directories, read-only mounts and full disks can be searched.
///
/// Bulk loads pass `saveIndexes: false` to `add` and call `saveIndexes()` once at the end: each batch is still its
/// own transaction, and until the save the index files are stale, so a process that dies first loses nothing (the
/// next open rebuilds them from the store).
public final class Gallery: @unchecked Sendable {
    /// The gallery directory.
    public let directory: URL
    /// The embedding spaces this handle searches.
    public let spaces: [EmbeddingSpace]

    /// Whether this handle may change the directory.
    public let access: GalleryAccess

    static let storeName = "gallery.sqlite"
    let database: SQLiteDatabase
    let databaseLock = NSLock()
    let writeLock = NSLock()
    /// Reads of the store, over this handle's connection and lock.
    public let reader: GalleryReader
    /// The indexes derived from the store: one per space, and the pose-label index.
    let derived: [DerivedIndex]
    /// The loaded indexes by `DerivedIndex.name`.
    var indexes: [String: VectorIndex] = [:]
    /// The store generation the in-memory indexes reflect (read inside the transaction of this handle's last change).
    var indexedGeneration: Int64 = 0
    /// The in-memory indexes hold changes the index files do not.
    var unsavedIndexes = false
    private var checkedBeforeRebuild = false
    /// Normalised poses of all items, loaded on the first exact pose scan and dropped by every change.
    let poseTableCache = PoseTableCache()

    // MARK: Opening

    /// Opens the gallery at `directory`. Spaces already stored must match `spaces` (dimension, metric and embedder
    /// fingerprint). With `.readWrite` (the default) the gallery is created if needed and new spaces are added; a
    /// change waits up to `busyTimeout` seconds for another process's write lock, then fails with
    /// `GalleryError.locked`. With `.readOnly` the gallery must exist, every space must be stored, and nothing in
    /// the directory is written (changes fail with `GalleryError.readOnly`).
    ///
    /// A `gallery.sqlite` of zero bytes is refused in both modes (`GalleryError.notAGallery`): SQLite would take it
    /// for an empty database and write a fresh schema into it, hiding that the store was lost.
    public init(directory: URL, spaces: [EmbeddingSpace], busyTimeout: TimeInterval = 5, access: GalleryAccess = .readWrite) throws {
        self.directory = directory
        self.spaces = spaces
        self.access = access
        guard Set(spaces.map(\.name)).count == spaces.count else { throw GalleryError.spaceMismatch("space names must be unique") }
        guard !spaces.contains(where: { $0.name == DerivedIndex.poseLabels.name }) else {
            throw GalleryError.spaceMismatch("'\(DerivedIndex.poseLabels.name)' names the pose-label index; give the space another name")
        }
        derived = spaces.map(DerivedIndex.init(space:)) + [DerivedIndex.poseLabels]
        do {
            let store = directory.appendingPathComponent(Self.storeName)
            if access == .readWrite {
                try Self.refuseEmptyStore(store)
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                database = try SQLiteDatabase(path: store.path, busyTimeout: busyTimeout)
                try GallerySchema.create(in: database)
                try GallerySchema.register(spaces, in: database)
            } else {
                try Self.requireStore(store, directory: directory)
                database = try SQLiteDatabase(path: store.path, readOnly: true, busyTimeout: busyTimeout)
                try GallerySchema.checkReadable(database, path: store.path)
                try GallerySchema.checkRegistered(spaces, in: database)
            }
        } catch let error as GalleryError {
            throw error
        } catch let error as SQLiteError {
            throw GalleryError(error)
        } catch {
            throw GalleryError.storage("\(error)")
        }
        reader = GalleryReader(directory: directory, database: database, lock: databaseLock)
        // One generation for every index: a rebuild that reads a later store records an older one (stale, safe).
        indexedGeneration = try locked { try GallerySchema.generation(database) }
        for index in derived { indexes[index.name] = try loadOrRebuild(index) }
    }

    /// A zero-length store is a lost one, never an empty gallery.
    static func refuseEmptyStore(_ store: URL) throws {
        let size = (try? FileManager.default.attributesOfItem(atPath: store.path))?[.size] as? Int
        if size == 0 {
            throw GalleryError.notAGallery("\(store.path) is empty (0 bytes): the store was lost or never written; "
                + "remove the file to start a new gallery")
        }
    }

    /// An existing, non-empty store (read paths create nothing).
    static func requireStore(_ store: URL, directory: URL) throws {
        guard FileManager.default.fileExists(atPath: store.path) else {
            throw GalleryError.notAGallery("no gallery at \(directory.path) (no \(storeName))")
        }
        try refuseEmptyStore(store)
    }

    /// Items in the gallery.
    public var count: Int { (try? reader.count()) ?? 0 }

    /// Reads every page of the store (SQLite's `quick_check`) and throws `GalleryError.storage` naming the first
    /// problem. Opening checks only the file header and schema; this runs when indexes are rebuilt, or on request
    /// (`dml gallery info --verify`).
    public func verify() throws {
        try reader.verify()
    }

    /// The store's generation: bumped by every committed add or remove.
    public var generation: Int64 { (try? reader.generation()) ?? 0 }

    /// The item stored under `key`.
    public func item(key: String) throws -> GalleryItem {
        try reader.item(key: key)
    }

    // MARK: Changing

    /// Adds items with their embeddings (`embeddings[space]`: row-major, one row per item, for every space).
    /// Returns the ids the items were given. All or nothing: a bad item or vector fails the whole batch.
    ///
    /// With `saveIndexes: false` the index files are not written (nor fsynced): searches through this handle see the
    /// items at once, the files stay stale until `saveIndexes()`, and a gallery opened before that rebuilds them. Bulk
    /// loads save once at the end instead of rewriting every file after every batch.
    @discardableResult
    public func add(_ items: [GalleryItem], embeddings: [String: [Float]], saveIndexes save: Bool = true) throws -> [Int64] {
        try requireWritable()
        return try writeLock.withLock {
            try validate(items, embeddings)
            let (ids, generation): ([Int64], Int64) = try locked {
                try database.transaction {
                    let before = try GallerySchema.generation(database)
                    let ids = try GallerySchema.insert(items, embeddings: embeddings, spaces: spaces, into: database)
                    return (ids, try nextIndexedGeneration(before: before))
                }
            }
            poseTableCache.invalidate()
            indexedGeneration = generation
            unsavedIndexes = true
            var updated = false
            do {
                for index in derived {
                    let (rowIDs, vectors) = index.rows(of: items, ids: ids, embeddings: embeddings)
                    guard !rowIDs.isEmpty, let current = indexes[index.name] else { continue }
                    // An untrained codec (SQ, IVF, PQ built on an empty store) learns from every stored vector.
                    if current.isTrained {
                        try current.add(vectors, ids: rowIDs)
                    } else {
                        indexes[index.name] = try rebuiltFromStore(index)
                    }
                }
                updated = true
                if save { try writeIndexes() }
            } catch {
                // In-memory indexes that missed part of the change must never be saved as current.
                if !updated { indexedGeneration = -1 }
                // The store has the items; the indexes are rebuilt from it on the next open.
                throw GalleryError.storage("the \(ids.count) items were stored, but updating the index files failed "
                    + "(\(error)); they are rebuilt from the store when the gallery is next opened")
            }
            return ids
        }
    }

    /// Removes the items with these keys; returns how many were found. With `requireAll`, a key not in the gallery
    /// fails the whole call (`GalleryError.unknownKey`) and nothing is removed; otherwise unknown keys are skipped.
    @discardableResult
    public func remove(keys: [String], requireAll: Bool = false) throws -> Int {
        try requireWritable()
        return try writeLock.withLock {
            let (ids, generation) = try locked {
                try database.transaction {
                    let before = try GallerySchema.generation(database)
                    let ids = try GallerySchema.delete(keys: keys, from: database, requireAll: requireAll)
                    return (ids, try nextIndexedGeneration(before: before))
                }
            }
            guard !ids.isEmpty else { return 0 }
            poseTableCache.invalidate()
            indexedGeneration = generation
            unsavedIndexes = true
            var updated = false
            do {
                for index in derived {
                    guard let current = indexes[index.name] else { continue }
                    do {
                        try current.remove(ids: ids)
                    } catch VectorIndexError.unsupported {
                        // HNSW cannot remove: the store already has the change, so the index is built anew from it.
                        indexes[index.name] = try rebuiltFromStore(index)
                    }
                }
                updated = true
                try writeIndexes()
            } catch {
                if !updated { indexedGeneration = -1 }
                throw GalleryError.storage("the \(ids.count) items were removed from the store, but updating the index files "
                    + "failed (\(error)); they are rebuilt from the store when the gallery is next opened")
            }
            return ids.count
        }
    }

    // MARK: Searching

    /// The `k` items whose embeddings in `space` are closest to `embedding`.
    public func search(embedding: [Float], space: String, k: Int, allowedKeys: [String]? = nil) throws -> [GalleryHit] {
        guard k >= 1 else { throw GalleryError.invalidQuery("k must be at least 1") }
        guard let index = indexes[space] else { throw GalleryError.unknownSpace(space) }
        guard index.count > 0 else { throw GalleryError.emptyGallery }
        var parameters = SearchParameters()
        if let allowedKeys { parameters.allowedIDs = try ids(forKeys: allowedKeys) }
        let neighbors: [Neighbor]
        do {
            neighbors = try index.search(vector: embedding, k: min(k, index.count), parameters: parameters)
        } catch let error as VectorIndexError {
            throw GalleryError.index(error)
        }
        let items = try fetch(neighbors.map(\.id))
        return neighbors.compactMap { n in items[n.id].map { GalleryHit(id: n.id, item: $0, faissValue: n.distance, metric: index.metric) } }
    }

    /// The `k` items whose poses are closest to `pose` by the pose distance (see `Pose.distance`), nearest first.
    /// Candidates come from the pose-label index and are re-ranked exactly, visibility-aware.
    public func search(pose: Pose, k: Int, mirror: Bool = false) throws -> [GalleryHit] {
        guard k >= 1 else { throw GalleryError.invalidQuery("k must be at least 1") }
        let query = try Self.normalizedQuery(pose)
        guard let poseIndex = indexes[DerivedIndex.poseLabels.name], poseIndex.count > 0 else { throw GalleryError.emptyGallery }
        // k is clamped to the gallery first, so the candidate count cannot overflow for any k.
        let k = min(k, poseIndex.count)
        let candidateCount = min(poseIndex.count, max(10 * k, 200))
        var candidates: [Neighbor]
        do {
            candidates = try poseIndex.search(vector: query.labelVector, k: candidateCount)
            if mirror {
                candidates += try poseIndex.search(vector: query.mirrored.labelVector, k: candidateCount)
            }
        } catch let error as VectorIndexError {
            throw GalleryError.index(error)
        }
        // Only ids and poses for the re-rank; whole rows only for the k kept.
        var scored: [(id: Int64, distance: Double)] = []
        for (id, pose) in try fetchPoses(Array(Set(candidates.map(\.id)))) {
            guard let other = try? pose.normalized(), let d = try? query.distance(to: other, mirror: mirror) else { continue }
            scored.append((id, d))
        }
        scored.sort { $0.distance < $1.distance || ($0.distance == $1.distance && $0.id < $1.id) }
        let kept = scored.prefix(k)
        let items = try fetch(kept.map(\.id))
        return kept.compactMap { hit in
            items[hit.id].map { GalleryHit(id: hit.id, item: $0, distance: hit.distance, poseDistance: hit.distance) }
        }
    }

    /// All stored embeddings of a space with their ids, in id order (for evaluation and export).
    public func embeddings(space: String) throws -> (ids: [Int64], vectors: [Float]) {
        guard spaces.contains(where: { $0.name == space }) else { throw GalleryError.unknownSpace(space) }
        return try reader.embeddings(space: space)
    }

    // MARK: Internals

    /// A query pose in its normalised frame; refused when it cannot be compared with any pose.
    static func normalizedQuery(_ pose: Pose) throws -> NormalizedPose {
        guard pose.labelledCount >= Pose.minimumSharedJoints else {
            throw GalleryError.invalidQuery(
                "the pose has \(pose.labelledCount) labelled joints; a pose distance needs at least \(Pose.minimumSharedJoints)")
        }
        do {
            return try pose.normalized()
        } catch {
            throw GalleryError.invalidQuery("\(error)")
        }
    }

    func locked<T>(_ body: () throws -> T) throws -> T {
        do {
            return try databaseLock.withLock(body)
        } catch let error as SQLiteError {
            throw GalleryError(error)
        }
    }

    func ids(forKeys keys: [String]) throws -> [Int64] {
        try locked { try GallerySchema.ids(database, keys: keys) }
    }

    /// Items by id, read in chunks (SQLite caps the number of bound values per statement).
    func fetch(_ ids: [Int64]) throws -> [Int64: GalleryItem] {
        var result: [Int64: GalleryItem] = [:]
        for start in stride(from: 0, to: ids.count, by: 500) {
            let chunk = ids[start..<min(start + 500, ids.count)]
            let placeholders = Array(repeating: "?", count: chunk.count).joined(separator: ",")
            let rows = try locked { try GallerySchema.items(database, where: "id IN (\(placeholders))", chunk.map { .integer($0) }) }
            result.merge(rows, uniquingKeysWith: { a, _ in a })
        }
        return result
    }

    /// Poses by id, read in chunks like `fetch`.
    func fetchPoses(_ ids: [Int64]) throws -> [(Int64, Pose)] {
        var result: [(Int64, Pose)] = []
        for start in stride(from: 0, to: ids.count, by: 500) {
            let chunk = ids[start..<min(start + 500, ids.count)]
            let placeholders = Array(repeating: "?", count: chunk.count).joined(separator: ",")
            result += try locked { try GallerySchema.poses(database, where: "id IN (\(placeholders))", chunk.map { .integer($0) }) }
        }
        return result
    }

    private func validate(_ items: [GalleryItem], _ embeddings: [String: [Float]]) throws {
        var keys = Set<String>()
        for item in items {
            guard !item.key.isEmpty else { throw GalleryError.invalidItem("empty key") }
            guard keys.insert(item.key).inserted else { throw GalleryError.duplicateKey(item.key) }
            try item.validate()
        }
        // Every stored space must get its vectors, or items would be missing from an index.
        let stored = try locked { try GallerySchema.spaces(database).map(\.name) }
        for name in stored where !spaces.contains(where: { $0.name == name }) {
            throw GalleryError.invalidItem("the gallery also has space '\(name)': open it with every stored space to add items")
        }
        if let existing = try ids(forKeys: Array(keys)).first {
            let key = try locked { try GallerySchema.key(database, id: existing) }
            throw GalleryError.duplicateKey(key ?? "?")
        }
        for name in embeddings.keys where !spaces.contains(where: { $0.name == name }) { throw GalleryError.unknownSpace(name) }
        for space in spaces {
            guard let vectors = embeddings[space.name] else {
                throw GalleryError.invalidItem("no '\(space.name)' embeddings given")
            }
            guard vectors.count == items.count * space.dimension else {
                throw GalleryError.invalidItem("'\(space.name)' embeddings hold \(vectors.count) floats, expected \(items.count) x \(space.dimension)")
            }
            for row in 0..<items.count {
                let v = vectors[row * space.dimension..<(row + 1) * space.dimension]
                guard v.allSatisfy(\.isFinite) else { throw GalleryError.invalidItem("'\(space.name)' embedding of '\(items[row].key)' has NaN or infinity") }
                if space.metric == .cosine, !v.contains(where: { $0 != 0 }) {
                    throw GalleryError.invalidItem("'\(space.name)' embedding of '\(items[row].key)' is all zeros")
                }
            }
        }
    }

    func indexURL(_ space: String) -> URL { directory.appendingPathComponent("\(space).faiss") }

    /// Writes the index files holding changes made with `add(_:embeddings:saveIndexes: false)` (each atomically,
    /// fsynced) and records the generation they reflect. Does nothing when the files are current. On failure the
    /// items stay stored and the files stale: they are rebuilt from the store when the gallery is next opened.
    public func saveIndexes() throws {
        try requireWritable()
        return try writeLock.withLock {
            guard unsavedIndexes else { return }
            do {
                try writeIndexes()
            } catch {
                throw GalleryError.storage("the items are stored, but saving the index files failed (\(error)); "
                    + "they are rebuilt from the store when the gallery is next opened")
            }
        }
    }

    /// The generation the indexes reflect after this change commits: the store's, unless another process committed
    /// since they were loaded (their items are not in them), then -1, which never matches and marks them stale.
    private func nextIndexedGeneration(before: Int64) throws -> Int64 {
        before == indexedGeneration ? try GallerySchema.generation(database) : -1
    }

    /// Writes every index and records the generation it reflects. Callers hold the write lock.
    func writeIndexes() throws {
        let generation = indexedGeneration
        for index in derived {
            guard let loaded = indexes[index.name] else { continue }
            try save(loaded, as: index, generation: generation)
        }
        unsavedIndexes = false
    }

    /// Saves one index file, reads it back, and records it (`IndexRecord`) with the generation it reflects.
    private func save(_ index: VectorIndex, as derived: DerivedIndex, generation: Int64) throws {
        let url = indexURL(derived.name)
        try index.save(to: url)
        try locked {
            let record = try IndexRecord(fileAt: url, count: index.count, storeIDs: try GallerySchema.indexedIDs(database, for: derived.source))
            try GallerySchema.setIndexRecord(database, space: derived.name, generation: generation, record)
        }
    }

    /// Throws `GalleryError.readOnly` on a handle opened read-only.
    func requireWritable() throws {
        guard access == .readWrite else { throw GalleryError.readOnly("the gallery at \(directory.path) was opened read-only") }
    }

    /// The index file of `index` if it is the one this gallery last saved at the store's generation and still
    /// matches the store (see `IndexRecord`); nil when it must be rebuilt. Any failure to read or load it means
    /// "rebuild", never an error: the store is the source of truth.
    private func loadCurrent(_ index: DerivedIndex) -> VectorIndex? {
        let url = indexURL(index.name)
        guard let (recorded, record) = try? locked({
                  (try GallerySchema.indexGeneration(database, space: index.name), try GallerySchema.indexRecord(database, space: index.name))
              }),
              recorded == indexedGeneration, let record,
              record.matches(fileAt: url),
              let loaded = try? VectorIndex.load(contentsOf: url),
              loaded.dimension == index.dimension, loaded.metric == index.metric, loaded.count == record.count,
              let stored = try? locked({ try GallerySchema.indexedIDs(database, for: index.source) }), stored == record.storeIDs
        else { return nil }
        return loaded
    }

    /// The index: loaded if its file is current (`loadCurrent`), rebuilt from the store otherwise. A writable
    /// handle then saves the rebuilt index; if that fails (a full disk) the file stays stale and this handle works
    /// from memory. A read-only handle never saves.
    /// A new in-memory index holding every row of the store for `derived` (trained on them when the factory needs it).
    private func rebuiltFromStore(_ derived: DerivedIndex) throws -> VectorIndex {
        do {
            let index = try VectorIndex(dimension: derived.dimension, factory: derived.factory, metric: derived.metric)
            let (ids, vectors) = try locked { try GallerySchema.indexRows(database, for: derived.source) }
            if !index.isTrained && !ids.isEmpty { try index.train(vectors) }
            if !ids.isEmpty { try index.add(vectors, ids: ids) }
            return index
        } catch let error as VectorIndexError {
            throw GalleryError.index(error)
        }
    }

    private func loadOrRebuild(_ derived: DerivedIndex) throws -> VectorIndex {
        if let index = loadCurrent(derived) { return index }
        // A rebuild reads the whole store anyway: check it first, so a corrupt page is reported as such rather than
        // baked into an index (once per open).
        if !checkedBeforeRebuild {
            try verify()
            checkedBeforeRebuild = true
        }
        let index = try rebuiltFromStore(derived)
        if access == .readWrite {
            // Best effort: the in-memory index is right either way, and a failed save leaves the file stale.
            try? save(index, as: derived, generation: indexedGeneration)
        }
        return index
    }
}

/// A FAISS index derived from the store, rebuilt from it whenever its file is not current: one per embedding space
/// (the items' vectors in that space), and the pose-label index (each posed item's normalised keypoints, x and y
/// per joint, L2: candidates for the exact pose re-rank). Each is saved as `NAME.faiss` with an index record.
struct DerivedIndex: Sendable, Equatable {
    /// Where an index's rows come from.
    enum Source: Sendable, Equatable {
        case embeddings(space: String)
        case poseLabels
    }

    let name: String
    let dimension: Int
    let metric: Metric
    let factory: String
    let source: Source

    /// The pose-label index.
    static let poseLabels = DerivedIndex(name: "pose", dimension: NormalizedPose.labelVectorLength, metric: .l2, factory: "Flat", source: .poseLabels)

    init(name: String, dimension: Int, metric: Metric, factory: String, source: Source) {
        self.name = name
        self.dimension = dimension
        self.metric = metric
        self.factory = factory
        self.source = source
    }

    /// The index of an embedding space.
    init(space: EmbeddingSpace) {
        self.init(name: space.name, dimension: space.dimension, metric: space.metric, factory: space.factory, source: .embeddings(space: space.name))
    }

    /// The source of the index file named `name` (a space, or the pose-label index).
    static func source(named name: String) -> Source { name == poseLabels.name ? .poseLabels : .embeddings(space: name) }

    /// The rows new items add to this index: ids and vectors, row-major.
    func rows(of items: [GalleryItem], ids: [Int64], embeddings: [String: [Float]]) -> ([Int64], [Float]) {
        switch source {
        case .embeddings(let space):
            return (ids, embeddings[space] ?? [])
        case .poseLabels:
            let posed = zip(ids, items).compactMap { id, item in (try? item.pose?.normalized()).flatMap { $0 }.map { (id, $0.labelVector) } }
            return (posed.map(\.0), posed.flatMap(\.1))
        }
    }
}
