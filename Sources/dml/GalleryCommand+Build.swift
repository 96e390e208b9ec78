import ArgumentParser
import DMLKit
import DMLRuntime
import Foundation

/// `dml gallery build`: people from a COCO keypoints file, their images embedded by the image model, their captions
/// (optionally) by the text model, added to a new gallery in batches (one transaction each); the index files are
/// saved once at the end.
struct GalleryBuildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "build", abstract: "Build a gallery from COCO person keypoints and images.")

    @Argument(help: "Gallery directory (created if needed).") var directory: String
    @OptionGroup var input: GalleryInputOptions
    @Option(help: "FAISS factory string of the derived indexes.") var factory = "Flat"
    @Flag(help: "Print as JSON.") var json = false

    func run() throws {
        let builder = try input.builder(factory: factory)
        let summary = try builder.build(directory: fileURL(directory), coco: input.coco, imageDirectory: input.images, captions: input.captions)
        if json { return try printJSON(summary) }
        print("built \(directory): \(summary.added) items (\(summary.spaces.joined(separator: ", ")) + pose) in "
              + String(format: "%.1f s", summary.seconds))
        summary.printCalibrations()
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

    func builder(factory: String) throws -> GalleryBuilder {
        guard (captions == nil) == (textModel == nil) else { throw CLIError("--captions and --text-model go together") }
        let imageModel = try loadImageModel(model)
        let captionModel = try textModel.map { try CaptionModel(directory: $0, factory: factory) }
        return GalleryBuilder(imageModel: imageModel, captionModel: captionModel, factory: factory, batch: batch,
                              calibrationSeed: calibrationSeed)
    }
}

/// The build pipeline, shared by `dml gallery build`, `dml gallery add` and `dml demo`.
struct GalleryBuilder {
    let imageModel: EmbeddingModel
    let captionModel: CaptionModel?
    var factory = "Flat"
    var batch = 64
    var calibrationSeed: UInt64 = 0

    struct Summary: Encodable {
        var added: Int
        var skipped = 0
        var count: Int
        var generation: Int64
        var spaces: [String]
        var seconds: Double
        var calibrations: [String: CalibrationSummary] = [:]

        func printCalibrations() {
            for (space, c) in calibrations.sorted(by: { $0.key < $1.key }) { print("calibration \(space): \(c.line)") }
        }
    }

    /// A new gallery in `directory` (refused if one with items is there).
    func build(directory: URL, coco: String, imageDirectory: String, captions: String?) throws -> Summary {
        if let existing = try? GalleryReader(directory: directory), let count = try? existing.count(), count > 0 {
            throw CLIError("\(directory.path) already holds a gallery of \(count) items: build into a new directory, or use `dml gallery add`")
        }
        let people = try PreparedPeople.load(coco: coco, imageDirectory: imageDirectory, captions: captions, needCaptions: captionModel != nil)
        return try add(people, to: directory, skipped: 0)
    }

    /// Adds people to the existing gallery in `directory`. Keys already stored are refused (nothing is added), or
    /// skipped with `skipExisting`; a gallery with other spaces or another model is refused.
    func add(directory: URL, coco: String, imageDirectory: String, captions: String?, skipExisting: Bool) throws -> Summary {
        let reader = try openReader(directory.path)
        let stored = Set(try reader.spaces().map(\.name))
        guard stored.contains("image") else { throw CLIError("\(directory.path) has no image space: not a gallery `dml gallery build` made") }
        if stored.contains(Gallery.captionSpace), captionModel == nil {
            throw CLIError("the gallery has a caption space: give --captions and --text-model")
        }
        if !stored.contains(Gallery.captionSpace), captionModel != nil {
            throw CLIError("the gallery has no caption space: leave out --captions and --text-model")
        }
        var people = try PreparedPeople.load(coco: coco, imageDirectory: imageDirectory, captions: captions, needCaptions: captionModel != nil)
        let storedKeys = Set(try reader.items().map(\.item.key))
        let existing = people.items.filter { storedKeys.contains($0.key) }
        if !existing.isEmpty && !skipExisting {
            throw CLIError("\(existing.count) of the \(people.items.count) items are already in the gallery (first: '\(existing[0].key)'); "
                + "nothing was added (--skip-existing adds only the new ones)")
        }
        people.items.removeAll { storedKeys.contains($0.key) }
        return try add(people, to: directory, skipped: existing.count)
    }

