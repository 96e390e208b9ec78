@testable import DMLKit
import DMLIndex
import Foundation
import Testing

// Range, calibrated and combined gallery queries, each checked against a brute-force computation over all items.

private let standing: [Double] = [
    0, -3, 0.3, -3.2, -0.3, -3.2, 0.6, -3, -0.6, -3, 1, -2, -1, -2, 1.5, -1, -1.5, -1, 2, 0, -2, 0, 1, 0, -1, 0, 1, 2, -1, 2,
    1, 4, -1, 4,
]
private let dim = 8
private let imageSpace = EmbeddingSpace(name: "image", dimension: dim, fingerprint: "model-A")
private let textSpace = EmbeddingSpace(name: "caption", dimension: dim, fingerprint: "text-A")

/// Items whose embeddings are noisy projections of their pose labels (so a calibration has something to find);
/// every tenth item has no pose.
private func makeItems(_ n: Int, seed: UInt64, prefix: String = "p") -> (items: [GalleryItem], image: [Float], caption: [Float]) {
    var rng = Rng(state: seed)
    var projection = Rng(state: 12345)
    let w = (0..<(2 * dim * 34)).map { _ in projection.next() - 0.5 }
    var items: [GalleryItem] = [], image: [Float] = [], caption: [Float] = []
    for i in 0..<n {
        let spread = 0.3 + 1.5 * rng.next()
        var values: [Double] = []
        for j in 0..<17 {
            values += [standing[2 * j] + (rng.next() - 0.5) * spread, standing[2 * j + 1] + (rng.next() - 0.5) * spread, 2]
        }
        let pose = i % 10 == 9 ? nil : try? Pose(coco: values)
        let label = (try? Pose(coco: values).normalized().labelVector) ?? [Float](repeating: 0, count: 34)
        for (s, noise) in [(0, 0.3), (1, 1.0)] {
            let v = (0..<dim).map { r in Float((0..<34).map { w[(s * dim + r) * 34 + $0] * Double(label[$0]) }.reduce(0, +) + noise * (rng.next() - 0.5) + 1) }
            if s == 0 { image += v } else { caption += v }
        }
        items.append(GalleryItem(key: "\(prefix)-\(i)", pose: pose))
    }
    return (items, image, caption)
}

