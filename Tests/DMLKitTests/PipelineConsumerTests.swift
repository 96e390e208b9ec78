// Uses DMLKit as an app does: plain `import`, public API only.
import DMLKit
import DMLRuntime
import Foundation
import Testing

private let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
private let fixtures = repository.appendingPathComponent("Tests/Fixtures/pipeline")
private let poseModel = repository.appendingPathComponent("models/pose-logratio-d128.safetensors")
private let smallModel = repository.appendingPathComponent("models/pose-logratio-d16.safetensors")

private func source(captions: Bool = false) -> PeopleSource {
    PeopleSource(keypoints: fixtures.appendingPathComponent("person_keypoints.json"), images: fixtures.appendingPathComponent("images"),
                 captions: captions ? fixtures.appendingPathComponent("captions.json") : nil)
}

private func scratch() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("dmlkit-pipeline-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

private func cosine(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).map(*).reduce(0, +) / ((a.map { $0 * $0 }.reduce(0, +)).squareRoot() * (b.map { $0 * $0 }.reduce(0, +)).squareRoot())
}

/// The people set of `Tests/Fixtures/pipeline` (two people in one image, an EXIF-rotated JPEG, a CMYK JPEG, an
/// annotation without a box, one too weak to compare) through `GalleryBuilder`, the way an app would.
@Suite struct PipelineConsumerTests {
    @Test func eachPersonIsEmbeddedFromTheirOwnCrop() throws {
        let model = try EmbeddingModel.load(contentsOf: poseModel)
        var builder = GalleryBuilder(imageModel: model)
        builder.policy = .skipAndReport
        let progress = ProgressLog()
        builder.progress = { progress.append($0) }
        let root = try scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        let directory = root.appendingPathComponent("gallery")
        let summary = try builder.build(into: directory, from: source())

        // The weak annotation is left out and named, with the reason.
        #expect(summary.added == 5)
        #expect(summary.skippedAnnotations.map(\.annotationID) == [51])
        #expect(summary.skippedAnnotations.first?.reason.contains("labelled joints") == true)
        #expect(progress.stages.contains(.checking) && progress.stages.contains(.embedding))

        let gallery = try Gallery(directory: directory, spaces: [try model.gallerySpace()], access: .readOnly)
        let reader = try GalleryReader(directory: directory)
        let items = try reader.items().map(\.item)
        #expect(Set(items.map(\.key)) == ["two-11", "two-12", "rotated", "cmyk", "nobox"])
        let coco = try COCOKeypoints.read(contentsOf: source().keypoints)
        for item in items {
            // The stored embedding is the model's embedding of the stored crop of the decoded file.
            let crop = try #require(item.crop)
            let image = try RGBImage(contentsOf: URL(fileURLWithPath: try #require(item.image)))
            let expected = try model.embed(image: image, box: crop)
            let stored = try gallery.embedding(key: item.key, space: "image")
            #expect(stored.count == expected.count)
            #expect(zip(stored, expected).allSatisfy { abs($0 - $1) <= 1e-5 })
            // The crop holds the person's box (or labelled keypoints), lies in the image and is square like the input.
            let person = try #require(coco.first { item.key.hasSuffix("\($0.annotationID)") || item.key == ($0.fileName as NSString).deletingPathExtension })
            let region = person.bbox ?? {
                let k = person.pose.keypoints.filter(\.isLabelled)
                return [k.map(\.x).min()!, k.map(\.y).min()!, k.map(\.x).max()! - k.map(\.x).min()!, k.map(\.y).max()! - k.map(\.y).min()!]
            }()
            #expect(Double(crop.x) <= region[0] && Double(crop.y) <= region[1])
            #expect(Double(crop.x + crop.width) >= region[0] + region[2] && Double(crop.y + crop.height) >= region[1] + region[3])
            #expect(crop.x >= 0 && crop.y >= 0 && crop.x + crop.width <= image.width && crop.y + crop.height <= image.height)
            #expect(crop.width == crop.height || crop.width == image.width || crop.height == image.height)
        }
        // Two people in one image: two crops, two different embeddings.
        let left = try gallery.embedding(key: "two-11", space: "image"), right = try gallery.embedding(key: "two-12", space: "image")
        #expect(cosine(left, right) < 0.99)
        let leftCrop = try #require(items.first { $0.key == "two-11" }?.crop), rightCrop = try #require(items.first { $0.key == "two-12" }?.crop)
        #expect(leftCrop.x + leftCrop.width <= 64 + 8 && rightCrop.x >= 64 - 8)
        // The rotated JPEG is seen upright (64x96, as its annotation says) and its crop is in that frame.
        let rotated = try RGBImage(contentsOf: fixtures.appendingPathComponent("images/rotated.jpg"))
        #expect(rotated.width == 64 && rotated.height == 96)
        // Searching by a stored key finds that item first.
        #expect(try gallery.search(key: "cmyk", k: 3).first?.item.key == "cmyk")
    }

    @Test func refusedAnnotationsAndWrongModelsLeaveNothingBehind() throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        let directory = root.appendingPathComponent("gallery")
        let model = try EmbeddingModel.load(contentsOf: poseModel)
        // Under .refuse (the default) the weak annotation stops the build before anything is written.
        #expect {
            try GalleryBuilder(imageModel: model).build(into: directory, from: source())
        } throws: { "\($0)".contains("annotation 51") && "\($0)".contains("labelled joints") }
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.path).isEmpty)

        // A failure after the first batch (an image that vanishes mid-build) leaves no directory, no temporary one.
        let images = root.appendingPathComponent("images")
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("images"), to: images)
        var builder = GalleryBuilder(imageModel: model)
        builder.policy = .skipAndReport
        builder.batch = 1
        let doomed = images.appendingPathComponent("nobox.png").path
        builder.progress = { p in if p.stage == .embedding, p.done == 1 { try? FileManager.default.removeItem(atPath: doomed) } }
        #expect(throws: PipelineError.self) {
            try builder.build(into: directory, from: PeopleSource(keypoints: source().keypoints, images: images))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.path) == ["images"])

        // Adding with another model (16-d against 128-d) says so by the dimensions, and names the stored model.
        builder.progress = nil
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("images/nobox.png"), to: URL(fileURLWithPath: doomed))
        _ = try builder.build(into: directory, from: PeopleSource(keypoints: source().keypoints, images: images))
        var small = GalleryBuilder(imageModel: try EmbeddingModel.load(contentsOf: smallModel))
        small.policy = .skipAndReport
        let stored = try #require(model.galleryFingerprint)
        #expect {
            try small.add(to: directory, from: source(), skipExisting: true)
        } throws: { error in
            let text = "\(error)"
            return text.contains("16-d") && text.contains("128-d") && text.contains("another model") && text.contains(stored)
        }
    }

    @Test func anAnnotationFileForAnotherSizeOfTheImageIsRefused() throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        // The COCO file says cmyk.jpg is 64x80; the file is 64x64.
        var coco = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: source().keypoints)) as? [String: Any])
        var images = try #require(coco["images"] as? [[String: Any]])
        let index = try #require(images.firstIndex { $0["file_name"] as? String == "cmyk.jpg" })
        images[index]["height"] = 80
        coco["images"] = images
        let keypoints = root.appendingPathComponent("person_keypoints.json")
        try JSONSerialization.data(withJSONObject: coco).write(to: keypoints)
        var builder = GalleryBuilder(imageModel: try EmbeddingModel.load(contentsOf: poseModel))
        builder.policy = .skipAndReport
        let (people, skipped) = try builder.prepare(PeopleSource(keypoints: keypoints, images: source().images))
        #expect(people.count == 5 - 1)
        #expect(skipped.map(\.annotationID).sorted() == [31, 51])
        #expect(skipped.first { $0.annotationID == 31 }?.reason.contains("says 64x80 but cmyk.jpg is 64x64") == true)
    }

    @Test func aGalleryTheCLIBuiltOpensWithThePublicFingerprints() throws {
        let dml = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("dml")
        let binary = ProcessInfo.processInfo.environment["DML_BIN"].map(URL.init(fileURLWithPath:)) ?? dml
        try #require(FileManager.default.isExecutableFile(atPath: binary.path), "build the dml product first (swift build)")
        let root = try scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        let directory = root.appendingPathComponent("gallery")
        let textDirectory = repository.appendingPathComponent("models/text/all-MiniLM-L6-v2")
        let withText = FileManager.default.fileExists(atPath: textDirectory.appendingPathComponent("config.json").path)
        let process = Process()
        process.executableURL = binary
        process.arguments = ["gallery", "build", directory.path, "--coco", source().keypoints.path, "--images", source().images.path,
                             "--model", poseModel.path, "--skip-invalid"]
            + (withText ? ["--captions", fixtures.appendingPathComponent("captions.json").path, "--text-model", textDirectory.path] : [])
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0)

        let model = try EmbeddingModel.load(contentsOf: poseModel)
        var spaces = [try model.gallerySpace()]
        let captions = try withText ? CaptionModel(directory: textDirectory) : nil
        if let captions { spaces.append(captions.space()) }
        // Opening read-only checks every space's fingerprint against the store.
        let gallery = try Gallery(directory: directory, spaces: spaces, access: .readOnly)
        #expect(gallery.count == 5)
        if let captions {
            let caption = try #require(try GalleryReader(directory: directory).item(key: "cmyk").caption)
            #expect(try gallery.search(caption: caption, embedder: captions.embedder, k: 1).first?.item.key == "cmyk")
        }
    }
}

