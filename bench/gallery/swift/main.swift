// Benchmark driver for bench/gallery/run.py: builds and queries a DMLKit `Gallery` through the public API
// (RGBImage, EmbeddingModel, TextEmbedder, Gallery, GalleryReader) and prints one JSON line.
//
//   gallery-bench build     --people DIR --gallery DIR --model M --text-model T [--limit N] [--batch B]
//   gallery-bench replicate --from DIR --gallery DIR --model M --text-model T --copies C [--batch B]
//   gallery-bench query     --gallery DIR --queries DIR --model M --text-model T [--count N] [--warmup W] [--k K]
//
// build: the people set checked and keyed by `GalleryBuilder.prepare` (as `dml gallery build` does; timed apart as
// check_s), then PNG decode (libpng) -> image embedding (the pose model) -> caption embedding (MiniLM) ->
// Gallery.add, one transaction per batch. Spaces carry the library's fingerprints, so `dml` can search the result.
// replicate: the items and stored embeddings of a built gallery, added `copies` times under keys "rR-KEY".
// query: by example (decoded pixels -> embed -> search), by embedding, by pose, by caption; per-query wall times.
// Every step runs with one BLAS thread; FAISS's OpenMP threads come from OMP_NUM_THREADS (the harness sets 1).
import CDMLBlas
import DMLKit
import DMLRuntime
import DMLText
import Foundation

struct Failure: Error, CustomStringConvertible { let description: String }

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

func peakRSSMiB() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        return (line.split(separator: " ").compactMap { Double($0) }.first ?? 0) / 1024
    }
    return 0
}

func options(_ arguments: ArraySlice<String>) throws -> [String: String] {
    var result: [String: String] = [:]
    var i = arguments.startIndex
    while i < arguments.endIndex {
        let name = arguments[i]
        guard name.hasPrefix("--"), i + 1 < arguments.endIndex else { throw Failure(description: "bad argument \(name)") }
        result[String(name.dropFirst(2))] = arguments[i + 1]
        i += 2
    }
    return result
}

func emit(_ object: [String: Any]) throws {
    print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
}

struct Models {
    let image: EmbeddingModel
    let caption: CaptionModel
    var text: TextEmbedder { caption.embedder }
    let spaces: [EmbeddingSpace]
    let loadSeconds: Double

    init(_ opts: [String: String]) throws {
        guard let model = opts["model"], let textModel = opts["text-model"] else { throw Failure(description: "--model and --text-model are needed") }
        let start = now()
        image = try EmbeddingModel.load(contentsOf: URL(fileURLWithPath: model), options: .init(maxBatch: 64, threads: 1))
        caption = try CaptionModel(directory: URL(fileURLWithPath: textModel), options: .init(maxBatch: 64, threads: 1))
        loadSeconds = now() - start
        // The library's spaces and fingerprints: a bench gallery is searchable with `dml gallery search`.
        spaces = [try image.gallerySpace(), caption.space()]
    }

    func embed(_ images: [RGBImage]) throws -> [Float] { try image.embed(images: images) }
}

// MARK: build

func build(_ opts: [String: String]) throws {
    guard let people = opts["people"], let galleryPath = opts["gallery"] else { throw Failure(description: "--people and --gallery are needed") }
    let batch = Int(opts["batch"] ?? "64") ?? 64
    let models = try Models(opts)
    let root = URL(fileURLWithPath: people)
    let galleryURL = URL(fileURLWithPath: galleryPath)
    try? FileManager.default.removeItem(at: galleryURL)

    // Keys, checks and captions come from the library's builder (as `dml gallery build`), timed apart: the Python
    // peer has no such step. Whole images are embedded, as the peer does (the generated people are 64x64, one each).
    var builder = GalleryBuilder(imageModel: models.image, captionModel: models.caption)
    builder.cropping = nil
    builder.policy = .skipAndReport  // a set with weak annotations still benches (they are left out)
    let checkStart = now()
    var persons = try builder.prepare(PeopleSource(keypoints: root.appendingPathComponent("person_keypoints.json"),
                                                   images: root.appendingPathComponent("images"),
                                                   captions: root.appendingPathComponent("captions.json"))).people.map(\.item)
    let check = now() - checkStart
    if let limit = opts["limit"].flatMap(Int.init) { persons = Array(persons.prefix(limit)) }
    let start = now()
    let gallery = try Gallery(directory: galleryURL, spaces: models.spaces)
    var decode = 0.0, embedImage = 0.0, embedText = 0.0, add = 0.0
    for chunkStart in stride(from: 0, to: persons.count, by: batch) {
        let items = Array(persons[chunkStart..<min(chunkStart + batch, persons.count)])
        var t = now()
        let images = try items.map { try RGBImage(contentsOf: URL(fileURLWithPath: $0.image ?? "")) }
        let texts = items.map { $0.caption ?? "" }
        decode += now() - t
        t = now()
        let imageVectors = try models.embed(images)
        embedImage += now() - t
        t = now()
        let textVectors = models.text.embed(texts)
        embedText += now() - t
        t = now()
        try gallery.add(items, embeddings: ["image": imageVectors, Gallery.captionSpace: textVectors], saveIndexes: false)
        add += now() - t
    }
    let saveStart = now()
    try gallery.saveIndexes()  // once, as `dml gallery build` does
    add += now() - saveStart
    let seconds = now() - start
    try emit([
        "items": persons.count, "seconds": seconds, "images_per_s": Double(persons.count) / seconds, "batch": batch,
        "decode_s": decode, "embed_image_s": embedImage, "embed_caption_s": embedText, "add_s": add,
        "load_s": models.loadSeconds, "check_s": check, "peak_rss_mib": peakRSSMiB(), "blas_threads": Int(dml_blas_threads()), "count": gallery.count,
    ])
}

