import DMLIndex
import Foundation

/// Range queries in label units: every item within a pose distance of the query.
extension Gallery {
    /// Every item whose pose distance (see `Pose.distance`) to `pose` is at most `within` torso lengths, nearest first.
    /// Exact: every posed item is compared (see `PoseTable` for why the label index cannot bound a radius).
    public func search(pose: Pose, within: Double, mirror: Bool = false) throws -> [GalleryHit] {
        guard within.isFinite, within >= 0 else { throw GalleryError.invalidQuery("the pose distance must be a finite number >= 0") }
        let query = try Self.normalizedQuery(pose)
        let inside = try poseTable().distances(to: query, mirror: mirror).filter { $0.distance <= within }
        let items = try fetch(inside.map(\.id))
        return inside.sorted { ($0.distance, $0.id) < ($1.distance, $1.id) }.compactMap { hit in
            items[hit.id].map { GalleryHit(id: hit.id, item: $0, distance: hit.distance, poseDistance: hit.distance) }
        }
    }

    /// Every item whose embedding in `space` the space's range map (`DistanceCalibration.rangePoseDistance`) sends to
    /// a pose distance of at most `withinPoseDistance` torso lengths, nearest first: about as many items as are truly
    /// that close, the nearest by embedding. Hits carry the range map's value in `estimatedPoseDistance` and the
    /// metric's score in `score`. An estimate, not a guarantee: see `DistanceCalibration` for its limits, and its
    /// `heldOutRange` for measured precision and recall.
    public func search(embedding: [Float], space: String, withinPoseDistance within: Double) throws -> [GalleryHit] {
        guard within.isFinite, within >= 0 else { throw GalleryError.invalidQuery("the pose distance must be a finite number >= 0") }
        guard let declared = spaces.first(where: { $0.name == space }), let index = indexes[space] else {
            throw GalleryError.unknownSpace(space)
        }
        guard let calibration = try calibration(space: space) else {
            throw GalleryError.notCalibrated("space '\(space)' has no distance calibration: fit one with `calibrate(space:)` (`dml gallery calibrate`)")
        }
        guard let radius = calibration.embeddingRadius(forPoseDistance: within), index.count > 0 else { return [] }
        // FAISS keeps scores strictly beyond its radius; a slightly wider one, then the map decides each hit.
        let slack = 1e-4
        let limit: Double = radius.isInfinite
            ? (declared.metric == .l2 ? Double(Float.greatestFiniteMagnitude) : -Double(Float.greatestFiniteMagnitude))
            : DistanceCalibration.score(atEmbeddingDistance: radius + slack, metric: declared.metric)
        let neighbors: [Neighbor]
        do {
            neighbors = try index.rangeSearch(vector: embedding, radius: Float(limit))
        } catch let error as VectorIndexError {
            throw GalleryError.index(error)
        }
        let inside = neighbors.compactMap { n -> (Neighbor, Double)? in
            let estimate = calibration.rangePoseDistance(atEmbeddingDistance: DistanceCalibration.embeddingDistance(score: n.distance, metric: declared.metric))
            return estimate <= within ? (n, estimate) : nil
        }
        let items = try fetch(inside.map(\.0.id))
        return inside.compactMap { n, estimate in
            items[n.id].map { GalleryHit(id: n.id, item: $0, faissValue: n.distance, metric: declared.metric, estimatedPoseDistance: estimate) }
        }
    }
}
