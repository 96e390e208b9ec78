import DMLIndex
import Foundation

/// One part of a combined query, with its weight.
public struct QueryPart: Sendable {
    public enum Kind: Sendable {
        /// An embedding (of an example image, a caption, a stored item) searched in `space`.
        case embedding([Float], space: String)
        /// A pose, compared by the exact pose distance.
        case pose(Pose, mirror: Bool)
    }

    public var kind: Kind
    public var weight: Double

    public static func embedding(_ vector: [Float], space: String, weight: Double = 1) -> QueryPart {
        QueryPart(kind: .embedding(vector, space: space), weight: weight)
    }

    public static func pose(_ pose: Pose, mirror: Bool = false, weight: Double = 1) -> QueryPart {
        QueryPart(kind: .pose(pose, mirror: mirror), weight: weight)
    }
}

/// Weighted combined queries.
///
/// **Fusion rule.** Every part's distance is put in one unit, torso lengths of pose distance: a pose part gives the
/// exact pose distance; an embedding part gives its space's calibrated pose distance at the item's embedding
/// distance (`DistanceCalibration`, the typical pose distance of gallery pairs that far apart). The item's score is
/// the weighted mean Σ wᵢ dᵢ / Σ wᵢ, smaller is better. Each part thus votes in the same unit, a part whose space
/// says little about pose has a flat map and barely moves the ranking, and weights mean what they say. Items
/// missing a part (no pose, pose distance undefined, no embedding in the space) are left out.
///
/// **Exactness.** Candidates are the union of each part's C nearest items (Fagin's threshold algorithm): every
/// candidate is scored exactly in every part, and an item in no part's list scores at least the weighted mean of the
/// parts' C-th distances. When the k-th best candidate is within that bound the result is exact; otherwise C grows
/// fourfold and the search repeats. Exact as long as the embedding indexes are (Flat); approximate indexes (HNSW,
/// IVF) make the candidate lists, and so the result, approximate.
extension Gallery {
    /// The `k` items with the smallest weighted mean part distance (torso lengths, see above), best first.
    /// `score` is that mean; `partDistances` each part's distance; `poseDistance` the first pose part's distance.
    public func search(parts: [QueryPart], k: Int, initialCandidates: Int? = nil) throws -> [GalleryHit] {
        guard !parts.isEmpty else { throw GalleryError.invalidQuery("a combined query needs at least one part") }
        guard k >= 1 else { throw GalleryError.invalidQuery("k must be at least 1") }
        for part in parts where !(part.weight.isFinite && part.weight > 0) {
            throw GalleryError.invalidQuery("each part's weight must be a finite number > 0, got \(part.weight)")
        }
        let totalWeight = parts.map(\.weight).reduce(0, +)
        guard totalWeight.isFinite else { throw GalleryError.invalidQuery("the weights add up to more than a Double holds") }
        // Weights as fractions of their sum: the same scores, and no product can overflow.
        let weights = parts.map { $0.weight / totalWeight }
        let prepared = try parts.map { try prepare($0) }
        // Nothing beyond the gallery's size can be returned: clamping first keeps every count below in range.
        let itemCount = max(count, 1)
        let k = min(k, itemCount)
        var candidateCount = min(max(initialCandidates ?? 4 * k, 1), itemCount)
        var cache = prepared.map { _ in [Int64: Double]() }
        while true {
            var candidates = Set<Int64>()
            var bound = 0.0
            for (i, part) in prepared.enumerated() {
                let (ids, partBound) = try part.nearest(candidateCount)
                candidates.formUnion(ids)
                bound += weights[i] * partBound
            }
            var scored: [(id: Int64, score: Double, parts: [Double])] = []
            for (i, part) in prepared.enumerated() {
                let missing = candidates.filter { cache[i][$0] == nil }
                for (id, d) in try part.exact(Array(missing)) { cache[i][id] = d }
            }
            for id in candidates {
                let distances = prepared.indices.compactMap { cache[$0][id] }
                guard distances.count == prepared.count else { continue }
                let score = zip(weights, distances).map { $0 * $1 }.reduce(0, +)
                scored.append((id, score, distances))
            }
            scored.sort { ($0.score, $0.id) < ($1.score, $1.id) }
            let kth = scored.count >= k ? scored[k - 1].score : .infinity
            if kth <= bound || bound == .infinity {
                let top = Array(scored.prefix(k))
                let items = try fetch(top.map(\.id))
                let posePart = prepared.firstIndex { $0.isPose }
                return top.compactMap { hit in
                    items[hit.id].map {
                        GalleryHit(id: hit.id, item: $0, distance: hit.score, poseDistance: posePart.map { hit.parts[$0] },
                                   partDistances: hit.parts)
                    }
                }
            }
            // Saturating: once C passes an index's size that part returns everything (bound infinite), so this ends.
            candidateCount = candidateCount > Int.max / 4 ? Int.max : candidateCount * 4
        }
    }

