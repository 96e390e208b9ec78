import DMLRuntime
import Foundation

/// Names the pipeline gives gallery spaces.
public enum GalleryPipeline {
    /// The image model's space.
    public static let imageSpace = "image"
}

/// A people set on disk: a COCO person-keypoints file, the folder of the images it names, and optionally a COCO
/// captions file.
public struct PeopleSource: Sendable, Equatable {
    /// COCO person-keypoints JSON.
    public var keypoints: URL
    /// Folder holding the images named in `keypoints`.
    public var images: URL
    /// COCO captions JSON (needed when the builder has a caption model).
    public var captions: URL?

    /// A source with these files.
    public init(keypoints: URL, images: URL, captions: URL? = nil) {
        self.keypoints = keypoints
        self.images = images
        self.captions = captions
    }
}

/// What to do with an annotation that cannot become an item (a pose that can never be compared, keypoints outside
/// the image, a bad box, an image that does not decode or whose size disagrees with the annotation file, a missing
/// caption).
public enum AnnotationPolicy: Sendable, Equatable {
    /// Refuse the whole build or add; nothing is written.
    case refuse
    /// Leave the annotation out and report it (`BuildSummary.skippedAnnotations`).
    case skipAndReport
}

/// An annotation left out under `AnnotationPolicy.skipAndReport`, and why.
public struct SkippedAnnotation: Sendable, Equatable, Codable {
    /// The COCO annotation id.
    public var annotationID: Int64
    /// The image it belongs to.
    public var fileName: String
    /// Why it was left out.
    public var reason: String

    enum CodingKeys: String, CodingKey { case annotationID = "annotation_id", fileName = "file_name", reason }
}

/// Where a build or add is.
public struct BuildProgress: Sendable, Equatable {
    /// The stage.
    public enum Stage: String, Sendable, Equatable {
        /// Reading and checking annotations and images (nothing written yet).
        case checking
        /// Embedding and storing items, one transaction per batch.
        case embedding
        /// Refitting the distance calibrations.
        case calibrating
    }

    /// The stage.
    public var stage: Stage
    /// Units done in this stage (annotations, items or spaces).
    public var done: Int
    /// Units in this stage.
    public var total: Int
}

/// What a build or add did.
public struct BuildSummary: Sendable, Codable {
    /// Items added.
    public var added: Int
    /// People whose key was already stored and were skipped (`skipExisting`).
    public var skippedExisting: Int
    /// Annotations left out under `AnnotationPolicy.skipAndReport`.
    public var skippedAnnotations: [SkippedAnnotation]
    /// Items in the gallery afterwards.
    public var count: Int
    /// The store's generation afterwards.
    public var generation: Int64
    /// Embedding spaces filled.
    public var spaces: [String]
    /// Wall-clock seconds.
    public var seconds: Double
    /// The current calibrations by space (spaces with too few posed items have none).
    public var calibrations: [String: DistanceCalibration]
}

/// One person ready to add: the item (with its crop) and where its pixels come from.
public struct PreparedPerson: Sendable, Equatable {
    /// The item as it will be stored.
    public var item: GalleryItem
    /// The annotation it came from.
    public var annotationID: Int64
}

/// Turns COCO person-keypoint files and images (and captions) into a gallery: every annotation is checked before
/// anything is written, each person is embedded from their crop (`PersonCropping`) by the image model, captions by
/// the caption model, items are added in batches (one transaction each), the index files saved once, and stale
/// calibrations refitted. `dml gallery build`/`add` and `dml demo` are this type behind a command line.
public struct GalleryBuilder: Sendable {
    /// The image model (its `dml.fingerprint` names the "image" space).
    public var imageModel: EmbeddingModel
    /// The caption model; nil builds a gallery without a caption space.
    public var captionModel: CaptionModel?
    /// FAISS factory string of new spaces' indexes.
    public var factory = "Flat"
    /// Items per transaction.
    public var batch = 64
    /// Seed of the calibrations' pair sample.
    public var calibrationSeed: UInt64 = 0
    /// What to do with annotations that cannot become items.
    public var policy = AnnotationPolicy.refuse
    /// How a person's crop is cut; nil embeds whole images (no crop stored).
    public var cropping: PersonCropping?
    /// How errors name the image model (its file, say).
    public var imageModelName = "the image model"
    /// Called as the work advances (from the calling thread).
    public var progress: (@Sendable (BuildProgress) -> Void)?

