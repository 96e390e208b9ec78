/// Checks a FAISS factory string before FAISS sees it: only the index types DMLKit can also read back
/// (see `VectorIndex.load`), with parameters FAISS can build and search.
///
/// Accepted forms (FAISS 1.7.3 syntax):
/// `Flat` · `SQ4|SQ6|SQ8|SQfp16` · `PQ<M>[x<nbits>][np]` · `LSH[r][t]` (L2 only) ·
/// `HNSW[<M>][,Flat | ,SQ… | ,PQ<M>[np]]` (`_` works as the separator too; PQ storage is L2 only) ·
/// `IVF<nlist>[_HNSW[<M>]],Flat | ,SQ… | ,PQ<M>[x<nbits>][np]`, each optionally after `IDMap,` or `IDMap2,`.
/// Limits: HNSW M 2...512, IVF nlist 1...2^20, PQ M divides the dimension, PQ nbits 1...16, HNSW PQ M ≤ 256.
enum FactoryString {
    static let maxHNSWNeighbors = 512
    static let maxLists = 1 << 20
    static let maxPQBits = 16
    static let maxHNSWPQSubquantizers = 256

    /// Throws `invalidFactory` unless `text` (already trimmed) builds an index DMLKit supports at this dimension.
    static func validate(_ text: String, dimension: Int, metric: Metric) throws {
        func refuse(_ reason: String) -> VectorIndexError { .invalidFactory(text, reason: reason) }
        for wrapper in ["IDMap,", "IDMap2,"] where text.hasPrefix(wrapper) {
            let inner = String(text.dropFirst(wrapper.count))
            guard !inner.hasPrefix("IDMap") else { throw refuse("an id map inside an id map") }
            do {
                return try validate(inner, dimension: dimension, metric: metric)
            } catch VectorIndexError.invalidFactory(_, let reason) {
                throw refuse(reason)
            }
        }
        if text == "Flat" || ["SQ4", "SQ6", "SQ8", "SQfp16"].contains(text) { return }
        if text.hasPrefix("LSH") {
            guard ["LSH", "LSHr", "LSHt", "LSHrt"].contains(text) else { throw refuse("LSH takes the suffixes r and t only") }
            guard metric == .l2 else { throw refuse("LSH indexes compare by Hamming distance and need --metric l2") }
            return
        }
        if text.hasPrefix("PQ") {
            try checkPQ(String(text.dropFirst(2)), dimension: dimension, allowBits: true, refuse: refuse)
            return
        }
        if text.hasPrefix("HNSW") {
            var rest = Substring(text.dropFirst(4))
            let m = rest.prefix { $0.isASCII && $0.isNumber }
            rest = rest.dropFirst(m.count)
            try checkHNSWNeighbors(m, refuse: refuse)
            guard !rest.isEmpty else { return }
            guard rest.first == "," || rest.first == "_" else { throw refuse("expected ',' after HNSW\(m)") }
            let code = String(rest.dropFirst())
            if code.isEmpty || code == "Flat" || ["SQ4", "SQ6", "SQ8", "SQfp16"].contains(code) { return }
            guard code.hasPrefix("PQ") else { throw refuse("HNSW stores vectors as Flat, SQ or PQ, not '\(code)'") }
            guard metric == .l2 else { throw refuse("FAISS builds HNSW over PQ for L2 only; use --metric l2") }
            let pq = try checkPQ(String(code.dropFirst(2)), dimension: dimension, allowBits: false, refuse: refuse)
            guard pq <= maxHNSWPQSubquantizers else {
                throw refuse("HNSW over PQ takes at most \(maxHNSWPQSubquantizers) subquantizers, got \(pq)")
            }
            return
        }
        if text.hasPrefix("IVF") {
            guard let comma = text.firstIndex(of: ",") else { throw refuse("IVF needs a code after a comma, e.g. IVF1024,Flat") }
            var coarse = Substring(text[text.index(text.startIndex, offsetBy: 3)..<comma])
            let lists = coarse.prefix { $0.isASCII && $0.isNumber }
            coarse = coarse.dropFirst(lists.count)
            guard let nlist = Int(lists) else { throw refuse("IVF needs a number of lists, e.g. IVF1024") }
            guard nlist >= 1 && nlist <= maxLists else { throw refuse("IVF nlist must be 1...\(maxLists), got \(nlist)") }
            if !coarse.isEmpty {
                guard coarse.hasPrefix("_HNSW") else { throw refuse("unknown coarse quantizer 'IVF\(lists)\(coarse)'") }
                let m = coarse.dropFirst(5)
                guard m.allSatisfy({ $0.isASCII && $0.isNumber }) else { throw refuse("unknown coarse quantizer 'IVF\(lists)\(coarse)'") }
                try checkHNSWNeighbors(m, refuse: refuse)
            }
            let code = String(text[text.index(after: comma)...])
            if code == "Flat" || ["SQ4", "SQ6", "SQ8", "SQfp16"].contains(code) { return }
            guard code.hasPrefix("PQ") else { throw refuse("IVF codes are Flat, SQ4/6/8/fp16 or PQ<M>, not '\(code)'") }
            try checkPQ(String(code.dropFirst(2)), dimension: dimension, allowBits: true, refuse: refuse)
            return
        }
        throw refuse("DMLKit builds Flat, SQ…, PQ…, LSH, HNSW… and IVF… indexes (see FactoryString)")
    }

    private static func checkHNSWNeighbors(_ digits: Substring, refuse: (String) -> VectorIndexError) throws {
        guard !digits.isEmpty else { return }  // FAISS's default, 32
        guard let m = Int(digits), m >= 2, m <= maxHNSWNeighbors else {
            throw refuse("HNSW M (neighbours per node) must be 2...\(maxHNSWNeighbors), got \(digits)")
        }
    }

    /// Checks `<M>[x<nbits>][np]` and returns M.
    @discardableResult
    private static func checkPQ(_ spec: String, dimension: Int, allowBits: Bool, refuse: (String) -> VectorIndexError)
        throws -> Int
    {
        var rest = Substring(spec)
        if rest.hasSuffix("np") { rest = rest.dropLast(2) }
        let parts = rest.split(separator: "x", maxSplits: 1, omittingEmptySubsequences: false)
        guard let first = parts.first, !first.isEmpty, first.allSatisfy({ $0.isASCII && $0.isNumber }), let m = Int(first) else {
            throw refuse("PQ needs a number of subquantizers, e.g. PQ16")
        }
        guard m >= 1 && m <= dimension else { throw refuse("PQ M must be 1...\(dimension) (the dimension), got \(first)") }
        guard dimension % m == 0 else { throw refuse("PQ M \(m) does not divide the dimension \(dimension)") }
        if parts.count == 2 {
            guard allowBits else { throw refuse("HNSW over PQ uses 8 bits per code; drop 'x\(parts[1])'") }
            guard parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), let bits = Int(parts[1]), bits >= 1, bits <= maxPQBits else {
                throw refuse("PQ nbits must be 1...\(maxPQBits), got '\(parts[1])'")
            }
        }
        return m
    }
}