// MARK: replicate

func replicate(_ opts: [String: String]) throws {
    guard let from = opts["from"], let galleryPath = opts["gallery"], let copies = opts["copies"].flatMap(Int.init) else {
        throw Failure(description: "--from, --gallery and --copies are needed")
    }
    let batch = Int(opts["batch"] ?? "10000") ?? 10000
    let models = try Models(opts)
    let galleryURL = URL(fileURLWithPath: galleryPath)
    try? FileManager.default.removeItem(at: galleryURL)
    let start = now()
    let reader = try GalleryReader(directory: URL(fileURLWithPath: from))
    let stored = try reader.items()
    var vectors: [String: [Int64: ArraySlice<Float>]] = [:]
    for space in models.spaces {
        let (ids, flat) = try reader.embeddings(space: space.name)
        var rows: [Int64: ArraySlice<Float>] = [:]
        for (row, id) in ids.enumerated() { rows[id] = flat[row * space.dimension..<(row + 1) * space.dimension] }
        vectors[space.name] = rows
    }
    let gallery = try Gallery(directory: galleryURL, spaces: models.spaces)
    let readSeconds = now() - start
    var adds = 0
    let all = (0..<copies).flatMap { copy in stored.map { (copy, $0.id, $0.item) } }
    for chunkStart in stride(from: 0, to: all.count, by: batch) {
        let chunk = all[chunkStart..<min(chunkStart + batch, all.count)]
        var items: [GalleryItem] = []
        var embeddings: [String: [Float]] = [:]
        for (copy, id, item) in chunk {
            var copied = item
            copied.key = "r\(copy)-\(item.key)"
            items.append(copied)
            for space in models.spaces { embeddings[space.name, default: []] += vectors[space.name]?[id] ?? [] }
        }
        try gallery.add(items, embeddings: embeddings, saveIndexes: false)
        adds += 1
    }
    try gallery.saveIndexes()
    let seconds = now() - start
    try emit(["items": all.count, "seconds": seconds, "read_s": readSeconds, "adds": adds, "batch": batch,
              "peak_rss_mib": peakRSSMiB(), "count": gallery.count])
}

// MARK: query

func query(_ opts: [String: String]) throws {
    guard let galleryPath = opts["gallery"], let queriesPath = opts["queries"] else { throw Failure(description: "--gallery and --queries are needed") }
    let count = Int(opts["count"] ?? "300") ?? 300
    let warmup = Int(opts["warmup"] ?? "20") ?? 20
    let k = Int(opts["k"] ?? "10") ?? 10
    let shown = Int(opts["keys"] ?? "20") ?? 20
    let models = try Models(opts)
    let openStart = now()
    let gallery = try Gallery(directory: URL(fileURLWithPath: galleryPath), spaces: models.spaces)
    let openSeconds = now() - openStart
    let itemCount = gallery.count

    let root = URL(fileURLWithPath: queriesPath)
    let persons = Array(try COCOKeypoints.read(contentsOf: root.appendingPathComponent("person_keypoints.json")).prefix(count))
    let captions = try COCOCaptions.read(contentsOf: root.appendingPathComponent("captions.json")).compactMapValues(\.first)
    // Query images are decoded up front: "by example" starts from pixels in memory.
    let images = try persons.map { try RGBImage(contentsOf: root.appendingPathComponent("images").appendingPathComponent($0.fileName)) }
    let texts = try persons.map { p -> String in
        guard let c = captions[p.imageID] else { throw Failure(description: "no caption for query image \(p.imageID)") }
        return c
    }
    let embeddings = try images.map { try models.embed([$0]) }

    var result: [String: Any] = ["items": itemCount, "open_s": openSeconds, "load_s": models.loadSeconds, "queries": persons.count,
                                 "warmup": warmup, "k": k]
    func measure(_ name: String, _ body: (Int) throws -> [GalleryHit]) throws {
        for i in 0..<min(warmup, persons.count) { _ = try body(i) }
        var ms: [Double] = []
        var keys: [[String]] = []
        for i in 0..<persons.count {
            let t = now()
            let hits = try body(i)
            ms.append((now() - t) * 1000)
            if i < shown { keys.append(hits.map(\.item.key)) }
        }
        result[name] = ["ms": ms, "keys": keys]
    }
    let only = Set((opts["types"] ?? "example,embedding,pose,caption").split(separator: ",").map(String.init))
    func timed(_ name: String, _ body: (Int) throws -> [GalleryHit]) throws {
        guard only.contains(name) else { return }
        try measure(name, body)
    }
    try timed("example") { i in try gallery.search(embedding: try models.embed([images[i]]), space: "image", k: k) }
    try timed("embedding") { i in try gallery.search(embedding: embeddings[i], space: "image", k: k) }
    try timed("pose") { i in try gallery.search(pose: persons[i].pose, k: k) }
    try timed("caption") { i in try gallery.search(caption: texts[i], embedder: models.text, k: k) }
    result["peak_rss_mib"] = peakRSSMiB()
    result["blas_threads"] = Int(dml_blas_threads())
    try emit(result)
}

let arguments = CommandLine.arguments
do {
    guard arguments.count >= 2 else { throw Failure(description: "usage: gallery-bench build|replicate|query --option value ...") }
    let opts = try options(arguments.dropFirst(2))
    switch arguments[1] {
    case "build": try build(opts)
    case "replicate": try replicate(opts)
    case "query": try query(opts)
    default: throw Failure(description: "unknown command \(arguments[1])")
    }
} catch {
    FileHandle.standardError.write(Data("gallery-bench: \(error)\n".utf8))
    exit(1)
}
