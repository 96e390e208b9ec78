import DMLIndex
import Foundation

/// A monotone map from a space's embedding distance to the pose distance (torso lengths) typical at that distance,
/// fitted on a sample of item pairs, with its error measured on pairs it was not fitted on.
///
/// **Fit.** Posed items are shuffled (seeded); a fifth of the anchors (at most `heldOutAnchors`) are held out. Each
/// other anchor is paired with its `neighborsPerAnchor` nearest items in embedding distance and as many random
/// items (pairs touching a held-out anchor are left out), so the fit sees both the close range that range queries
/// ask about and the far range. Pairs sorted by embedding distance are cut into bins of `pairsPerBin`; each bin gives
/// (mean embedding distance, median pose distance), and the medians are made non-decreasing by isotonic regression
/// (pool adjacent violators, weighted by bin size). The map interpolates linearly between the resulting knots and is
/// flat beyond the first and last. That map is the estimate a hit shows (`estimatedPoseDistance`, combined queries).
///
/// **Range map.** Range queries use a second monotone map, `rangeKnots`, fitted by matching quantiles over every
/// (anchor, item) pair of up to `rangeAnchors` fit anchors: the embedding distance at quantile q goes to the pose
/// distance at quantile q. A range `≤ t` then returns about as many items as are truly within `t` (the share of
/// pairs within `t` by pose distance), the nearest by embedding, so precision and recall are balanced. The median map
/// would be a majority vote instead, empty below the typical distance of even the nearest pairs (recall near 0).
///
/// **Error.** On the held-out anchors' pairs (same sampling): mean absolute error between the map and the exact pose
/// distance, next to that of the best constant (their median). For each threshold, range queries from each held-out
/// anchor over the reference items: precision and recall of the calibrated set {range map(embedding distance) ≤ t}
/// against the exact set {pose distance ≤ t}, pooled over the queries. Thresholds default to the 1st, 5th, 20th and
/// 50th percentiles of those exact distances (rounded to 0.01), so they sit where the gallery's data is; at the 50th
/// (the median radius) a random pick would score about 50 % on both.
///
/// **Limits.** The map only knows the embedding distance: it cannot tell two items at the same distance apart, so a
/// calibrated range is only as sharp as the embedding's correlation with pose; where the typical pose distance of
/// even the nearest pairs exceeds `t`, the calibrated range is empty (read precision/recall before trusting a
/// radius). It is fitted to the items stored at `generation` (refit after changes), constant below the first knot
/// and past the last, says nothing about queries unlike the gallery's items, and does not model mirroring.
public struct DistanceCalibration: Codable, Sendable, Equatable {
    /// One point of the map: an embedding distance and the pose distance expected there.
    public struct Knot: Codable, Sendable, Equatable {
        public var embeddingDistance: Double
        public var poseDistance: Double
    }

    /// Precision and recall of calibrated range results at one threshold, pooled over held-out queries.
    public struct RangeAccuracy: Codable, Sendable, Equatable {
        public var threshold: Double
        /// Items the calibrated range returned that are within `threshold` by the exact pose distance, over all it
        /// returned; nil when it returned none.
        public var precision: Double?
        /// Items within `threshold` that the calibrated range returned, over all within; nil when there were none.
        public var recall: Double?
        public var calibratedCount: Int
        public var exactCount: Int
    }

    /// Sampling settings; the defaults are what `Gallery.calibrate` uses.
    public struct Settings: Codable, Sendable, Equatable {
        public var seed: UInt64 = 0
        public var anchors = 600
        public var heldOutAnchors = 120
        public var references = 4000
        public var neighborsPerAnchor = 20
        public var pairsPerBin = 40
        /// Thresholds of the range error report; nil: the 1st, 5th and 20th percentiles of held-out distances.
        public var thresholds: [Double]?
        public init(seed: UInt64 = 0, thresholds: [Double]? = nil) {
            self.seed = seed
            self.thresholds = thresholds
        }
    }

    public var space: String
    public var metric: Metric
    /// The store's generation the map was fitted at.
    public var generation: Int64
    public var settings: Settings
    public var knots: [Knot]
    public var fitPairs: Int
    public var heldOutPairs: Int
    /// Mean absolute error in torso lengths on the held-out pairs.
    public var heldOutMeanAbsoluteError: Double
    /// Mean absolute error of the best constant (the held-out pairs' median pose distance): what the map must beat.
    public var heldOutConstantError: Double
    public var heldOutRange: [RangeAccuracy]
    /// The range map (quantile-matched, see above); nil in calibrations stored before it existed, whose ranges use
    /// `knots` (refit them with `calibrate` for balanced ranges).
    public var rangeKnots: [Knot]?

