import ArgumentParser
import DMLKit
import Foundation

/// `dml gallery search`: by an example image, a stored item's embedding, a pose, or a caption; several of them
/// combined with weights; or everything within a pose distance.
struct GallerySearchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search", abstract: "Search a gallery by example, key, pose or caption, combined with weights, or within a pose distance.")

    @Argument(help: "Gallery directory.") var directory: String
    @Option(help: "Query image (PNG/JPEG), embedded with --model.") var example: String?
    @Option(help: "Part of the --example image to embed, x,y,width,height in pixels (default: the whole image).") var box: String?
    @Option(help: "Key of a stored item: its stored image embedding is the query.") var key: String?
    @Option(help: "Query pose JSON: 51 numbers [x, y, v, ...] or 17 triples.") var pose: String?
    @Option(help: "Query caption text (needs --text-model).") var caption: String?
    @Option(help: "Weight of a part when several are given, as PART=W (PART: example, key, pose, caption; default 1).")
    var weight: [String] = []
    @Option(help: "All items within this pose distance (torso lengths): exact for --pose, calibrated for the others; -k is ignored.")
    var within: Double?
    @Option(name: .short, help: "Results.") var k = 10
    @Option(help: "Image model (.safetensors), for --example.") var model: String?
    @Option(help: "Text model directory, for --caption.") var textModel: String?
    @Flag(help: "Pose distance up to left-right mirroring.") var mirror = false
    @Flag(help: "Print as JSON.") var json = false

    func run() throws {
        guard k >= 1 else { throw CLIError("-k must be at least 1") }
        let reader = try openReader(directory)
        let query = GalleryQuery(reader: reader, mirror: mirror)
        let parts = try query.parts(example: example, box: try box.map(parseBox), key: key, pose: pose.map(readPose), caption: caption, model: model, textModel: textModel)
        guard !parts.isEmpty else { throw CLIError("give at least one of --example, --key, --pose, --caption") }
        let weights = try parseWeights(weight, given: parts.map(\.name))
        let hits: [GalleryQuery.Hit]
        if let within {
            guard parts.count == 1 else { throw CLIError("--within takes one query part (--example, --key, --pose or --caption)") }
            hits = try query.within(parts[0], distance: within)
        } else if parts.count == 1 && weight.isEmpty {
            hits = try query.nearest(parts[0], k: k)
        } else {
            hits = try query.combined(parts, weights: weights, k: k)
        }
        try printHits(hits, json: json)
    }

    private func parseBox(_ text: String) throws -> CropBox {
        guard example != nil else { throw CLIError("--box goes with --example") }
        do { return try CropBox(parsing: text) } catch { throw CLIError("--box: \(error)") }
    }

    /// `PART=W` options as weights by part name; every named part must be one of the query's.
    private func parseWeights(_ values: [String], given: [String]) throws -> [String: Double] {
        var weights: [String: Double] = [:]
        for value in values {
            let pieces = value.split(separator: "=", maxSplits: 1).map(String.init)
            guard pieces.count == 2, let w = Double(pieces[1]), w.isFinite, w > 0 else {
                throw CLIError("--weight takes PART=W with W a number > 0 (e.g. pose=2), got '\(value)'")
            }
            guard given.contains(pieces[0]) else {
                throw CLIError("--weight \(value): no --\(pieces[0]) part in this query (given: \(given.joined(separator: ", ")))")
            }
            weights[pieces[0]] = w
        }
        return weights
    }
}

/// Queries against a gallery; results carry the pose distance to the query's pose where both have one.
struct GalleryQuery {
    let reader: GalleryReader
    var mirror = false

    struct Hit: Encodable {
        var rank: Int
        var key: String
        var score: Float
        var distance: Double
        var poseDistance: Double?
        var estimatedPoseDistance: Double?
        var partDistances: [String: Double]?
        var caption: String?
        var image: String?
        var crop: String?

        enum CodingKeys: String, CodingKey {
            case rank, key, score, distance, poseDistance = "pose_distance", estimatedPoseDistance = "estimated_pose_distance",
                 partDistances = "part_distances", caption, image, crop
        }
    }

    /// One query part, resolved: the gallery space it needs (nil for a pose) and what to search.
    struct Part {
        var name: String
        var space: EmbeddingSpace?
        var vector: [Float] = []
        var pose: Pose?
        /// The pose results are compared with for `pose_distance` (the query's, or the key item's).
        var queryPose: Pose?
    }

