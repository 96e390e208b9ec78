/// How vectors are compared.
public enum Metric: String, Sendable, CaseIterable, Codable {
    /// Inner product; higher is closer.
    case innerProduct = "ip"
    /// Squared Euclidean distance (FAISS reports L2 squared); lower is closer.
    case l2
    /// Cosine similarity: vectors are L2-normalised on add and on query, then compared by inner product.
    case cosine

    /// Whether a larger score means a closer vector.
    public var higherIsCloser: Bool { self != .l2 }
}

/// Per-call search settings. `nil` keeps the index's own setting.
public struct SearchParameters: Sendable, Equatable {
    /// IVF: how many inverted lists to visit.
    public var nprobe: Int?
    /// HNSW: size of the candidate list.
    public var efSearch: Int?
    /// Filtered search: only these ids may be returned.
    public var allowedIDs: [Int64]?

    public init(nprobe: Int? = nil, efSearch: Int? = nil, allowedIDs: [Int64]? = nil) {
        self.nprobe = nprobe
        self.efSearch = efSearch
        self.allowedIDs = allowedIDs
    }
}

/// One search hit.
public struct Neighbor: Sendable, Equatable {
    public var id: Int64
    /// Score in the index's metric (see `Metric`).
    public var distance: Float

    public init(id: Int64, distance: Float) {
        self.id = id
        self.distance = distance
    }
}

/// k-NN results for a batch of queries, row-major: query `q`'s hits are at `q*k ..< (q+1)*k`.
/// Where fewer than k vectors qualify (filtered search), ids are -1.
public struct SearchResults: Sendable, Equatable {
    public let queryCount: Int
    public let k: Int
    public var ids: [Int64]
    public var distances: [Float]

    /// The hits of query `q`, closest first, without the -1 padding.
    public func neighbors(ofQuery q: Int) -> [Neighbor] {
        (q * k..<(q + 1) * k).compactMap { ids[$0] >= 0 ? Neighbor(id: ids[$0], distance: distances[$0]) : nil }
    }
}

/// Range search results: query `q`'s hits are at `offsets[q] ..< offsets[q+1]`, in no particular order.
public struct RangeSearchResults: Sendable, Equatable {
    public let offsets: [Int]
    public var ids: [Int64]
    public var distances: [Float]

    public var queryCount: Int { offsets.count - 1 }

    /// The hits of query `q`, closest first.
    public func neighbors(ofQuery q: Int, higherIsCloser: Bool) -> [Neighbor] {
        let hits = (offsets[q]..<offsets[q + 1]).map { Neighbor(id: ids[$0], distance: distances[$0]) }
        return hits.sorted { higherIsCloser ? $0.distance > $1.distance : $0.distance < $1.distance }
    }
}