    /// Fit anchors whose pairs with every reference item fit the range map.
    public static let rangeAnchors = 240

    /// The pose distance typical (the median) at `embeddingDistance`.
    public func poseDistance(atEmbeddingDistance x: Double) -> Double {
        Self.interpolate(knots, at: x)
    }

    /// The pose distance at `embeddingDistance`'s quantile (the range map): what range queries compare to `within`.
    public func rangePoseDistance(atEmbeddingDistance x: Double) -> Double {
        Self.interpolate(rangeKnots ?? knots, at: x)
    }

    static func interpolate(_ knots: [Knot], at x: Double) -> Double {
        guard let first = knots.first, let last = knots.last else { return .nan }
        if x <= first.embeddingDistance { return first.poseDistance }
        if x >= last.embeddingDistance { return last.poseDistance }
        var lo = 0, hi = knots.count - 1
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if knots[mid].embeddingDistance <= x { lo = mid } else { hi = mid }
        }
        let a = knots[lo], b = knots[hi]
        let t = (x - a.embeddingDistance) / (b.embeddingDistance - a.embeddingDistance)
        return a.poseDistance + t * (b.poseDistance - a.poseDistance)
    }

    /// The largest embedding distance the range map sends to at most `poseDistance`: `nil` when none is (every item
    /// is expected farther), `.infinity` when all are. The map is non-decreasing, so {x : map(x) ≤ t} = (-∞, radius].
    public func embeddingRadius(forPoseDistance t: Double) -> Double? {
        let knots = rangeKnots ?? knots
        guard let first = knots.first, let last = knots.last, first.poseDistance <= t else { return nil }
        if last.poseDistance <= t { return .infinity }
        let i = knots.firstIndex { $0.poseDistance > t }!
        let a = knots[i - 1], b = knots[i]
        return a.embeddingDistance + (t - a.poseDistance) / (b.poseDistance - a.poseDistance) * (b.embeddingDistance - a.embeddingDistance)
    }

    /// The embedding distance the calibration uses for a score in `metric`: 1 - cosine similarity, the L2 distance
    /// (FAISS reports it squared), or minus the inner product. Smaller is closer in all three.
    public static func embeddingDistance(score: Float, metric: Metric) -> Double {
        switch metric {
        case .cosine: return 1 - Double(score)
        case .l2: return Double(max(score, 0)).squareRoot()
        case .innerProduct: return -Double(score)
        }
    }

    /// The score in `metric` at embedding distance `distance` (inverse of `embeddingDistance(score:metric:)`).
    static func score(atEmbeddingDistance distance: Double, metric: Metric) -> Double {
        switch metric {
        case .cosine: return 1 - distance
        case .l2: return distance * distance
        case .innerProduct: return -distance
        }
    }
}

/// Why a calibration could not be fitted.
public struct CalibrationError: Error, CustomStringConvertible {
    public let description: String
}

extension DistanceCalibration {
    /// Embedding distance between two stored vectors in `metric`.
    static func distance(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>, metric: Metric) -> Double {
        var dot = 0.0, na = 0.0, nb = 0.0, l2 = 0.0
        for (x, y) in zip(a, b) {
            let x = Double(x), y = Double(y)
            dot += x * y
            na += x * x
            nb += y * y
            l2 += (x - y) * (x - y)
        }
        switch metric {
        case .cosine: return 1 - dot / (na.squareRoot() * nb.squareRoot())
        case .l2: return l2.squareRoot()
        case .innerProduct: return -dot
        }
    }

