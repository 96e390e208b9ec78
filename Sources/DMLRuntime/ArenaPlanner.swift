/// Places a graph's values in one arena so that values alive at the same time never share memory.
///
/// Greedy by size: the largest buffers are placed first, each at the lowest offset that does not overlap a
/// placed buffer whose lifetime overlaps its own. On graphs where many values stay alive (DenseNet's
/// concatenations) this needs far less than reusing whole per-value slots, which only grow.
struct ArenaPlanner {
    /// One buffer to place: `size` elements, alive from step `first` through step `last` (inclusive).
    struct Buffer {
        var size: Int
        var first: Int
        var last: Int
    }

    /// Offsets are multiples of this many elements (64 bytes of Float), so every buffer stays aligned.
    static let alignment = 16

    /// Each buffer's offset, and the arena's size, in elements.
    static func place(_ buffers: [Buffer]) -> (offsets: [Int], total: Int) {
        func rounded(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }
        let order = buffers.indices.sorted {
            let a = buffers[$0], b = buffers[$1]
            return a.size != b.size ? a.size > b.size : (a.first != b.first ? a.first < b.first : $0 < $1)
        }
        var offsets = Array(repeating: 0, count: buffers.count)
        var placed: [Int] = []
        var total = 0
        for index in order {
            let buffer = buffers[index]
            let size = rounded(max(buffer.size, 1))
            // Placed buffers alive at the same time, by offset: take the first gap that fits.
            let busy = placed.filter { other in
                buffers[other].first <= buffer.last && buffer.first <= buffers[other].last
            }.map { (offsets[$0], offsets[$0] + rounded(max(buffers[$0].size, 1))) }.sorted { $0.0 < $1.0 }
            var offset = 0
            for (start, end) in busy {
                if start - offset >= size { break }
                offset = max(offset, end)
            }
            offsets[index] = offset
            placed.append(index)
            total = max(total, offset + size)
        }
        return (offsets, total)
    }
}