    func parts(example: String?, box: CropBox? = nil, key: String?, pose: Pose?, caption: String?, model: String?, textModel: String?) throws -> [Part] {
        var parts: [Part] = []
        if let example {
            guard let model else { throw CLIError("--example needs --model") }
            let imageModel = try loadImageModel(model)
            let image = try decodeImage(example)
            let vector: [Float]
            do { vector = try imageModel.embed(image: image, box: box) } catch { throw CLIError("\(example): \(error)") }
            let space = try imageModel.gallerySpace()
            if let stored = try reader.spaces().first(where: { $0.name == space.name }) {
                try space.checkMatches(stored: stored, model: model, gallery: reader.directory)
            }
            parts.append(Part(name: "example", space: space, vector: vector))
        }
        if let key {
            guard let stored = try reader.spaces().first(where: { $0.name == "image" }) else { throw CLIError("the gallery has no image space") }
            let vector = try reader.embedding(key: key, space: "image")
            let keyPose = try reader.item(key: key).pose
            parts.append(Part(name: "key", space: stored, vector: vector, queryPose: keyPose))
        }
        if let pose { parts.append(Part(name: "pose", pose: pose, queryPose: pose)) }
        if let caption {
            guard let textModel else { throw CLIError("--caption needs --text-model") }
            let captionModel = try loadCaptionModel(textModel)
            if let stored = try reader.spaces().first(where: { $0.name == Gallery.captionSpace }) {
                try captionModel.space().checkMatches(stored: stored, model: textModel, gallery: reader.directory)
            }
            let text = caption.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !text.isEmpty else { throw CLIError("invalid query: empty caption") }
            parts.append(Part(name: "caption", space: captionModel.space(), vector: captionModel.embedder.embed([text])))
        }
        return parts
    }

    /// The gallery opened read-only with the spaces the parts need (fingerprints checked against the store). A
    /// search by key needs no model, so it opens every stored space. A search writes nothing: indexes that lag the
    /// store are rebuilt in memory for this search, and saved by the next command that changes the gallery.
    private func open(_ parts: [Part]) throws -> Gallery {
        var spaces: [EmbeddingSpace] = []
        var needed = parts.compactMap(\.space)
        if parts.contains(where: { $0.name == "key" }) { needed += try reader.spaces() }
        for space in needed where !spaces.contains(where: { $0.name == space.name }) { spaces.append(space) }
        return try Gallery(directory: reader.directory, spaces: spaces, access: .readOnly)
    }

    private func queryPose(_ parts: [Part]) -> Pose? { parts.lazy.compactMap(\.queryPose).first }

    func nearest(_ part: Part, k: Int) throws -> [Hit] {
        let gallery = try open([part])
        if let pose = part.pose { return annotate(try gallery.search(pose: pose, k: k, mirror: mirror), queryPose: pose) }
        return annotate(try gallery.search(embedding: part.vector, space: part.space!.name, k: k), queryPose: part.queryPose)
    }

    func within(_ part: Part, distance: Double) throws -> [Hit] {
        let gallery = try open([part])
        if let pose = part.pose { return annotate(try gallery.search(pose: pose, within: distance, mirror: mirror), queryPose: pose) }
        return annotate(try gallery.search(embedding: part.vector, space: part.space!.name, withinPoseDistance: distance), queryPose: part.queryPose)
    }

    func combined(_ parts: [Part], weights: [String: Double], k: Int) throws -> [Hit] {
        let gallery = try open(parts)
        let query = parts.map { part -> QueryPart in
            let w = weights[part.name] ?? 1
            if let pose = part.pose { return .pose(pose, mirror: mirror, weight: w) }
            return .embedding(part.vector, space: part.space!.name, weight: w)
        }
        return annotate(try gallery.search(parts: query, k: k), queryPose: queryPose(parts), partNames: parts.map(\.name))
    }

    func annotate(_ hits: [GalleryHit], queryPose: Pose?, partNames: [String] = []) -> [Hit] {
        hits.withPoseDistances(to: queryPose, mirror: mirror).enumerated().map { i, hit in
            let distance = hit.poseDistance
            let parts = hit.partDistances.map { Dictionary(zip(partNames, $0), uniquingKeysWith: { a, _ in a }) }
            return Hit(rank: i + 1, key: hit.item.key, score: hit.score, distance: hit.distance, poseDistance: distance,
                       estimatedPoseDistance: hit.estimatedPoseDistance, partDistances: parts, caption: hit.item.caption,
                       image: hit.item.image, crop: hit.item.crop?.description)
        }
    }
}

func printHits(_ hits: [GalleryQuery.Hit], json: Bool) throws {
    if json { return try printJSON(hits) }
    // score: higher is closer (cosine similarity, or 1/(1+d) for pose and combined queries); d: the distance.
    print("rank  key                 score     pose_d  est_d   caption")
    for hit in hits {
        let distance = hit.poseDistance.map { String(format: "%6.3f", $0) } ?? "     -"
        let estimate = hit.estimatedPoseDistance.map { String(format: "%6.3f", $0) } ?? "     -"
        let key = hit.key.padding(toLength: max(18, hit.key.count), withPad: " ", startingAt: 0)
        print(String(format: "%4d  ", hit.rank) + key + String(format: "  %8.4f  ", hit.score) + distance + "  " + estimate + "  " + (hit.caption ?? ""))
    }
}