    /// Fits the map for `space` on items with an embedding (`vectors`, row-major, one row per `ids` entry) and a
    /// pose (`poses` by id). Deterministic for given inputs and `settings.seed`.
    public static func fit(space: String, metric: Metric, generation: Int64, ids: [Int64], vectors: [Float], dimension: Int,
                           poses: [Int64: NormalizedPose], settings: Settings = Settings()) throws -> DistanceCalibration
    {
        let rows = ids.indices.filter { poses[ids[$0]] != nil }
        guard rows.count >= 20 else {
            throw CalibrationError(description: "calibrating '\(space)' needs at least 20 items with both an embedding and a pose, the gallery has \(rows.count)")
        }
        var rng = SplitMix64(seed: settings.seed)
        var order = rows
        for i in order.indices.dropLast() { order.swapAt(i, i + Int(rng.next() % UInt64(order.count - i))) }
        let anchorCount = min(order.count, settings.anchors)
        let heldCount = max(1, min(settings.heldOutAnchors, anchorCount / 5))
        let heldOut = Array(order.prefix(heldCount))
        let fitAnchors = Array(order[heldCount..<anchorCount])
        let heldSet = Set(heldOut)
        // References: a random subset of the other items (all of them in small galleries).
        let references = Array(order.prefix(min(order.count, settings.references)))

        let table = EmbeddingTable(vectors: vectors, dimension: dimension, metric: metric)
        func poseDistance(_ a: Int, _ b: Int) -> Double? { try? poses[ids[a]]!.distance(to: poses[ids[b]]!) }

        /// Pairs (embedding distance, pose distance) of `anchor` with its nearest references and random ones.
        func pairs(_ anchor: Int, excluding excluded: Set<Int>) -> [(Double, Double)] {
            let candidates = references.filter { $0 != anchor && !excluded.contains($0) }
            let distances = candidates.map { table.distance(anchor, $0) }
            let nearest = candidates.indices.sorted { (distances[$0], candidates[$0]) < (distances[$1], candidates[$1]) }
                .prefix(settings.neighborsPerAnchor)
            var chosen = Set(nearest)
            for _ in 0..<settings.neighborsPerAnchor where chosen.count < candidates.count {
                chosen.insert(Int(rng.next() % UInt64(candidates.count)))
            }
            return chosen.sorted().compactMap { c in poseDistance(anchor, candidates[c]).map { (distances[c], $0) } }
        }

        let fitted = fitAnchors.flatMap { pairs($0, excluding: heldSet) }
        guard fitted.count >= settings.pairsPerBin else {
            throw CalibrationError(description: "calibrating '\(space)': only \(fitted.count) item pairs have a pose distance")
        }
        let knots = isotonicKnots(fitted, pairsPerBin: settings.pairsPerBin)
        // Range map: every reference item paired with the first fit anchors (held-out items left out).
        var rangePairs: [(Double, Double)] = []
        for anchor in fitAnchors.prefix(rangeAnchors) {
            for r in references where r != anchor && !heldSet.contains(r) {
                if let truth = poseDistance(anchor, r) { rangePairs.append((table.distance(anchor, r), truth)) }
            }
        }
        var calibration = DistanceCalibration(
            space: space, metric: metric, generation: generation, settings: settings, knots: knots, fitPairs: fitted.count,
            heldOutPairs: 0, heldOutMeanAbsoluteError: .nan, heldOutConstantError: .nan, heldOutRange: [],
            rangeKnots: quantileKnots(rangePairs))

        // Error on pairs anchored at held-out items (never used in the fit).
        let held = heldOut.flatMap { pairs($0, excluding: []) }
        calibration.heldOutPairs = held.count
        guard !held.isEmpty else {
            throw CalibrationError(description: "calibrating '\(space)': no held-out pair has a pose distance, so the error cannot be measured")
        }
        do {
            calibration.heldOutMeanAbsoluteError = held.map { abs(calibration.poseDistance(atEmbeddingDistance: $0.0) - $0.1) }
                .reduce(0, +) / Double(held.count)
            let median = held.map(\.1).sorted()[held.count / 2]
            calibration.heldOutConstantError = held.map { abs(median - $0.1) }.reduce(0, +) / Double(held.count)
        }
        // Range precision/recall: each held-out anchor against every reference item.
        var all: [(estimate: Double, truth: Double)] = []
        for anchor in heldOut {
            for r in references where r != anchor {
                guard let truth = poseDistance(anchor, r) else { continue }
                all.append((calibration.rangePoseDistance(atEmbeddingDistance: table.distance(anchor, r)), truth))
            }
        }
        let truths = all.map(\.truth).sorted()
        var thresholds: [Double] = settings.thresholds ?? []
        if settings.thresholds == nil, !truths.isEmpty {
            for q in [0.01, 0.05, 0.2, 0.5] {
                let value: Double = truths[min(truths.count - 1, Int(q * Double(truths.count)))]
                thresholds.append((value * 100).rounded() / 100)
            }
        }
        calibration.heldOutRange = thresholds.map { threshold in
            var both = 0, calibrated = 0, exact = 0
            for pair in all {
                let inCalibrated = pair.estimate <= threshold, inExact = pair.truth <= threshold
                if inCalibrated { calibrated += 1 }
                if inExact { exact += 1 }
                if inCalibrated && inExact { both += 1 }
            }
            return RangeAccuracy(threshold: threshold,
                                 precision: calibrated > 0 ? Double(both) / Double(calibrated) : nil,
                                 recall: exact > 0 ? Double(both) / Double(exact) : nil,
                                 calibratedCount: calibrated, exactCount: exact)
        }
        return calibration
    }