    /// A builder for these models; crops suit the image model's input (`PersonCropping.forModel`).
    public init(imageModel: EmbeddingModel, captionModel: CaptionModel? = nil) {
        self.imageModel = imageModel
        self.captionModel = captionModel
        cropping = PersonCropping.forModel(imageModel)
    }

    // MARK: Build and add

    /// A new gallery in `directory`, built in a temporary directory beside it and renamed into place, so a failed
    /// build leaves nothing behind. Refused when `directory` holds a gallery with items, or anything but an empty
    /// folder.
    public func build(into directory: URL, from source: PeopleSource) throws -> BuildSummary {
        let manager = FileManager.default
        let store = directory.appendingPathComponent(Gallery.storeName)
        try Gallery.refuseEmptyStore(store)
        if let existing = try? GalleryReader(directory: directory), let count = try? existing.count(), count > 0 {
            throw PipelineError("\(directory.path) already holds a gallery of \(count) items: build into a new directory, or add to it")
        }
        var isDirectory: ObjCBool = false
        if manager.fileExists(atPath: directory.path, isDirectory: &isDirectory) {
            let contents = (try? manager.contentsOfDirectory(atPath: directory.path)) ?? ["?"]
            guard isDirectory.boolValue, contents.isEmpty else {
                throw PipelineError("\(directory.path) exists and is not an empty folder: remove it, or build into a new directory")
            }
        }
        let people = try prepare(source)
        let parent = directory.deletingLastPathComponent()
        do { try manager.createDirectory(at: parent, withIntermediateDirectories: true) } catch {
            throw PipelineError("cannot create \(parent.path): \(error.localizedDescription)")
        }
        let temporary = parent.appendingPathComponent(".\(directory.lastPathComponent).building-\(UUID().uuidString)")
        do {
            var summary = try add(people.people, to: temporary, skippedExisting: 0)
            summary.skippedAnnotations = people.skipped
            // rename(2) replaces an empty folder atomically; the parent is synced so the new name survives a crash.
            guard rename(temporary.path, directory.path) == 0 else {
                throw PipelineError("cannot move the new gallery to \(directory.path): \(String(cString: strerror(errno)))")
            }
            syncDirectory(parent)
            return summary
        } catch {
            try? manager.removeItem(at: temporary)
            throw error
        }
    }

    /// Adds the people of `source` to the gallery in `directory`, which must have been built with the same models
    /// (and a caption space exactly when this builder has a caption model). Keys already stored are refused
    /// (nothing is added), or skipped with `skipExisting`.
    public func add(to directory: URL, from source: PeopleSource, skipExisting: Bool = false) throws -> BuildSummary {
        let reader = try GalleryReader(directory: directory)
        let stored = try reader.spaces()
        guard let storedImage = stored.first(where: { $0.name == GalleryPipeline.imageSpace }) else {
            throw PipelineError("\(directory.path) has no image space: not a gallery this pipeline made")
        }
        let hasCaptions = stored.contains { $0.name == Gallery.captionSpace }
        if hasCaptions, captionModel == nil { throw PipelineError("the gallery has a caption space: give captions and a text model") }
        if !hasCaptions, captionModel != nil { throw PipelineError("the gallery has no caption space: leave out captions and the text model") }
        try imageModel.gallerySpace(factory: storedImage.factory).checkMatches(stored: storedImage, model: imageModelName, gallery: directory)
        if let captionModel, let storedCaption = stored.first(where: { $0.name == Gallery.captionSpace }) {
            try captionModel.space().checkMatches(stored: storedCaption, model: "the text model \(captionModel.directory.lastPathComponent)",
                                                  gallery: directory)
        }
        var prepared = try prepare(source)
        let storedKeys = Set(try reader.items().map(\.item.key))
        let existing = prepared.people.filter { storedKeys.contains($0.item.key) }
        if !existing.isEmpty && !skipExisting {
            throw PipelineError("\(existing.count) of the \(prepared.people.count) items are already in the gallery (first: '\(existing[0].item.key)'); "
                + "nothing was added (skip existing keys to add only the new ones)")
        }
        prepared.people.removeAll { storedKeys.contains($0.item.key) }
        var summary = try add(prepared.people, to: directory, skippedExisting: existing.count, factory: storedImage.factory)
        summary.skippedAnnotations = prepared.skipped
        return summary
    }

