import Testing

@testable import DMLRuntime

@Suite struct ArenaPlannerTests {
    private struct Rng {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
    }

    /// The most elements alive at one step: no layout can be smaller.
    private func peakAlive(_ buffers: [ArenaPlanner.Buffer]) -> Int {
        let steps = Set(buffers.flatMap { [$0.first, $0.last] })
        return steps.map { step in
            buffers.filter { $0.first <= step && step <= $0.last }.reduce(0) { $0 + $1.size }
        }.max() ?? 0
    }

    @Test func buffersAliveTogetherNeverOverlapAndTheArenaHoldsThemAll() {
        var rng = Rng(state: 5)
        for round in 0..<200 {
            let count = 1 + rng.next(40)
            let buffers = (0..<count).map { _ -> ArenaPlanner.Buffer in
                let first = rng.next(30) - 1
                return .init(size: 1 + rng.next(5000), first: first, last: first + rng.next(12))
            }
            let (offsets, total) = ArenaPlanner.place(buffers)
            for i in buffers.indices {
                #expect(offsets[i] % ArenaPlanner.alignment == 0)
                #expect(offsets[i] >= 0 && offsets[i] + buffers[i].size <= total, "round \(round) buffer \(i) outside")
                for j in buffers.indices where j > i {
                    let a = buffers[i], b = buffers[j]
                    guard a.first <= b.last && b.first <= a.last else { continue }
                    let apart = offsets[i] + a.size <= offsets[j] || offsets[j] + b.size <= offsets[i]
                    #expect(apart, "round \(round): buffers \(i) and \(j) are alive together and overlap")
                }
            }
            #expect(total >= peakAlive(buffers))
        }
    }

    @Test func aDenseNetLikeBlockNeedsLittleMoreThanWhatIsAliveAtOnce() {
        // Six layers: each reads the concatenation of every earlier output (kept alive to the block's end) and
        // writes 32 channels; concatenations grow by 32 channels and die after their one reader.
        let pixels = 3136
        var buffers: [ArenaPlanner.Buffer] = [.init(size: 64 * pixels, first: -1, last: 13)]  // block input
        for layer in 0..<6 {
            let step = 2 * layer
            buffers.append(.init(size: (64 + 32 * layer) * pixels, first: step, last: step + 1))  // concat
            buffers.append(.init(size: 32 * pixels, first: step + 1, last: 13))  // layer output
        }
        buffers.append(.init(size: 256 * pixels, first: 13, last: 14))  // the block's concatenation
        let (_, total) = ArenaPlanner.place(buffers)
        #expect(Double(total) <= 1.25 * Double(peakAlive(buffers)), "arena \(total) vs alive \(peakAlive(buffers))")
    }
}
