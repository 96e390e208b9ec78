import DMLKit

/// Uniform doubles in [0, 1) from `SplitMix64`: the same test data on every run.
struct Rng {
    private var generator: SplitMix64
    init(state: UInt64) { generator = SplitMix64(seed: state) }
    mutating func next() -> Double { generator.nextUnit() }
}