    /// A part ready to answer "your C nearest, and a lower bound for everything else" and "exact distances for these".
    private struct PreparedPart {
        var isPose: Bool
        var nearest: (Int) throws -> (ids: [Int64], bound: Double)
        var exact: ([Int64]) throws -> [(Int64, Double)]
    }

    private func prepare(_ part: QueryPart) throws -> PreparedPart {
        switch part.kind {
        case .pose(let pose, let mirror):
            let query = try Self.normalizedQuery(pose)
            let all = try poseTable().distances(to: query, mirror: mirror).sorted { ($0.distance, $0.id) < ($1.distance, $1.id) }
            let byID = Dictionary(all.map { ($0.id, $0.distance) }, uniquingKeysWith: { a, _ in a })
            return PreparedPart(
                isPose: true,
                nearest: { c in (all.prefix(c).map(\.id), all.count > c ? all[c - 1].distance : .infinity) },
                exact: { ids in ids.compactMap { id in byID[id].map { (id, $0) } } })
        case .embedding(let vector, let space):
            guard let declared = spaces.first(where: { $0.name == space }), let index = indexes[space] else {
                throw GalleryError.unknownSpace(space)
            }
            guard vector.count == declared.dimension else {
                throw GalleryError.invalidQuery("a '\(space)' query needs \(declared.dimension) numbers, got \(vector.count)")
            }
            guard vector.allSatisfy(\.isFinite) else { throw GalleryError.invalidQuery("the '\(space)' query has NaN or infinity") }
            guard let calibration = try calibration(space: space) else {
                throw GalleryError.notCalibrated(
                    "space '\(space)' has no distance calibration, which puts it in torso lengths: fit one with `calibrate(space:)`")
            }
            let metric = declared.metric
            let query = EmbeddingTable(vectors: vector, dimension: declared.dimension, metric: metric)
            return PreparedPart(
                isPose: false,
                nearest: { c in
                    let count = index.count
                    guard count > 0 else { return ([], .infinity) }
                    let neighbors: [Neighbor]
                    do {
                        neighbors = try index.search(vector: vector, k: min(c, count))
                    } catch let error as VectorIndexError {
                        throw GalleryError.index(error)
                    }
                    guard count > c, let last = neighbors.last else { return (neighbors.map(\.id), .infinity) }
                    // FAISS computes in float: the bound is taken a hair closer so it stays a lower bound.
                    let d = DistanceCalibration.embeddingDistance(score: last.distance, metric: metric) - 1e-5
                    return (neighbors.map(\.id), calibration.poseDistance(atEmbeddingDistance: d))
                },
                exact: { [self] ids in
                    try locked { try GallerySchema.vectors(database, space: space, ids: ids) }.map { id, stored in
                        (id, calibration.poseDistance(atEmbeddingDistance: query.distance(to: stored)))
                    }
                })
        }
    }
}

extension EmbeddingTable {
    /// Distance from this table's first row (the query, normalised for cosine) to a stored `vector`.
    func distance(to vector: [Float]) -> Double {
        var dot: Float = 0, norm: Float = 0, l2: Float = 0
        for i in 0..<min(dimension, vector.count) {
            dot += rows[i] * vector[i]
            norm += vector[i] * vector[i]
            let d = rows[i] - vector[i]
            l2 += d * d
        }
        switch metric {
        case .cosine: return 1 - Double(dot) / Double(norm).squareRoot()
        case .l2: return Double(l2).squareRoot()
        case .innerProduct: return -Double(dot)
        }
    }
}