    private func add(_ people: [PreparedPerson], to directory: URL, skippedExisting: Int, factory: String? = nil) throws -> BuildSummary {
        guard batch >= 1 else { throw PipelineError("the batch size must be at least 1") }
        let start = DispatchTime.now().uptimeNanoseconds
        let factory = factory ?? self.factory
        var spaces = [try imageModel.gallerySpace(factory: factory)]
        if let captionModel { spaces.append(captionModel.space(factory: factory)) }
        let gallery = try Gallery(directory: directory, spaces: spaces)
        var added = 0
        progress?(BuildProgress(stage: .embedding, done: 0, total: people.count))
        for chunkStart in stride(from: 0, to: people.count, by: batch) {
            let chunk = people[chunkStart..<min(chunkStart + batch, people.count)].map(\.item)
            var crops: [RGBImage] = []
            for item in chunk {
                let path = item.image ?? ""
                let image = try decode(URL(fileURLWithPath: path))
                crops.append(try item.crop.map { try image.cropped(to: $0) } ?? image)
            }
            var embeddings = [GalleryPipeline.imageSpace: try embedImages(crops)]
            if let captionModel { embeddings[Gallery.captionSpace] = captionModel.embedder.embed(chunk.map { $0.caption ?? "" }) }
            // Each batch commits on its own; the index files are written once, below (a run killed before that
            // leaves them stale, and the next open rebuilds them from the store).
            try gallery.add(chunk, embeddings: embeddings, saveIndexes: false)
            added += chunk.count
            progress?(BuildProgress(stage: .embedding, done: added, total: people.count))
        }
        try gallery.saveIndexes()
        progress?(BuildProgress(stage: .calibrating, done: 0, total: spaces.count))
        let calibrations = try gallery.refreshCalibrations(settings: .init(seed: calibrationSeed))
        progress?(BuildProgress(stage: .calibrating, done: spaces.count, total: spaces.count))
        return BuildSummary(added: added, skippedExisting: skippedExisting, skippedAnnotations: [], count: gallery.count,
                            generation: gallery.generation, spaces: spaces.map(\.name),
                            seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, calibrations: calibrations)
    }

    /// Embeddings of decoded crops; the model's own model-file errors name it.
    private func embedImages(_ images: [RGBImage]) throws -> [Float] {
        try imageModel.embed(images: images)
    }

    // MARK: Checking

