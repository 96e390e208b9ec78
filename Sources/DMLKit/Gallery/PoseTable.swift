import Foundation

/// Every item's normalised pose, for exact scans by pose distance (range queries, combined queries).
///
/// The FAISS pose-label index stores zeros for unlabelled joints, so its L2 distance bounds the pose distance in
/// neither direction: it can propose candidates but cannot prove that an item is outside a radius. An exact scan
/// can, and costs one pose distance per item (17 joints), which is cheap next to reading the items.
struct PoseTable {
    var ids: [Int64] = []
    var poses: [NormalizedPose] = []

    /// Pose distance from `query` to every item whose distance is defined, in id order.
    func distances(to query: NormalizedPose, mirror: Bool) -> [(id: Int64, distance: Double)] {
        zip(ids, poses).compactMap { id, pose in (try? query.distance(to: pose, mirror: mirror)).map { (id, $0) } }
    }
}

/// The gallery's pose table, loaded from the store when first needed and dropped by every change.
final class PoseTableCache: @unchecked Sendable {
    private let lock = NSLock()
    private var table: PoseTable?

    func invalidate() { lock.withLock { table = nil } }

    func get(load: () throws -> PoseTable) rethrows -> PoseTable {
        try lock.withLock {
            if let table { return table }
            let loaded = try load()
            table = loaded
            return loaded
        }
    }
}

extension Gallery {
    /// The current pose table.
    func poseTable() throws -> PoseTable {
        try poseTableCache.get {
            var table = PoseTable()
            for (id, stored) in try locked({ try GallerySchema.poses(database) }) {
                guard let pose = try? stored.normalized() else { continue }
                table.ids.append(id)
                table.poses.append(pose)
            }
            return table
        }
    }
}