private func withGallery(_ n: Int, seed: UInt64, _ body: (Gallery, [GalleryItem], [Float], [Float]) throws -> Void) throws {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("dmlkit-query-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: url) }
    let gallery = try Gallery(directory: url, spaces: [imageSpace, textSpace])
    let (items, image, caption) = makeItems(n, seed: seed)
    try gallery.add(items, embeddings: ["image": image, "caption": caption])
    try body(gallery, items, image, caption)
}

private func cosineDistance(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
    let dot = zip(a, b).map { Double($0) * Double($1) }.reduce(0, +)
    let na = a.map { Double($0) * Double($0) }.reduce(0, +).squareRoot(), nb = b.map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
    return 1 - dot / (na * nb)
}

private func row(_ v: [Float], _ i: Int) -> ArraySlice<Float> { v[i * dim..<(i + 1) * dim] }

@Suite struct GalleryRangeQueries {
    @Test func poseRangeEqualsAnExhaustiveFilterByPoseDistance() throws {
        try withGallery(200, seed: 1) { gallery, items, _, _ in
            let query = try #require(makeItems(1, seed: 77).items[0].pose)
            for mirror in [false, true] {
                for within in [0.4, 0.7, 1.2] {
                    let hits = try gallery.search(pose: query, within: within, mirror: mirror)
                    let exact = items.compactMap { item -> (String, Double)? in
                        guard let p = item.pose, let d = try? Pose.distance(query, p, mirror: mirror), d <= within else { return nil }
                        return (item.key, d)
                    }.sorted { $0.1 < $1.1 }
                    #expect(hits.map(\.item.key) == exact.map(\.0))
                    for (hit, truth) in zip(hits, exact) { #expect(abs(hit.poseDistance! - truth.1) < 1e-12) }
                }
            }
            #expect(!(try gallery.search(pose: query, within: 1.2)).isEmpty)
        }
    }

    @Test func calibratedRangeEqualsTheMapAppliedToEveryItem() throws {
        try withGallery(300, seed: 2) { gallery, items, image, _ in
            let calibration = try gallery.calibrate(space: "image", settings: .init(seed: 3))
            var rng = Rng(state: 5)
            let query = row(image, 17).map { $0 + Float(rng.next() - 0.5) * 0.2 }
            let estimates = items.indices.map { calibration.rangePoseDistance(atEmbeddingDistance: cosineDistance(query[...], row(image, $0))) }
            // Thresholds across the range map, and one below it (nothing qualifies) and one above (everything).
            let range = try #require(calibration.rangeKnots)
            let lo = range.first!.poseDistance, hi = range.last!.poseDistance
            for within in [lo - 0.01, lo + 0.25 * (hi - lo), lo + 0.6 * (hi - lo), hi + 0.01] {
                let hits = try gallery.search(embedding: query, space: "image", withinPoseDistance: within)
                let expected = Set(items.indices.filter { estimates[$0] <= within }.map { items[$0].key })
                let boundary = Set(items.indices.filter { abs(estimates[$0] - within) < 1e-6 }.map { items[$0].key })
                #expect(Set(hits.map(\.item.key)).subtracting(boundary) == expected.subtracting(boundary))
                for hit in hits {
                    let i = items.firstIndex { $0.key == hit.item.key }!
                    #expect(abs(hit.estimatedPoseDistance! - estimates[i]) < 1e-5)
                }
                #expect(zip(hits, hits.dropFirst()).allSatisfy { $0.score >= $1.score })
            }
            #expect(try gallery.search(embedding: query, space: "image", withinPoseDistance: hi + 0.01).count == items.count)
        }
    }

    @Test func aSpaceWithoutCalibrationIsRefusedClearly() throws {
        try withGallery(30, seed: 4) { gallery, _, image, _ in
            #expect(throws: GalleryError.notCalibrated("space 'image' has no distance calibration: fit one with `calibrate(space:)` (`dml gallery calibrate`)")) { try gallery.search(embedding: Array(row(image, 0)), space: "image", withinPoseDistance: 0.5) }
            #expect(throws: GalleryError.invalidQuery("the pose distance must be a finite number >= 0")) { try gallery.search(pose: makeItems(1, seed: 1).items[0].pose!, within: -1) }
        }
    }
}

@Suite struct GalleryCalibration {
    @Test func quantileKnotsMatchSortedQuantilesOnAHandExample() {
        // x and y are sorted apart: the map sends the i-th smallest x to the i-th smallest y.
        let knots = DistanceCalibration.quantileKnots([(3, 0.1), (1, 0.9), (2, 0.5), (0, 0.3), (4, 0.7)], count: 4)
        #expect(knots.map(\.embeddingDistance) == [0, 1, 2, 3, 4])
        #expect(knots.map(\.poseDistance) == [0.1, 0.3, 0.5, 0.7, 0.9])
        // repeated x: one knot, the larger y
        let tied = DistanceCalibration.quantileKnots([(1, 0.2), (1, 0.4), (2, 0.6)], count: 2)
        #expect(tied.map(\.embeddingDistance) == [1, 2] && tied.map(\.poseDistance) == [0.4, 0.6])
        #expect(DistanceCalibration.quantileKnots([]).isEmpty)
    }

    @Test func aCalibrationStoredBeforeRangeMapsDecodesAndItsRangesUseTheMedianMap() throws {
        try withGallery(300, seed: 6) { gallery, _, _, _ in
            let current = try gallery.calibrate(space: "image", settings: .init(seed: 1))
            var json = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(current)) as? [String: Any])
            #expect(json.removeValue(forKey: "rangeKnots") != nil)
            let old = try JSONDecoder().decode(DistanceCalibration.self, from: JSONSerialization.data(withJSONObject: json))
            #expect(old.rangeKnots == nil && old.knots == current.knots)
            for x in [0.05, 0.3, 0.8] { #expect(old.rangePoseDistance(atEmbeddingDistance: x) == old.poseDistance(atEmbeddingDistance: x)) }
            let t = (current.knots.first!.poseDistance + current.knots.last!.poseDistance) / 2
            #expect(old.embeddingRadius(forPoseDistance: t) != current.embeddingRadius(forPoseDistance: t))
        }
    }

    @Test func poolAdjacentViolatorsOnAHandExample() {
        let knots = DistanceCalibration.isotonicKnots([(0, 1), (1, 3), (2, 2), (3, 4)], pairsPerBin: 1)
        #expect(knots.map(\.embeddingDistance) == [0, 1.5, 3])
        #expect(knots.map(\.poseDistance) == [1, 2.5, 4])
    }

    @Test func theMapIsMonotoneDeterministicAndInvertible() throws {
        try withGallery(300, seed: 6) { gallery, _, _, _ in
            let a = try gallery.calibrate(space: "image", settings: .init(seed: 1))
            let b = try gallery.calibrate(space: "image", settings: .init(seed: 1))
            let c = try gallery.calibrate(space: "image", settings: .init(seed: 2))
            #expect(a == b && a != c)
            let range = try #require(a.rangeKnots)
            for knots in [a.knots, range] {
                #expect(zip(knots, knots.dropFirst()).allSatisfy { $0.embeddingDistance < $1.embeddingDistance && $0.poseDistance <= $1.poseDistance })
            }
            let lo = range.first!.poseDistance, hi = range.last!.poseDistance
            for t in stride(from: lo + 0.01, to: hi, by: (hi - lo) / 7) {
                let r = try #require(a.embeddingRadius(forPoseDistance: t))
                #expect(abs(a.rangePoseDistance(atEmbeddingDistance: r) - t) < 1e-9)
                #expect(a.rangePoseDistance(atEmbeddingDistance: r + 1e-3) >= t)
            }
            #expect(a.embeddingRadius(forPoseDistance: lo - 0.01) == nil)
            #expect(a.embeddingRadius(forPoseDistance: hi) == .infinity)
        }
    }

    @Test func anInformativeSpaceBeatsAConstantAndAnUninformativeOneDoesNot() throws {
        try withGallery(400, seed: 7) { gallery, _, _, _ in
            let image = try gallery.calibrate(space: "image")
            #expect(image.heldOutPairs > 0 && image.fitPairs > image.heldOutPairs)
            #expect(image.heldOutMeanAbsoluteError < 0.8 * image.heldOutConstantError)
            #expect(image.heldOutRange.count == 4)
            #expect(image.heldOutRange.contains { ($0.recall ?? 0) > 0.2 && ($0.precision ?? 0) > 0.2 })
            // The range map balances the two: at the median radius both beat a random pick (about 50 %).
            let median = try #require(image.heldOutRange.last)
            #expect((median.precision ?? 0) > 0.55 && (median.recall ?? 0) > 0.55)
            // ... by returning about as many items as are truly within (the median map returned 30 % at the 20th)
            for range in image.heldOutRange.suffix(2) {
                #expect(abs(Double(range.calibratedCount) / Double(range.exactCount) - 1) < 0.3)
            }
        }
        // Random embeddings: the map can do no better than a constant.
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dmlkit-random-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        let gallery = try Gallery(directory: url, spaces: [imageSpace])
        var rng = Rng(state: 9)
        let items = makeItems(400, seed: 7).items
        try gallery.add(items, embeddings: ["image": (0..<(400 * dim)).map { _ in Float(rng.next() - 0.5) }])
        let random = try gallery.calibrate(space: "image")
        #expect(random.heldOutMeanAbsoluteError > 0.9 * random.heldOutConstantError)
    }

    @Test func storedWithItsGenerationAndRefitWhenStale() throws {
        try withGallery(100, seed: 8) { gallery, _, _, _ in
            #expect(try gallery.calibration(space: "image") == nil)
            let fitted = try gallery.refreshCalibrations()
            #expect(Set(fitted.keys) == ["image", "caption"])
            #expect(try gallery.calibration(space: "image") == fitted["image"])
            #expect(fitted["image"]?.generation == gallery.generation)
            let reader = try GalleryReader(directory: gallery.directory)
            #expect(try reader.calibrations() == fitted)
            let (more, image, caption) = makeItems(20, seed: 9, prefix: "more")
            try gallery.add(more, embeddings: ["image": image, "caption": caption])
            #expect(try gallery.calibration(space: "image")?.generation == gallery.generation - 1)
            let refreshed = try gallery.refreshCalibrations()
            #expect(refreshed["image"]?.generation == gallery.generation)
            #expect(try gallery.refreshCalibrations() == refreshed)
        }
    }

    @Test func tooFewPosedItemsIsAClearError() throws {
        try withGallery(15, seed: 10) { gallery, _, _, _ in
            #expect(throws: GalleryError.notCalibrated("calibrating 'image' needs at least 20 items with both an embedding and a pose, the gallery has 14")) { try gallery.calibrate(space: "image") }
            let fitted = try gallery.refreshCalibrations()
            #expect(fitted.isEmpty)
        }
    }
}

@Suite struct GalleryCombinedQueries {
    /// The weighted mean over all items, computed from scratch.
    private func bruteForce(_ gallery: Gallery, items: [GalleryItem], image: [Float], caption: [Float], imageQuery: [Float]?,
                            captionQuery: [Float]?, pose: Pose?, weights: [Double]) throws -> [(String, Double)]
    {
        let imageMap = try #require(try gallery.calibration(space: "image"))
        let captionMap = try #require(try gallery.calibration(space: "caption"))
        return items.indices.compactMap { i -> (String, Double)? in
            var parts: [Double] = []
            if let imageQuery { parts.append(imageMap.poseDistance(atEmbeddingDistance: cosineDistance(imageQuery[...], row(image, i)))) }
            if let captionQuery { parts.append(captionMap.poseDistance(atEmbeddingDistance: cosineDistance(captionQuery[...], row(caption, i)))) }
            if let pose {
                guard let p = items[i].pose, let d = try? Pose.distance(pose, p) else { return nil }
                parts.append(d)
            }
            return (items[i].key, zip(weights, parts).map(*).reduce(0, +) / weights.reduce(0, +))
        }.sorted { $0.1 < $1.1 }
    }

    @Test func combinedQueriesEqualABruteForceWeightedMeanOverAllItems() throws {
        try withGallery(300, seed: 11) { gallery, items, image, caption in
            try gallery.refreshCalibrations()
            let pose = try #require(makeItems(1, seed: 99).items[0].pose)
            var rng = Rng(state: 3)
            let imageQuery = row(image, 40).map { $0 + Float(rng.next() - 0.5) }
            let captionQuery = row(caption, 41).map { $0 + Float(rng.next() - 0.5) }
            let cases: [([QueryPart], [Float]?, [Float]?, Pose?, [Double])] = [
                ([.embedding(imageQuery, space: "image", weight: 0.7), .pose(pose, weight: 0.3)], imageQuery, nil, pose, [0.7, 0.3]),
                ([.embedding(imageQuery, space: "image"), .embedding(captionQuery, space: "caption", weight: 2)], imageQuery, captionQuery, nil, [1, 2]),
                ([.pose(pose, weight: 3), .embedding(captionQuery, space: "caption"), .embedding(imageQuery, space: "image", weight: 0.5)],
                 imageQuery, captionQuery, pose, [0.5, 1, 3]),  // brute force order: image, caption, pose
            ]
            for (parts, iq, cq, p, weights) in cases {
                let truth = try bruteForce(gallery, items: items, image: image, caption: caption, imageQuery: iq, captionQuery: cq,
                                           pose: p, weights: weights)
                // Small starting candidate lists make the threshold loop widen them.
                for initial in [1, 5, nil] as [Int?] {
                    let hits = try gallery.search(parts: parts, k: 12, initialCandidates: initial)
                    #expect(hits.map(\.item.key) == truth.prefix(12).map(\.0), "\(weights)")
                    for (hit, t) in zip(hits, truth) {
                        #expect(abs(hit.distance - t.1) < 1e-4)
                        #expect(abs(Double(hit.score) - 1 / (1 + t.1)) < 1e-4)  // higher is closer
                    }
                    #expect(hits.allSatisfy { $0.partDistances?.count == parts.count })
                    let first = try #require(hits.first?.partDistances)
                    #expect(abs(zip(parts.map(\.weight), first).map(*).reduce(0, +) / parts.map(\.weight).reduce(0, +) - hits[0].distance) < 1e-5)
                }
            }
            // Items without a pose cannot be scored on a pose part.
            let withPose = try gallery.search(parts: [.pose(pose), .embedding(imageQuery, space: "image")], k: items.count)
            #expect(withPose.count == items.filter { $0.pose != nil }.count)
        }
    }

    @Test func badCombinedQueriesAreRefused() throws {
        try withGallery(40, seed: 12) { gallery, _, image, _ in
            let v = Array(row(image, 0))
            #expect(throws: GalleryError.invalidQuery("a combined query needs at least one part")) { try gallery.search(parts: [], k: 3) }
            #expect(throws: GalleryError.notCalibrated("space 'image' has no distance calibration, which puts it in torso lengths: fit one with `calibrate(space:)`")) { try gallery.search(parts: [.embedding(v, space: "image")], k: 3) }  // not calibrated
            try gallery.refreshCalibrations()
            #expect(throws: GalleryError.invalidQuery("each part's weight must be a finite number > 0, got 0.0")) { try gallery.search(parts: [.embedding(v, space: "image", weight: 0)], k: 3) }
            #expect(throws: GalleryError.invalidQuery("each part's weight must be a finite number > 0, got nan")) { try gallery.search(parts: [.embedding(v, space: "image", weight: .nan)], k: 3) }
            #expect(throws: GalleryError.unknownSpace("nope")) { try gallery.search(parts: [.embedding(v, space: "nope")], k: 3) }
            #expect(throws: GalleryError.invalidQuery("a 'image' query needs 8 numbers, got 2")) { try gallery.search(parts: [.embedding([1, 2], space: "image")], k: 3) }
            #expect(throws: GalleryError.invalidQuery("k must be at least 1")) { try gallery.search(parts: [.embedding(v, space: "image")], k: 0) }
            var few = makeItems(1, seed: 1).items[0].pose!
            for j in 5..<17 where ![5, 6, 11, 12].contains(j) { few.keypoints[j].visibility = 0 }
            for j in 0..<5 { few.keypoints[j].visibility = 0 }
            #expect(few.labelledCount == 4)
            #expect(throws: GalleryError.invalidQuery("the pose has 4 labelled joints; a pose distance needs at least 5")) { try gallery.search(parts: [.pose(few)], k: 3) }
            #expect(throws: GalleryError.invalidQuery("the pose has 4 labelled joints; a pose distance needs at least 5")) { try gallery.search(pose: few, k: 3) }
            #expect(throws: GalleryError.invalidQuery("the pose has 4 labelled joints; a pose distance needs at least 5")) { try gallery.search(pose: few, within: 1) }
        }
    }
}
