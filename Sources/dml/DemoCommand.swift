import ArgumentParser
import DMLIndex
import DMLKit
import DMLNpy
import DMLRuntime
import Foundation

/// `dml demo`: the main job end to end with no arguments. Generates synthetic people with the shipped Python
/// generator, embeds them with the shipped pose model (and captions with the MiniLM text model when
/// `models/text` holds it), builds a gallery, queries it by example, by pose and by caption, prints the results and
/// graded metrics against pose distance, and writes a contact sheet of the queries and their top results.
/// Run from the repository root (`make demo`).
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "demo", abstract: "Build and query a gallery of synthetic people.")

    @Option(help: "People in the gallery.") var count = 2000
    @Option(help: "Queries for the metrics table.") var evalQueries = 200
    @Option(help: "Random seed of the generated people.") var seed = 7
    @Option(help: "Output folder.") var out = "out/demo"
    @Option(help: "Image model.") var model = "models/pose-logratio-resnet112-d128.safetensors"
    @Option(help: "Text model directory (or a folder holding one); skipped when absent.") var textModel = "models/text"
    @Flag(help: "Embed whole images instead of each person's crop.") var wholeImages = false

    func run() throws {
        guard count >= 60, evalQueries >= 1 else { throw CLIError("demo needs --count >= 60 and --eval-queries >= 1") }
        var clock = StepClock()
        let root = fileURL(out)
        let python = try locatePython()
        let textDirectory = locateTextModel(textModel)

        var imageModel: EmbeddingModel?
        var captionModel: CaptionModel?
        try clock.step("load models") {
            imageModel = try loadImageModel(model)
            captionModel = try textDirectory.map(loadCaptionModel)
        }
        guard let imageModel else { return }
        let side = generatedSide(forModelInput: imageModel.inputShape.last ?? 64)
        try clock.step("generate \(count) people + 6 queries (\(side) px)") {
            try generate(python: python, into: root.appendingPathComponent("people"), count: count, seed: seed, size: side)
            try generate(python: python, into: root.appendingPathComponent("queries"), count: 6, seed: seed + 1, size: side)
        }
        if textDirectory == nil { print("(no text model in \(textModel): run `make text-model` for caption queries)") }

        let galleryURL = root.appendingPathComponent("gallery")
        try clock.step("build gallery (embed + index)") {
            try? FileManager.default.removeItem(at: galleryURL)
            let people = root.appendingPathComponent("people")
            var builder = GalleryBuilder(imageModel: imageModel, captionModel: captionModel)
            if wholeImages { builder.cropping = nil }
            let printer = ProgressPrinter()
            builder.progress = { printer.report($0) }
            let summary = try builder.build(
                into: galleryURL,
                from: PeopleSource(keypoints: people.appendingPathComponent("person_keypoints.json"),
                                   images: people.appendingPathComponent("images"),
                                   captions: captionModel == nil ? nil : people.appendingPathComponent("captions.json")))
            printer.finish()
            print("gallery: \(summary.added) items, spaces \(summary.spaces.joined(separator: ", ")) + pose, in \(galleryURL.path)")
        }

        var rows: [[RGBImage?]] = []
        try clock.step("queries") {
            rows = try runQueries(gallery: galleryURL, queries: root.appendingPathComponent("queries"), imageModel: imageModel,
                                  captionModel: captionModel)
        }
        try clock.step("metrics (\(evalQueries) queries, leave-one-out)") {
            try printMetrics(gallery: galleryURL, hasCaptions: captionModel != nil)
        }
        let sheet = root.appendingPathComponent("contact-sheet.png")
        try clock.step("contact sheet") {
            let image = try ContactSheet(cellSize: 96, gap: 4, queryGap: 20).render(rows)
            try image.pngData().write(to: sheet, options: .atomic)
            print("contact sheet: \(sheet.path) (\(image.width)x\(image.height); each row a query, then its top results)")
        }
        print("\n| step | seconds |\n|---|---|")
        for (name, seconds) in clock.steps { print("| \(name) | \(String(format: "%.1f", seconds)) |") }
        print("| total | \(String(format: "%.1f", clock.steps.map(\.1).reduce(0, +))) |")
    }

    // MARK: Steps

    private func locatePython() throws -> String {
        let path = ProcessInfo.processInfo.environment["DML_PYTHON"] ?? ".venv/bin/python"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw CLIError("no Python at \(path): run `make setup-python` from the repository root, or set DML_PYTHON")
        }
        return path
    }

    /// `models/text` itself when it is a model directory, else the first model directory inside it.
    private func locateTextModel(_ path: String) -> String? {
        let manager = FileManager.default
        if manager.fileExists(atPath: path + "/config.json") { return path }
        let children = (try? manager.contentsOfDirectory(atPath: path))?.sorted() ?? []
        return children.map { path + "/" + $0 }.first { manager.fileExists(atPath: $0 + "/config.json") }
    }

    /// The generated image side for a model of this input side: 64 px people for the 64 px models; for a crop
    /// model, people generated as large as it was trained on (160 px for a 112 px crop: the person's crop then
    /// holds about as many pixels as the model's input, so crops are not upsampled).
    private func generatedSide(forModelInput side: Int) -> Int {
        side <= 64 ? 64 : Int((Double(side) * 10 / 7).rounded())
    }

    private func generate(python: String, into folder: URL, count: Int, seed: Int, size: Int) throws {
        if alreadyGenerated(folder, count: count, seed: seed, size: size) {
            print("reusing \(folder.path) (same count and seed; delete it to regenerate)")
            return
        }
        let process = Process()
        process.executableURL = fileURL(python)
        process.arguments = ["-m", "dmlkit.data.people.generate", "--out", folder.path, "--count", "\(count)", "--seed", "\(seed)",
                             "--size", "\(size)", "--quiet", "--workers", "\(min(2, ProcessInfo.processInfo.activeProcessorCount))"]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        do { try process.run() } catch { throw CLIError("cannot run \(python): \(error.localizedDescription)") }
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let last = String(decoding: message, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? "exit \(process.terminationStatus)"
            throw CLIError("the people generator failed: \(last)")
        }
    }

    /// True when `folder` holds a complete earlier run of the generator with these settings.
    private func alreadyGenerated(_ folder: URL, count: Int, seed: Int, size: Int) -> Bool {
        guard let data = try? Data(contentsOf: folder.appendingPathComponent("person_keypoints.json")),
              let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let info = root["info"] as? [String: Any],
              (info["count"] as? NSNumber)?.intValue == count, (info["seed"] as? NSNumber)?.intValue == seed,
              (info["size"] as? NSNumber)?.intValue == size
        else { return false }
        let last = folder.appendingPathComponent("images").appendingPathComponent(String(format: "%06d.png", count - 1))
        return FileManager.default.fileExists(atPath: folder.appendingPathComponent("captions.json").path)
            && FileManager.default.fileExists(atPath: last.path)
    }

    /// Runs the example, pose and caption queries; returns contact-sheet rows (query image, then results).
    private func runQueries(gallery url: URL, queries: URL, imageModel: EmbeddingModel, captionModel: CaptionModel?) throws -> [[RGBImage?]] {
        var spaces = [try imageModel.gallerySpace()]
        if let captionModel { spaces.append(captionModel.space()) }
        let gallery = try Gallery(directory: url, spaces: spaces)
        let query = GalleryQuery(reader: try GalleryReader(directory: url))
        let people = try COCOKeypoints.read(contentsOf: queries.appendingPathComponent("person_keypoints.json"))
        let shown = 8
        var rows: [[RGBImage?]] = []

        func show(_ title: String, _ hits: [GalleryHit], queryImage: RGBImage?, queryPose: Pose?) throws {
            print("\n\(title)")
            try printHits(Array(query.annotate(hits, queryPose: queryPose).prefix(5)), json: false)
            rows.append([queryImage] + hits.prefix(shown).map { hit in hit.item.image.flatMap { try? RGBImage(contentsOf: fileURL($0)) } })
        }

        for person in people.prefix(3) {
            let (image, embedding) = try exampleQuery(person, queries: queries, imageModel: imageModel)
            let hits = try gallery.search(embedding: embedding, space: "image", k: shown)
            try show("By example: query image \(person.fileName) (held out), pose model", hits, queryImage: image, queryPose: person.pose)
        }
        try showRange(gallery: gallery, people: Array(people.prefix(3)), queries: queries, imageModel: imageModel)
        for person in people.dropFirst(3).prefix(2) {
            let image = try? RGBImage(contentsOf: queries.appendingPathComponent("images").appendingPathComponent(person.fileName))
            let hits = try gallery.search(pose: person.pose, k: shown)
            try show("By pose: keypoints of \(person.fileName) (held out), exact pose distance", hits, queryImage: image, queryPose: person.pose)
        }
        if let captionModel {
            for text in ["a person sitting cross-legged", "someone lying face down", "a person jumping with legs apart"] {
                let hits = try gallery.search(caption: text, embedder: captionModel.embedder, k: shown)
                // A text query has no picture: a grey tile marks its row on the contact sheet.
                let tile = try RGBImage(width: 64, height: 64, pixels: [UInt8](repeating: 210, count: 64 * 64 * 3))
                try show("By caption: \"\(text)\" (MiniLM; contact-sheet row starts with a grey tile)", hits, queryImage: tile, queryPose: nil)
            }
        }
        return rows
    }

    /// A held-out query person's image and its embedding, cropped as the gallery's items are (from the query's own
    /// annotation) unless `--whole-images`.
    private func exampleQuery(_ person: COCOPerson, queries: URL, imageModel: EmbeddingModel) throws -> (image: RGBImage, embedding: [Float]) {
        let image = try decodeImage(queries.appendingPathComponent("images").appendingPathComponent(person.fileName).path)
        let box = wholeImages ? nil : try PersonCropping.forModel(imageModel).box(for: person, imageWidth: image.width, imageHeight: image.height)
        return (image, try imageModel.embed(image: image, box: box))
    }

    /// Calibrated range queries by example at the median radius of the gallery's pose distances: what they return
    /// against the exact pose range, then the calibration's own held-out precision and recall.
    private func showRange(gallery: Gallery, people: [COCOPerson], queries: URL, imageModel: EmbeddingModel) throws {
        guard let calibration = try gallery.calibration(space: "image"), let radius = calibration.heldOutRange.last?.threshold else { return }
        var returned = 0, correct = 0, within = 0
        for person in people {
            let embedding = try exampleQuery(person, queries: queries, imageModel: imageModel).embedding
            let hits = try gallery.search(embedding: embedding, space: "image", withinPoseDistance: radius)
                .withPoseDistances(to: person.pose, mirror: false)
            returned += hits.count
            correct += hits.filter { ($0.poseDistance ?? .infinity) <= radius }.count
            within += try gallery.search(pose: person.pose, within: radius).count
        }
        func percent(_ a: Int, _ b: Int) -> String { b == 0 ? "-" : String(format: "%.0f%%", 100 * Double(a) / Double(b)) }
        print("\nBy example within \(radius) torso lengths (calibrated range at the median pose distance), the \(people.count) queries above: "
              + "\(returned) returned, \(correct) truly within (precision \(percent(correct, returned))), of \(within) truly within (recall \(percent(correct, within)))")
        print("calibration image: " + CalibrationSummary(calibration, current: gallery.generation).line)
    }

    private func printMetrics(gallery url: URL, hasCaptions: Bool) throws {
        let evaluation = GalleryEvaluation(reader: try GalleryReader(directory: url))
        var reports = [("pose model (image space)", try evaluation.evaluate(space: "image", queries: evalQueries, seed: 1))]
        if hasCaptions {
            reports.append(("MiniLM caption space", try evaluation.evaluate(space: Gallery.captionSpace, queries: evalQueries, seed: 1)))
        }
        // Chance level: random unit vectors rank the gallery in random order.
        let (ids, _) = try evaluation.reader.embeddings(space: "image")
        var rng = SplitMix64(seed: 99)
        let random = FloatMatrix(rows: ids.count, columns: 16, values: (0..<ids.count * 16).map { _ in Float(rng.next() >> 40) / Float(1 << 24) - 0.5 })
        reports.append(("random ranking", try evaluation.evaluate(random, ids: ids, name: "random", queries: evalQueries, seed: 1)))

        print("\nGraded retrieval against pose distance (gain 1/(1+d); pose d = mean pose distance of the top K, torso lengths):")
        guard let first = reports.first else { return }
        print(first.1.table(title: first.0))
        for (title, report) in reports.dropFirst() { print(report.row(title)) }
        print(first.1.idealRow("ideal (ranked by pose distance)"))
    }
}

/// Wall-clock time per named step, printed as it goes.
struct StepClock {
    private(set) var steps: [(String, Double)] = []

    mutating func step(_ name: String, _ body: () throws -> Void) throws {
        fflush(nil)  // all C streams: keep stdout and the stderr step lines in order when both go to one terminal
        FileHandle.standardError.write(Data("» \(name)…\n".utf8))
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        steps.append((name, seconds))
        print("[\(name): \(String(format: "%.1f", seconds)) s]")
    }
}