/// What an app written for Swift 6 concurrency needs: async builds and searches, a reader shared between tasks,
/// hits that round-trip through JSON with one score convention, errors that read as their message.
@Suite struct AppFacingAPITests {
    @Test func asyncBuildSharedReaderCodableHitsReadableErrors() async throws {
        let model = try EmbeddingModel.load(contentsOf: poseModel)
        var builder = GalleryBuilder(imageModel: model)
        builder.policy = .skipAndReport
        let root = try scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        let directory = root.appendingPathComponent("gallery")
        let summary = try await builder.build(into: directory, from: source())
        #expect(summary.added == 5)

        let reader = try GalleryReader(directory: directory)
        let counts = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<4 { group.addTask { try reader.count() } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(counts == [5, 5, 5, 5])

        let gallery = try Gallery(directory: directory, spaces: [try model.gallerySpace()], access: .readOnly)
        let query = try #require(try reader.item(key: "nobox").pose)
        let byPose = try await gallery.search(pose: query, k: 5)
        // Higher score is closer, the distance alongside: 1/(1+d) for poses, similarity and 1 - cosine for embeddings.
        #expect(byPose.first?.item.key == "nobox" && byPose.first?.distance == 0 && byPose.first?.score == 1)
        #expect(byPose.allSatisfy { abs(Double($0.score) - 1 / (1 + $0.distance)) < 1e-6 && $0.poseDistance == $0.distance })
        #expect(zip(byPose, byPose.dropFirst()).allSatisfy { $0.score >= $1.score && $0.distance <= $1.distance })
        let byExample = try await gallery.search(embedding: try gallery.embedding(key: "cmyk", space: "image"), space: "image", k: 5)
        #expect(byExample.allSatisfy { abs($0.distance - (1 - Double($0.score))) < 1e-6 })
        let decoded = try JSONDecoder().decode([GalleryHit].self, from: try JSONEncoder().encode(byExample))
        #expect(decoded == byExample)

        do {
            _ = try RGBImage(encoded: Data("not an image".utf8), source: "junk.bin")
            Issue.record("junk decoded")
        } catch {
            #expect(error.localizedDescription.hasPrefix("junk.bin: cannot decode"))
        }
        do {
            _ = try gallery.search(key: "no-such-key", k: 1)
            Issue.record("an unknown key was found")
        } catch {
            #expect(error.localizedDescription == "no item with key 'no-such-key' in the gallery")
        }
    }
}

/// Progress reports collected across the builder's callback.
private final class ProgressLog: @unchecked Sendable {
    private let lock = NSLock()
    private var reports: [BuildProgress] = []
    func append(_ p: BuildProgress) { lock.withLock { reports.append(p) } }
    var stages: Set<BuildProgress.Stage> { lock.withLock { Set(reports.map(\.stage)) } }
}