    /// Quantile matching: x and y sorted apart, knots at `count + 1` evenly spaced quantiles (x_q, y_q); knots of
    /// equal x keep the larger y, so x strictly increases and y never decreases.
    static func quantileKnots(_ pairs: [(Double, Double)], count: Int = 200) -> [Knot] {
        guard !pairs.isEmpty else { return [] }
        let xs = pairs.map(\.0).sorted(), ys = pairs.map(\.1).sorted()
        var knots: [Knot] = []
        for i in 0...count {
            let at = Int((Double(i) / Double(count) * Double(xs.count - 1)).rounded())
            appendKnot(Knot(embeddingDistance: xs[at], poseDistance: ys[at]), to: &knots)
        }
        return knots
    }

    /// Appends `knot`, or, when its x does not exceed the last knot's, raises the last knot to it: equal x would
    /// make interpolation undefined, so the later (higher) value is kept.
    static func appendKnot(_ knot: Knot, to knots: inout [Knot]) {
        if let last = knots.last, knot.embeddingDistance <= last.embeddingDistance {
            knots[knots.count - 1].poseDistance = max(last.poseDistance, knot.poseDistance)
        } else {
            knots.append(knot)
        }
    }

    /// Bins of (x, y) pairs sorted by x, each (mean x, median y), made non-decreasing in y by pool-adjacent-violators.
    static func isotonicKnots(_ pairs: [(Double, Double)], pairsPerBin: Int) -> [Knot] {
        let sorted = pairs.sorted { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
        // Blocks: (sum x, weighted sum of bin medians, weight).
        var blocks: [(x: Double, y: Double, w: Double)] = []
        for start in stride(from: 0, to: sorted.count, by: pairsPerBin) {
            let bin = sorted[start..<min(start + pairsPerBin, sorted.count)]
            let ys = bin.map(\.1).sorted()
            let median = ys.count % 2 == 1 ? ys[ys.count / 2] : (ys[ys.count / 2 - 1] + ys[ys.count / 2]) / 2
            blocks.append((bin.map(\.0).reduce(0, +), median * Double(bin.count), Double(bin.count)))
            while blocks.count >= 2, blocks[blocks.count - 2].y / blocks[blocks.count - 2].w > blocks[blocks.count - 1].y / blocks[blocks.count - 1].w {
                let last = blocks.removeLast()
                blocks[blocks.count - 1].x += last.x
                blocks[blocks.count - 1].y += last.y
                blocks[blocks.count - 1].w += last.w
            }
        }
        var knots: [Knot] = []
        for b in blocks { appendKnot(Knot(embeddingDistance: b.x / b.w, poseDistance: b.y / b.w), to: &knots) }
        return knots
    }
}

/// Embedding distances between stored rows; cosine rows are normalised once (distance = 1 - dot).
struct EmbeddingTable {
    let rows: [Float]
    let dimension: Int
    let metric: Metric

    init(vectors: [Float], dimension: Int, metric: Metric) {
        self.dimension = dimension
        self.metric = metric
        guard metric == .cosine else {
            rows = vectors
            return
        }
        var out = vectors
        for r in 0..<(dimension == 0 ? 0 : vectors.count / dimension) {
            var norm: Float = 0
            for i in r * dimension..<(r + 1) * dimension { norm += out[i] * out[i] }
            let scale = norm > 0 ? 1 / norm.squareRoot() : 0
            for i in r * dimension..<(r + 1) * dimension { out[i] *= scale }
        }
        rows = out
    }

    func distance(_ a: Int, _ b: Int) -> Double {
        rows.withUnsafeBufferPointer { p in
            var dot: Float = 0, l2: Float = 0
            let x = p.baseAddress! + a * dimension, y = p.baseAddress! + b * dimension
            for i in 0..<dimension {
                dot += x[i] * y[i]
                let d = x[i] - y[i]
                l2 += d * d
            }
            switch metric {
            case .cosine: return 1 - Double(dot)
            case .l2: return Double(l2).squareRoot()
            case .innerProduct: return -Double(dot)
            }
        }
    }
}
