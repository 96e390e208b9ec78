import DMLIndex
import Foundation

/// One gallery item: a key the app chooses, and what is known about it.
public struct GalleryItem: Sendable, Equatable, Codable {
    /// Unique key (e.g. a photo's identifier).
    public var key: String
    /// Where the image lives (path or URL), if anywhere.
    public var image: String?
    /// A caption of the image, if any.
    public var caption: String?
    /// The person's keypoints, if known.
    public var pose: Pose?
    /// A class label, for class-based evaluation.
    public var classLabel: Int64?
    /// Free-form metadata as JSON text.
    public var metadata: String?
    /// The part of `image` the item's embeddings were made from (nil: the whole image).
    public var crop: CropBox?

    /// An item; only `key` is required.
    public init(key: String, image: String? = nil, caption: String? = nil, pose: Pose? = nil, classLabel: Int64? = nil,
                metadata: String? = nil, crop: CropBox? = nil)
    {
        self.crop = crop
        self.key = key
        self.image = image
        self.caption = caption
        self.pose = pose
        self.classLabel = classLabel
        self.metadata = metadata
    }
}

extension GalleryItem {
    /// Throws `GalleryError.invalidItem` for what `Gallery.add` refuses in an item on its own: an empty key or
    /// caption, a pose that can never be compared (fewer than `Pose.minimumSharedJoints` labelled joints, or no
    /// hips and shoulders to normalise by). Callers adding in several batches check every item first with it.
    public func validate() throws {
        guard !key.isEmpty else { throw GalleryError.invalidItem("empty key") }
        if let caption, caption.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw GalleryError.invalidItem("'\(key)' has an empty caption (leave it out instead)")
        }
        if let pose {
            // A pose that can never be compared would sit in the store unsearchable: refuse it.
            guard pose.labelledCount >= Pose.minimumSharedJoints else {
                throw GalleryError.invalidItem("the pose of '\(key)' has \(pose.labelledCount) labelled joints, "
                    + "at least \(Pose.minimumSharedJoints) are needed (leave the pose out if it is unknown)")
            }
            do { _ = try pose.normalized() } catch {
                throw GalleryError.invalidItem("the pose of '\(key)': \(error)")
            }
        }
    }
}

/// An embedding space of the gallery: vectors from one embedder, indexed by one FAISS index.
public struct EmbeddingSpace: Sendable, Equatable {
    /// Name, e.g. "image" or "caption".
    public var name: String
    public var dimension: Int
    /// The embedder's fingerprint; a gallery opened with a different one is refused.
    public var fingerprint: String
    public var metric: Metric
    /// FAISS factory string of the derived index.
    public var factory: String

    public init(name: String, dimension: Int, fingerprint: String, metric: Metric = .cosine, factory: String = "Flat") {
        self.name = name
        self.dimension = dimension
        self.fingerprint = fingerprint
        self.metric = metric
        self.factory = factory
    }
}

/// A search result.
///
/// One convention for every query: `score` is higher for closer items, `distance` lower. For an embedding search
/// in a cosine or inner-product space, `score` is the cosine similarity (inner product) and `distance` the embedding
/// distance of `DistanceCalibration.embeddingDistance` (1 - cosine, minus the inner product); in an L2 space
/// `distance` is the L2 distance. For pose, range-by-pose and combined queries `distance` is the pose distance
/// (combined: the weighted mean of the parts' distances) in torso lengths. Where no similarity exists, `score` is
/// `1 / (1 + distance)` (the evaluation's gain).
public struct GalleryHit: Sendable, Equatable, Codable {
    /// The gallery's id of the item (stable, also the FAISS id).
    public var id: Int64
    /// The item.
    public var item: GalleryItem
    /// Higher is closer (see the type's documentation).
    public var score: Float
    /// Lower is closer (see the type's documentation).
    public var distance: Double
    /// Pose distance to the query pose, where both have poses.
    public var poseDistance: Double?
    /// The pose distance a space's calibration expects for this hit's embedding distance (range and combined
    /// queries), in torso lengths.
    public var estimatedPoseDistance: Double?
    /// Combined queries: each part's distance in torso lengths, in the order the parts were given.
    public var partDistances: [Double]?

