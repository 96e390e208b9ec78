import ArgumentParser
import DMLKit
import DMLRuntime
import Foundation

/// `dml gallery build`: people from a COCO keypoints file, their images embedded by the image model, their captions
/// (optionally) by the text model, added to the gallery in batches (one transaction each).
struct GalleryBuildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "build", abstract: "Build a gallery from COCO person keypoints and images.")

    @Argument(help: "Gallery directory (created if needed).") var directory: String
    @Option(help: "COCO person-keypoints JSON.") var coco: String
    @Option(help: "Folder holding the images named in --coco.") var images: String
    @Option(help: "Image model (.safetensors).") var model: String
    @Option(help: "COCO captions JSON (needs --text-model).") var captions: String?
    @Option(help: "Text model directory (Hugging Face layout) for the caption space.") var textModel: String?
    @Option(help: "FAISS factory string of the derived indexes.") var factory = "Flat"
    @Option(help: "Items per batch (one transaction each).") var batch = 64

    func run() throws {
        guard (captions == nil) == (textModel == nil) else { throw CLIError("--captions and --text-model go together") }
        let imageModel = try loadImageModel(model)
        let captionModel = try textModel.map { try CaptionModel(directory: $0, factory: factory) }
        let summary = try GalleryBuilder(imageModel: imageModel, captionModel: captionModel, factory: factory, batch: batch)
            .build(directory: fileURL(directory), coco: coco, imageDirectory: images, captions: captions)
        print("built \(directory): \(summary.added) items (\(summary.spaces.joined(separator: ", ")) + pose) in "
              + String(format: "%.1f s", summary.seconds))
    }
}

/// The build pipeline, shared by `dml gallery build` and `dml demo`.
struct GalleryBuilder {
    let imageModel: EmbeddingModel
    let captionModel: CaptionModel?
    var factory = "Flat"
    var batch = 64

    struct Summary {
        var added: Int
        var spaces: [String]
        var seconds: Double
    }

    func build(directory: URL, coco: String, imageDirectory: String, captions: String?) throws -> Summary {
        guard batch >= 1 else { throw CLIError("--batch must be at least 1") }
        let start = DispatchTime.now().uptimeNanoseconds
        let people: [COCOPerson]
        do {
            people = try COCOKeypoints.read(contentsOf: fileURL(coco))
        } catch {
            throw CLIError("\(coco): \(error)")
        }
        guard !people.isEmpty else { throw CLIError("\(coco): no people with keypoints") }
        let captionsByImage = try captions.map(readCaptions) ?? [:]
        var spaces = [try imageSpace(imageModel, factory: factory)]
        if let captionModel { spaces.append(captionModel.space) }
        if let existing = try? GalleryReader(directory: directory), let count = try? existing.count(), count > 0 {
            throw CLIError("\(directory.path) already holds a gallery of \(count) items: build into a new directory")
        }
        let gallery = try Gallery(directory: directory, spaces: spaces)

        // One person per image keys by file stem; images with several people key each by annotation id too.
        let perImage = Dictionary(grouping: people, by: \.imageID).mapValues(\.count)
        let imageRoot = fileURL(imageDirectory).standardizedFileURL
        let progress = ProgressLine("embedding", total: people.count)
        var added = 0
        for chunkStart in stride(from: 0, to: people.count, by: batch) {
            let chunk = people[chunkStart..<min(chunkStart + batch, people.count)]
            var items: [GalleryItem] = []
            var decoded: [RGBImage] = []
            var texts: [String] = []
            for person in chunk {
                let path = imageRoot.appendingPathComponent(person.fileName).path
                decoded.append(try decodeImage(path))
                let stem = (person.fileName as NSString).deletingPathExtension
                let key = (perImage[person.imageID] ?? 1) > 1 ? "\(stem)-\(person.annotationID)" : stem
                let caption = captionsByImage[person.imageID]?.first
                if captionModel != nil {
                    guard let caption else { throw CLIError("\(captions ?? "captions"): no caption for image \(person.imageID)") }
                    texts.append(caption)
                }
                let metadata = #"{"annotation_id": \#(person.annotationID), "image_id": \#(person.imageID)}"#
                items.append(GalleryItem(key: key, image: path, caption: caption, pose: person.pose, metadata: metadata))
            }
            var embeddings = ["image": try embedImages(decoded, with: imageModel)]
            if let captionModel { embeddings[Gallery.captionSpace] = captionModel.embedder.embed(texts) }
            try gallery.add(items, embeddings: embeddings)
            added += items.count
            progress.update(added)
        }
        progress.finish()
        return Summary(added: added, spaces: spaces.map(\.name), seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
}
