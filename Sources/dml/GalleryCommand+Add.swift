import ArgumentParser
import DMLKit
import Foundation

/// `dml gallery add`: more people into an existing gallery, with the inputs of `build` and the same model(s).
struct GalleryAddCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add", abstract: "Add people (COCO keypoints + images) to an existing gallery built with the same models.")

    @Argument(help: "Gallery directory.") var directory: String
    @OptionGroup var input: GalleryInputOptions
    @Flag(help: "Skip people whose key is already stored (e.g. to finish an interrupted add) instead of refusing.")
    var skipExisting = false
    @Flag(help: "Print as JSON.") var json = false

    func run() throws {
        _ = try openReader(directory)
        let printer = ProgressPrinter()
        let summary = try input.builder(factory: "Flat", printer: printer).add(
            to: fileURL(directory), from: input.source, skipExisting: skipExisting)
        printer.finish()
        if json { return try printJSON(BuildReport(summary)) }
        print("added \(summary.added) items to \(directory)" + (summary.skippedExisting > 0 ? " (\(summary.skippedExisting) already there, skipped)" : "")
              + ": \(summary.count) items, generation \(summary.generation), " + String(format: "%.1f s", summary.seconds))
        BuildReport(summary).printDetails()
    }
}

/// `dml gallery remove`: items by key, all or nothing.
struct GalleryRemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove items by key (all or nothing).")

    @Argument(help: "Gallery directory.") var directory: String
    @Option(help: "Key of an item to remove (repeatable).") var key: [String] = []
    @Option(help: "File with one key per line (blank lines ignored).") var keysFile: String?
    @Option(help: "Seed of the calibration's pair sample.") var calibrationSeed: UInt64 = 0
    @Flag(help: "Print as JSON.") var json = false

    struct Summary: Encodable {
        var removed: Int
        var count: Int
        var generation: Int64
        var calibrations: [String: CalibrationSummary]
    }

    func run() throws {
        var keys = key
        if let keysFile {
            let text: String
            do { text = try String(contentsOf: fileURL(keysFile), encoding: .utf8) } catch {
                throw CLIError("\(keysFile): cannot read (\(error.localizedDescription))")
            }
            keys += text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        guard !keys.isEmpty else { throw CLIError("give --key or --keys-file") }
        let reader = try openReader(directory)
        let gallery = try Gallery(directory: reader.directory, spaces: try reader.spaces())
        // Any unknown key refuses the whole removal: a typo must not leave a half-done edit.
        let (removed, calibrations) = try gallery.remove(keys: keys, requireAll: true, refreshingCalibrations: .init(seed: calibrationSeed))
        let generation = gallery.generation
        let summary = Summary(removed: removed, count: gallery.count, generation: generation,
                              calibrations: calibrations.mapValues { CalibrationSummary($0, current: generation) })
        if json { return try printJSON(summary) }
        print("removed \(removed) items from \(directory): \(summary.count) items, generation \(summary.generation)")
        for (space, c) in summary.calibrations.sorted(by: { $0.key < $1.key }) { print("calibration \(space): \(c.line)") }
    }
}
