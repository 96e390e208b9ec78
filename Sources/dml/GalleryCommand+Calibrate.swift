import ArgumentParser
import DMLKit
import Foundation

/// `dml gallery calibrate`: (re)fits the map from embedding distance to pose distance that `--within` uses for
/// example and caption queries. `build`, `add` and `remove` refit stale calibrations themselves.
struct GalleryCalibrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate", abstract: "Fit each space's map from embedding distance to pose distance, and report its error.")

    @Argument(help: "Gallery directory.") var directory: String
    @Option(help: "Space to calibrate (default: every space).") var space: [String] = []
    @Option(help: "Seed of the pair sample.") var seed: UInt64 = 0
    @Flag(help: "Print as JSON.") var json = false

    func run() throws {
        let reader = try openReader(directory)
        let gallery = try Gallery(directory: reader.directory, spaces: try reader.spaces())
        let names = space.isEmpty ? gallery.spaces.map(\.name) : space
        var result: [String: CalibrationSummary] = [:]
        let progress = ProgressLine("calibrating", total: names.count)
        for (i, name) in names.enumerated() {
            result[name] = CalibrationSummary(try gallery.calibrate(space: name, settings: .init(seed: seed)), current: gallery.generation)
            progress.update(i + 1)
        }
        progress.finish()
        if json { return try printJSON(result) }
        for (name, c) in result.sorted(by: { $0.key < $1.key }) { print("calibration \(name): \(c.line)") }
    }
}

/// What `info`, `build`, `add`, `remove` and `calibrate` report about a calibration.
struct CalibrationSummary: Encodable {
    struct Range: Encodable {
        var threshold: Double, precision: Double?, recall: Double?, calibratedCount: Int, exactCount: Int
        enum CodingKeys: String, CodingKey {
            case threshold, precision, recall, calibratedCount = "calibrated_count", exactCount = "exact_count"
        }

        /// Undefined precision or recall (nothing returned, nothing within) is written as null, not left out.
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(threshold, forKey: .threshold)
            try c.encode(precision, forKey: .precision)
            try c.encode(recall, forKey: .recall)
            try c.encode(calibratedCount, forKey: .calibratedCount)
            try c.encode(exactCount, forKey: .exactCount)
        }
    }

    var generation: Int64
    var current: Bool
    var seed: UInt64
    var knots: Int
    var fitPairs: Int
    var heldOutPairs: Int
    var heldOutMAE: Double
    var heldOutConstantMAE: Double
    var heldOutRange: [Range]

    enum CodingKeys: String, CodingKey {
        case generation, current, seed, knots, fitPairs = "fit_pairs", heldOutPairs = "held_out_pairs",
             heldOutMAE = "held_out_mae", heldOutConstantMAE = "held_out_constant_mae", heldOutRange = "held_out_range"
    }

    init(_ c: DistanceCalibration, current generation: Int64) {
        self.generation = c.generation
        current = c.generation == generation
        seed = c.settings.seed
        knots = c.knots.count
        fitPairs = c.fitPairs
        heldOutPairs = c.heldOutPairs
        heldOutMAE = c.heldOutMeanAbsoluteError
        heldOutConstantMAE = c.heldOutConstantError
        heldOutRange = c.heldOutRange.map {
            Range(threshold: $0.threshold, precision: $0.precision, recall: $0.recall, calibratedCount: $0.calibratedCount, exactCount: $0.exactCount)
        }
    }

    /// One line: error in torso lengths, then precision/recall per threshold.
    var line: String {
        func percent(_ v: Double?) -> String { v.map { String(format: "%.0f%%", 100 * $0) } ?? "-" }
        let ranges = heldOutRange.map { "≤\($0.threshold): P \(percent($0.precision)) R \(percent($0.recall))" }.joined(separator: ", ")
        return String(format: "held-out MAE %.3f torso lengths (a constant: %.3f) on %d pairs; ", heldOutMAE, heldOutConstantMAE, heldOutPairs)
            + "range \(ranges); fitted at generation \(generation)\(current ? "" : " (stale)") on \(fitPairs) pairs, \(knots) knots"
    }
}