    private func add(_ people: PreparedPeople, to directory: URL, skipped: Int) throws -> Summary {
        guard batch >= 1 else { throw CLIError("--batch must be at least 1") }
        let start = DispatchTime.now().uptimeNanoseconds
        var spaces = [try imageSpace(imageModel, factory: factory)]
        if let captionModel { spaces.append(captionModel.space) }
        let gallery = try Gallery(directory: directory, spaces: spaces)
        let progress = ProgressLine("embedding", total: people.items.count)
        var added = 0
        for chunkStart in stride(from: 0, to: people.items.count, by: batch) {
            let chunk = Array(people.items[chunkStart..<min(chunkStart + batch, people.items.count)])
            let decoded = try chunk.map { try decodeImage($0.image ?? "") }
            var embeddings = ["image": try embedImages(decoded, with: imageModel)]
            if let captionModel { embeddings[Gallery.captionSpace] = captionModel.embedder.embed(chunk.map { $0.caption ?? "" }) }
            // Each batch commits on its own; the index files are written once, below (a run killed before that
            // leaves them stale, and the next open rebuilds them from the store).
            try gallery.add(chunk, embeddings: embeddings, saveIndexes: false)
            added += chunk.count
            progress.update(added)
        }
        progress.finish()
        try gallery.saveIndexes()
        let calibrations = try refreshCalibrations(gallery, seed: calibrationSeed)
        return Summary(added: added, skipped: skipped, count: gallery.count, generation: gallery.generation, spaces: spaces.map(\.name),
                       seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, calibrations: calibrations)
    }
}

/// People read from COCO files and checked before anything is written: images decode, keypoints lie inside them,
/// keys are unique, captions exist where needed. A bad input thus stops a build or add before its first batch.
struct PreparedPeople {
    var items: [GalleryItem]

    static func load(coco: String, imageDirectory: String, captions: String?, needCaptions: Bool) throws -> PreparedPeople {
        let people: [COCOPerson]
        do {
            people = try COCOKeypoints.read(contentsOf: fileURL(coco))
        } catch {
            throw CLIError("\(coco): \(error)")
        }
        guard !people.isEmpty else { throw CLIError("\(coco): no people with keypoints") }
        let captionsByImage = try captions.map(readCaptions) ?? [:]
        // One person per image keys by file stem; images with several people key each by annotation id too.
        let perImage = Dictionary(grouping: people, by: \.imageID).mapValues(\.count)
        let imageRoot = fileURL(imageDirectory).standardizedFileURL
        let progress = ProgressLine("checking", total: people.count)
        var items: [GalleryItem] = []
        var keys = Set<String>()
        for (i, person) in people.enumerated() {
            let path = imageRoot.appendingPathComponent(person.fileName).path
            let image = try decodeImage(path)
            try checkInside(person, width: image.width, height: image.height, source: coco)
            let stem = (person.fileName as NSString).deletingPathExtension
            let key = (perImage[person.imageID] ?? 1) > 1 ? "\(stem)-\(person.annotationID)" : stem
            guard keys.insert(key).inserted else { throw CLIError("\(coco): two people get the key '\(key)'") }
            let caption = captionsByImage[person.imageID]?.first
            if needCaptions, caption == nil { throw CLIError("\(captions ?? "captions"): no caption for image \(person.imageID)") }
            let metadata = #"{"annotation_id": \#(person.annotationID), "image_id": \#(person.imageID)}"#
            let item = GalleryItem(key: key, image: path, caption: caption, pose: person.pose, metadata: metadata)
            do { try item.validate() } catch { throw CLIError("\(coco): annotation \(person.annotationID) (\(person.fileName)): \(error)") }
            items.append(item)
            if i % 256 == 0 { progress.update(i) }
        }
        progress.finish()
        return PreparedPeople(items: items)
    }

    /// Labelled keypoints must lie in the image (0...width, 0...height): outside, they do not describe it.
    static func checkInside(_ person: COCOPerson, width: Int, height: Int, source: String) throws {
        for (j, k) in person.pose.keypoints.enumerated() where k.isLabelled {
            guard (0...Double(width)).contains(k.x), (0...Double(height)).contains(k.y) else {
                throw CLIError("\(source): annotation \(person.annotationID) (\(person.fileName)): keypoint \(Pose.jointNames[j]) at "
                    + "(\(k.x), \(k.y)) lies outside the \(width)x\(height) image")
            }
        }
    }
}
