import ArgumentParser
import DMLKit
import Foundation

/// `dml gallery search`: by an example image, a stored item's embedding, a pose, or a caption.
struct GallerySearchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "search", abstract: "Search a gallery by example, key, pose or caption.")

    @Argument(help: "Gallery directory.") var directory: String
    @Option(help: "Query image (PNG/JPEG), embedded with --model.") var example: String?
    @Option(help: "Key of a stored item: its stored image embedding is the query.") var key: String?
    @Option(help: "Query pose JSON: 51 numbers [x, y, v, ...] or 17 triples.") var pose: String?
    @Option(help: "Query caption text (needs --text-model).") var caption: String?
    @Option(name: .short, help: "Results.") var k = 10
    @Option(help: "Image model (.safetensors), for --example.") var model: String?
    @Option(help: "Text model directory, for --caption.") var textModel: String?
    @Flag(help: "Pose distance up to left-right mirroring.") var mirror = false
    @Flag(help: "Print as JSON.") var json = false

    func run() throws {
        let given = [example, key, pose, caption].compactMap { $0 }.count
        guard given == 1 else { throw CLIError("give exactly one of --example, --key, --pose, --caption") }
        guard k >= 1 else { throw CLIError("-k must be at least 1") }
        let reader = try openReader(directory)
        let hits = try GalleryQuery(reader: reader, mirror: mirror).run(
            example: example, key: key, pose: pose.map(readPose), caption: caption, k: k, model: model, textModel: textModel)
        try printHits(hits, json: json)
    }
}

/// One query against a gallery; results carry the pose distance to the query's pose where both have one.
struct GalleryQuery {
    let reader: GalleryReader
    var mirror = false

    struct Hit: Encodable {
        var rank: Int
        var key: String
        var score: Float
        var poseDistance: Double?
        var caption: String?
        var image: String?

        enum CodingKeys: String, CodingKey { case rank, key, score, poseDistance = "pose_distance", caption, image }
    }

    func run(example: String?, key: String?, pose: Pose?, caption: String?, k: Int, model: String?, textModel: String?) throws -> [Hit] {
        if let example {
            guard let model else { throw CLIError("--example needs --model") }
            let imageModel = try loadImageModel(model)
            let gallery = try Gallery(directory: reader.directory, spaces: [try imageSpace(imageModel)])
            let vector = try embedImages([try decodeImage(example)], with: imageModel)
            return annotate(try gallery.search(embedding: vector, space: "image", k: k), queryPose: nil)
        }
        if let key {
            let stored = try reader.spaces()
            guard stored.contains(where: { $0.name == "image" }) else { throw CLIError("the gallery has no image space") }
            let gallery = try Gallery(directory: reader.directory, spaces: stored)
            let vector = try reader.embedding(key: key, space: "image")
            return annotate(try gallery.search(embedding: vector, space: "image", k: k), queryPose: try gallery.item(key: key).pose)
        }
        if let pose {
            let gallery = try Gallery(directory: reader.directory, spaces: [])
            return annotate(try gallery.search(pose: pose, k: k, mirror: mirror), queryPose: pose)
        }
        if let caption {
            guard let textModel else { throw CLIError("--caption needs --text-model") }
            let captionModel = try CaptionModel(directory: textModel)
            let gallery = try Gallery(directory: reader.directory, spaces: [captionModel.space])
            return annotate(try gallery.search(caption: caption, embedder: captionModel.embedder, k: k), queryPose: nil)
        }
        throw CLIError("no query given")
    }

    func annotate(_ hits: [GalleryHit], queryPose: Pose?) -> [Hit] {
        hits.enumerated().map { i, hit in
            var distance = hit.poseDistance
            if distance == nil, let queryPose, let other = hit.item.pose {
                distance = try? Pose.distance(queryPose, other, mirror: mirror)
            }
            return Hit(rank: i + 1, key: hit.item.key, score: hit.score, poseDistance: distance, caption: hit.item.caption,
                       image: hit.item.image)
        }
    }
}

func printHits(_ hits: [GalleryQuery.Hit], json: Bool) throws {
    if json { return try printJSON(hits) }
    print("rank  key                 score     pose_d  caption")
    for hit in hits {
        let distance = hit.poseDistance.map { String(format: "%6.3f", $0) } ?? "     -"
        let key = hit.key.padding(toLength: max(18, hit.key.count), withPad: " ", startingAt: 0)
        print(String(format: "%4d  ", hit.rank) + key + String(format: "  %8.4f  ", hit.score) + distance + "  " + (hit.caption ?? ""))
    }
}
