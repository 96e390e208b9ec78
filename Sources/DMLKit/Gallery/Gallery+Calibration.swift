import DMLIndex
import Foundation

/// Distance calibrations: fitted on the store, kept in `meta` as `calibration:SPACE` (JSON, with the generation they
/// were fitted at), read back by `Gallery` and `GalleryReader`.
extension Gallery {
    /// Fits the calibration of `space` on the items stored now (see `DistanceCalibration`) and stores it.
    @discardableResult
    public func calibrate(space: String, settings: DistanceCalibration.Settings = .init()) throws -> DistanceCalibration {
        try requireWritable()
        guard let declared = spaces.first(where: { $0.name == space }) else { throw GalleryError.unknownSpace(space) }
        return try writeLock.withLock {
            let (generation, stored, items) = try locked {
                (try GallerySchema.generation(database), try GallerySchema.vectors(database, space: space),
                 try GallerySchema.poses(database))
            }
            let (ids, vectors) = stored
            var poses: [Int64: NormalizedPose] = [:]
            for (id, pose) in items { poses[id] = try? pose.normalized() }
            let calibration: DistanceCalibration
            do {
                calibration = try DistanceCalibration.fit(space: space, metric: declared.metric, generation: generation, ids: ids,
                                                          vectors: vectors, dimension: declared.dimension, poses: poses, settings: settings)
            } catch let error as CalibrationError {
                throw GalleryError.notCalibrated(error.description)
            }
            let json = String(decoding: try JSONEncoder().encode(calibration), as: UTF8.self)
            try locked {
                try database.transaction {
                    // Stored only if nothing changed meanwhile (another process may write between our reads).
                    guard try GallerySchema.generation(database) == generation else { return }
                    try GallerySchema.setCalibration(database, space: space, json: json)
                }
            }
            return calibration
        }
    }

    /// The stored calibration of `space`, possibly fitted at an older generation; nil if none was fitted.
    public func calibration(space: String) throws -> DistanceCalibration? {
        try locked { try GallerySchema.calibrations(database)[space] }
    }

    /// Refits every space whose calibration is missing or older than the store; spaces that cannot be calibrated
    /// (fewer than 20 items with poses) are left without one. Returns the current calibrations by space.
    @discardableResult
    public func refreshCalibrations(settings: DistanceCalibration.Settings = .init()) throws -> [String: DistanceCalibration] {
        var result: [String: DistanceCalibration] = [:]
        let generation = self.generation
        for space in spaces {
            if let stored = try calibration(space: space.name), stored.generation == generation, stored.settings == settings {
                result[space.name] = stored
                continue
            }
            do {
                result[space.name] = try calibrate(space: space.name, settings: settings)
            } catch GalleryError.notCalibrated {
                continue
            }
        }
        return result
    }
}
extension GalleryReader {
    /// Stored calibrations by space, each with the generation it was fitted at.
    public func calibrations() throws -> [String: DistanceCalibration] {
        try run { try GallerySchema.calibrations(database) }
    }
}