    /// A hit with both numbers given.
    public init(id: Int64, item: GalleryItem, score: Float, distance: Double, poseDistance: Double? = nil,
                estimatedPoseDistance: Double? = nil, partDistances: [Double]? = nil)
    {
        self.id = id
        self.item = item
        self.score = score
        self.distance = distance
        self.poseDistance = poseDistance
        self.estimatedPoseDistance = estimatedPoseDistance
        self.partDistances = partDistances
    }

    /// A hit at a distance that has no similarity of its own (pose, combined): `score` is `1 / (1 + distance)`.
    init(id: Int64, item: GalleryItem, distance: Double, poseDistance: Double? = nil, estimatedPoseDistance: Double? = nil,
         partDistances: [Double]? = nil)
    {
        self.init(id: id, item: item, score: Float(1 / (1 + distance)), distance: distance, poseDistance: poseDistance,
                  estimatedPoseDistance: estimatedPoseDistance, partDistances: partDistances)
    }

    /// A hit from a FAISS result in `metric` (a similarity, or a squared L2 distance).
    init(id: Int64, item: GalleryItem, faissValue: Float, metric: Metric, estimatedPoseDistance: Double? = nil) {
        let distance = DistanceCalibration.embeddingDistance(score: faissValue, metric: metric)
        let score = metric == .l2 ? Float(1 / (1 + distance)) : faissValue
        self.init(id: id, item: item, score: score, distance: distance, estimatedPoseDistance: estimatedPoseDistance)
    }
}

/// How a `Gallery` handle may touch its directory.
public enum GalleryAccess: Sendable, Equatable {
    /// Creates the gallery if needed, adds spaces, changes items, saves rebuilt index files.
    case readWrite
    /// Writes nothing: the store is opened read-only and stale indexes are rebuilt in memory only.
    case readOnly
}

/// Why a gallery call failed. Cases compare equal when their contents do, so callers (and tests) can tell
/// exactly which failure happened; `description` is the one-line message for people.
public enum GalleryError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case fingerprintMismatch(space: String, stored: String, given: String)
    case spaceMismatch(String)
    case unknownSpace(String)
    case duplicateKey(String)
    case unknownKey(String)
    case invalidItem(String)
    case emptyGallery
    case invalidQuery(String)
    /// Another connection held the write lock past the busy timeout; nothing was changed.
    case locked(String)
    /// No distance calibration for a space (see `Gallery.calibrate`).
    case notCalibrated(String)
    case storage(String)
    case index(VectorIndexError)
    /// No usable store: the directory has no `gallery.sqlite`, or it is empty (0 bytes) or not a gallery.
    case notAGallery(String)
    /// A change was asked of a handle opened with `access: .readOnly`.
    case readOnly(String)

    public var description: String {
        switch self {
        case .fingerprintMismatch(let space, let stored, let given):
            return "gallery space '\(space)' was built with model \(stored), not \(given): open it with the model it was built "
                + "with, or build a new gallery (into another directory) for this one"
        case .spaceMismatch(let why): return why
        case .unknownSpace(let s): return "the gallery has no embedding space '\(s)'"
        case .duplicateKey(let k): return "an item with key '\(k)' is already in the gallery"
        case .unknownKey(let k): return "no item with key '\(k)' in the gallery"
        case .invalidItem(let why): return "invalid item: \(why)"
        case .emptyGallery: return "the gallery is empty"
        case .invalidQuery(let why): return "invalid query: \(why)"
        case .locked(let why): return "the gallery is locked by another writer (\(why)); nothing was changed, try again"
        case .notCalibrated(let why): return why
        case .storage(let why): return "gallery storage: \(why)"
        case .index(let e): return "gallery index: \(e)"
        case .notAGallery(let why): return why
        case .readOnly(let why): return "\(why): nothing can be changed through it"
        }
    }

    public var errorDescription: String? { description }
}

extension GalleryError {
    /// A SQLite failure as a gallery error: a busy database is `locked`, anything else `storage`.
    init(_ error: SQLiteError) {
        if error.isBusy {
            self = .locked(error.description)
        } else if error.isWriteFailure {
            self = .storage("\(error.description) (is the disk full or the gallery not writable?)")
        } else {
            self = .storage(error.description)
        }
    }
}
