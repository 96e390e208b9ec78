import ArgumentParser
import DMLKit
import DMLRuntime
import Foundation

/// `dml gallery build`: people from a COCO keypoints file, each embedded from their crop by the image model, their
/// captions (optionally) by the text model, into a new gallery (`GalleryBuilder`).
struct GalleryBuildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "build", abstract: "Build a gallery from COCO person keypoints and images.")

    @Argument(help: "Gallery directory (created; must not exist or be an empty folder).") var directory: String
    @OptionGroup var input: GalleryInputOptions
    @Option(help: "FAISS factory string of the derived indexes.") var factory = "Flat"
    @Flag(help: "Print as JSON.") var json = false

    func run() throws {
        let printer = ProgressPrinter()
        let summary = try input.builder(factory: factory, printer: printer).build(into: fileURL(directory), from: input.source)
        printer.finish()
        if json { return try printJSON(BuildReport(summary)) }
        print("built \(directory): \(summary.added) items (\(summary.spaces.joined(separator: ", ")) + pose) in "
              + String(format: "%.1f s", summary.seconds))
        BuildReport(summary).printDetails()
    }
}

/// The inputs `build` and `add` share.
struct GalleryInputOptions: ParsableArguments {
    @Option(help: "COCO person-keypoints JSON.") var coco: String
    @Option(help: "Folder holding the images named in --coco.") var images: String
    @Option(help: "Image model (.safetensors).") var model: String
    @Option(help: "COCO captions JSON (needs --text-model).") var captions: String?
    @Option(help: "Text model directory (Hugging Face layout) for the caption space.") var textModel: String?
    @Option(help: "Items per batch (one transaction each).") var batch = 64
    @Option(help: "Seed of the calibration's pair sample.") var calibrationSeed: UInt64 = 0
    @Flag(help: "Leave out annotations that cannot become items (and list them) instead of refusing the whole input.")
    var skipInvalid = false
    @Flag(help: "Embed whole images instead of each person's crop (bbox, or keypoint extent, plus a margin).")
    var wholeImages = false

    var source: PeopleSource {
        PeopleSource(keypoints: fileURL(coco), images: fileURL(images), captions: captions.map(fileURL))
    }

    func builder(factory: String, printer: ProgressPrinter) throws -> GalleryBuilder {
        guard (captions == nil) == (textModel == nil) else { throw CLIError("--captions and --text-model go together") }
        guard batch >= 1 else { throw CLIError("--batch must be at least 1") }
        var builder = GalleryBuilder(imageModel: try loadImageModel(model), captionModel: try textModel.map(loadCaptionModel))
        builder.imageModelName = model
        builder.factory = factory
        builder.batch = batch
        builder.calibrationSeed = calibrationSeed
        builder.policy = skipInvalid ? .skipAndReport : .refuse
        if wholeImages { builder.cropping = nil }
        builder.progress = { printer.report($0) }
        return builder
    }
}

/// What `build` and `add` print: the library's summary with calibrations as the CLI reports them.
struct BuildReport: Encodable {
    var added: Int
    var skipped: Int
    var skippedAnnotations: [SkippedAnnotation]
    var count: Int
    var generation: Int64
    var spaces: [String]
    var seconds: Double
    var calibrations: [String: CalibrationSummary]

    enum CodingKeys: String, CodingKey {
        case added, skipped, skippedAnnotations = "skipped_annotations", count, generation, spaces, seconds, calibrations
    }

    init(_ s: BuildSummary) {
        added = s.added
        skipped = s.skippedExisting
        skippedAnnotations = s.skippedAnnotations
        count = s.count
        generation = s.generation
        spaces = s.spaces
        seconds = s.seconds
        calibrations = s.calibrations.mapValues { CalibrationSummary($0, current: s.generation) }
    }

    func printDetails() {
        for skipped in skippedAnnotations {
            print("skipped annotation \(skipped.annotationID) (\(skipped.fileName)): \(skipped.reason)")
        }
        for (space, c) in calibrations.sorted(by: { $0.key < $1.key }) { print("calibration \(space): \(c.line)") }
    }
}