    /// Reads the annotation files and checks every person before anything is written: the image decodes and has
    /// the size the annotation file gives, the keypoints and box lie inside it, the pose can be compared, keys are
    /// unique, a caption exists where needed. Under `.refuse` the first problem throws; under `.skipAndReport` the
    /// annotation is left out and listed.
    public func prepare(_ source: PeopleSource) throws -> (people: [PreparedPerson], skipped: [SkippedAnnotation]) {
        let coco = source.keypoints.path
        let persons: [COCOPerson]
        do {
            persons = try COCOKeypoints.read(contentsOf: source.keypoints)
        } catch {
            throw PipelineError("\(coco): \(error)")
        }
        guard !persons.isEmpty else { throw PipelineError("\(coco): no people with keypoints") }
        let captionsByImage = try source.captions.map(COCOCaptions.read) ?? [:]
        if captionModel != nil, source.captions == nil { throw PipelineError("a caption model needs a captions file") }
        // One person per image keys by file stem; images with several people key each by annotation id too.
        let perImage = Dictionary(grouping: persons, by: \.imageID).mapValues(\.count)
        let imageRoot = source.images.standardizedFileURL
        var people: [PreparedPerson] = []
        var skipped: [SkippedAnnotation] = []
        var keys = Set<String>()
        var sizes: [String: (Int, Int)] = [:]  // decoded once per image file
        for (i, person) in persons.enumerated() {
            if i % 256 == 0 { progress?(BuildProgress(stage: .checking, done: i, total: persons.count)) }
            let url = imageRoot.appendingPathComponent(person.fileName)
            let context = "\(coco): annotation \(person.annotationID) (\(person.fileName))"
            do {
                let (width, height): (Int, Int)
                if let known = sizes[url.path] {
                    (width, height) = known
                } else {
                    let image = try decode(url)
                    (width, height) = (image.width, image.height)
                    sizes[url.path] = (width, height)
                }
                if let w = person.width, let h = person.height, (w, h) != (width, height) {
                    throw PipelineError("\(context): the annotation file says \(w)x\(h) but \(person.fileName) is \(width)x\(height) "
                        + "(as displayed, EXIF orientation applied): the annotations are for another version of the image")
                }
                try Self.checkInside(person, width: width, height: height, source: coco)
                let crop: CropBox?
                do { crop = try cropping?.box(for: person, imageWidth: width, imageHeight: height) } catch {
                    throw PipelineError("\(context): \(error)")
                }
                let stem = (person.fileName as NSString).deletingPathExtension
                let key = (perImage[person.imageID] ?? 1) > 1 ? "\(stem)-\(person.annotationID)" : stem
                guard !keys.contains(key) else { throw PipelineError("\(coco): two people get the key '\(key)'") }
                let caption = captionsByImage[person.imageID]?.first
                if captionModel != nil, caption == nil {
                    throw PipelineError("\(source.captions?.path ?? "captions"): no caption for image \(person.imageID)")
                }
                let metadata = #"{"annotation_id": \#(person.annotationID), "image_id": \#(person.imageID)}"#
                let item = GalleryItem(key: key, image: url.path, caption: captionModel == nil ? nil : caption, pose: person.pose,
                                       metadata: metadata, crop: crop)
                do { try item.validate() } catch { throw PipelineError("\(context): \(error)") }
                keys.insert(key)
                people.append(PreparedPerson(item: item, annotationID: person.annotationID))
            } catch {
                guard policy == .skipAndReport else { throw error }
                skipped.append(SkippedAnnotation(annotationID: person.annotationID, fileName: person.fileName, reason: "\(error)"))
            }
        }
        progress?(BuildProgress(stage: .checking, done: persons.count, total: persons.count))
        guard !people.isEmpty else {
            throw PipelineError("\(coco): none of the \(persons.count) annotations can be added (first: \(skipped.first?.reason ?? "?"))")
        }
        return (people, skipped)
    }

    /// Labelled keypoints must lie in the image (0...width, 0...height): outside, they do not describe it.
    static func checkInside(_ person: COCOPerson, width: Int, height: Int, source: String) throws {
        for (j, k) in person.pose.keypoints.enumerated() where k.isLabelled {
            guard (0...Double(width)).contains(k.x), (0...Double(height)).contains(k.y) else {
                throw PipelineError("\(source): annotation \(person.annotationID) (\(person.fileName)): keypoint \(Pose.jointNames[j]) at "
                    + "(\(k.x), \(k.y)) lies outside the \(width)x\(height) image")
            }
        }
    }

    private func decode(_ url: URL) throws -> RGBImage {
        do { return try RGBImage(contentsOf: url) } catch { throw PipelineError("\(url.path): \(error)") }
    }
}

extension GalleryBuilder {
    /// `build(into:from:)` off the calling task.
    public func build(into directory: URL, from source: PeopleSource) async throws -> BuildSummary {
        try await Task.detached { try self.build(into: directory, from: source) }.value
    }

    /// `add(to:from:skipExisting:)` off the calling task.
    public func add(to directory: URL, from source: PeopleSource, skipExisting: Bool = false) async throws -> BuildSummary {
        try await Task.detached { try self.add(to: directory, from: source, skipExisting: skipExisting) }.value
    }
}

/// fsync of a directory, so a rename in it is durable (best effort: some file systems refuse it).
func syncDirectory(_ url: URL) {
    let fd = open(url.path, O_RDONLY)
    guard fd >= 0 else { return }
    _ = fsync(fd)
    close(fd)
}
