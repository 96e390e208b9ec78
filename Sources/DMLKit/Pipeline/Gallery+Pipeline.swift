import Foundation

extension Gallery {
    /// The `k` items nearest the stored embedding of the item `key` in `space` (the item itself comes first).
    public func search(key: String, k: Int, space: String = GalleryPipeline.imageSpace) throws -> [GalleryHit] {
        guard spaces.contains(where: { $0.name == space }) else { throw GalleryError.unknownSpace(space) }
        let vector = try embedding(key: key, space: space)
        return try search(embedding: vector, space: space, k: k)
    }

    /// The stored embedding of the item `key` in `space`.
    public func embedding(key: String, space: String) throws -> [Float] {
        try locked { try GallerySchema.embedding(database, key: key, space: space) }
    }

    /// Removes the items with these keys (see `remove(keys:requireAll:)`), then refits the calibrations the change
    /// made stale; returns how many were removed and the current calibrations by space.
    public func remove(keys: [String], requireAll: Bool = false, refreshingCalibrations settings: DistanceCalibration.Settings)
        throws -> (removed: Int, calibrations: [String: DistanceCalibration])
    {
        let removed = try remove(keys: keys, requireAll: requireAll)
        return (removed, try refreshCalibrations(settings: settings))
    }
}

extension Gallery {
    /// `refreshCalibrations(settings:)` off the calling task (a fit reads every stored vector).
    @discardableResult
    public func refreshCalibrations(settings: DistanceCalibration.Settings = .init()) async throws -> [String: DistanceCalibration] {
        try await Task.detached { try self.refreshCalibrations(settings: settings) }.value
    }

    /// `search(embedding:space:k:allowedKeys:)` off the calling task.
    public func search(embedding: [Float], space: String, k: Int) async throws -> [GalleryHit] {
        try await Task.detached { try self.search(embedding: embedding, space: space, k: k) }.value
    }

    /// `search(pose:k:mirror:)` off the calling task.
    public func search(pose: Pose, k: Int, mirror: Bool = false) async throws -> [GalleryHit] {
        try await Task.detached { try self.search(pose: pose, k: k, mirror: mirror) }.value
    }
}

extension Collection where Element == GalleryHit {
    /// The hits with `poseDistance` filled in where a query had no pose part of its own (by example, key or
    /// caption): the pose distance from `pose` to each item's pose, where the two can be compared.
    public func withPoseDistances(to pose: Pose?, mirror: Bool = false) -> [GalleryHit] {
        map { hit in
            var hit = hit
            if hit.poseDistance == nil, let pose, let other = hit.item.pose {
                hit.poseDistance = try? Pose.distance(pose, other, mirror: mirror)
            }
            return hit
        }
    }
}
