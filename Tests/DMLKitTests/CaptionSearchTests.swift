import DMLIndex
import DMLKit
import Foundation
import Testing

/// A bag-of-words embedder: each word adds one to a hashed coordinate. Deterministic and easy to reason about.
private struct BagOfWords: CaptionEmbedder {
    let dimension = 16
    func embed(_ texts: [String]) throws -> [Float] {
        texts.flatMap { text -> [Float] in
            var v = [Float](repeating: 0, count: dimension)
            for word in text.lowercased().split(separator: " ") {
                v[Int(word.unicodeScalars.reduce(UInt32(7)) { ($0 &* 31 &+ $1.value) } % UInt32(dimension))] += 1
            }
            return v
        }
    }
}

private let captions = ["a person sitting on a stool", "someone lying face down", "a figure jumping with legs apart",
                        "a person kneeling on one knee", "someone running fast"]

private func captionGallery() throws -> (Gallery, URL) {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("dmlkit-caption-\(UUID().uuidString)")
    let embedder = BagOfWords()
    let space = EmbeddingSpace(name: Gallery.captionSpace, dimension: embedder.dimension, fingerprint: "bag-of-words")
    let gallery = try Gallery(directory: url, spaces: [space])
    let items = captions.enumerated().map { GalleryItem(key: "item-\($0.offset)", caption: $0.element) }
    try gallery.add(items, embeddings: [Gallery.captionSpace: try embedder.embed(captions)])
    return (gallery, url)
}

@Suite struct CaptionSearchTests {
    @Test func aStoredCaptionFindsItsItemFirstAndScoresMatchCosine() throws {
        let (gallery, url) = try captionGallery()
        defer { try? FileManager.default.removeItem(at: url) }
        let embedder = BagOfWords()
        for (i, text) in captions.enumerated() {
            let hits = try gallery.search(caption: "  \(text) ", embedder: embedder, k: 3)
            #expect(hits.first?.item.key == "item-\(i)")
            #expect(abs((hits.first?.score ?? 0) - 1) < 1e-5)
        }
        // Scores are the cosine similarities of the bag-of-words vectors, best first.
        let query = try embedder.embed(["a person lying down"])
        let stored = try embedder.embed(captions)
        func cosine(_ row: Int) -> Float {
            let v = stored[row * 16..<(row + 1) * 16]
            let dot = zip(query, v).reduce(0) { $0 + $1.0 * $1.1 }
            return dot / (query.reduce(0) { $0 + $1 * $1 }.squareRoot() * v.reduce(0) { $0 + $1 * $1 }.squareRoot())
        }
        let hits = try gallery.search(caption: "a person lying down", embedder: embedder, k: 5)
        #expect(hits.count == 5)
        for hit in hits {
            guard let row = captions.firstIndex(of: hit.item.caption ?? "") else { Issue.record("unknown hit"); continue }
            #expect(abs(hit.score - cosine(row)) < 1e-5)
        }
        #expect(zip(hits, hits.dropFirst()).allSatisfy { $0.score >= $1.score })
    }

    @Test func badCaptionQueriesAreRefused() throws {
        let (gallery, url) = try captionGallery()
        defer { try? FileManager.default.removeItem(at: url) }
        #expect(throws: GalleryError.invalidQuery("empty caption")) { try gallery.search(caption: "   ", embedder: BagOfWords(), k: 3) }
        #expect(throws: GalleryError.invalidQuery("k must be at least 1")) { try gallery.search(caption: "a person", embedder: BagOfWords(), k: 0) }
        #expect(throws: GalleryError.unknownSpace("image")) { try gallery.search(caption: "a person", embedder: BagOfWords(), k: 3, space: "image") }
        struct Wide: CaptionEmbedder {
            let dimension = 32
            func embed(_ texts: [String]) throws -> [Float] { [Float](repeating: 1, count: 32 * texts.count) }
        }
        #expect(throws: GalleryError.invalidQuery("the text embedder gives 32-d vectors but space 'caption' holds 16-d ones")) { try gallery.search(caption: "a person", embedder: Wide(), k: 3) }
    }

    @Test func readerSeesTheStoreWithoutAnEmbedder() throws {
        let (gallery, url) = try captionGallery()
        defer { try? FileManager.default.removeItem(at: url) }
        let reader = try GalleryReader(directory: url)
        #expect(try reader.count() == captions.count)
        #expect(try reader.spaces().map(\.name) == [Gallery.captionSpace])
        #expect(try reader.spaces().first?.fingerprint == "bag-of-words")
        #expect(try reader.generation() == gallery.generation)
        #expect(try reader.items().map(\.item.caption) == captions)
        #expect(try reader.embedding(key: "item-2", space: Gallery.captionSpace) == BagOfWords().embed([captions[2]]))
        #expect(try reader.embeddings(space: Gallery.captionSpace).vectors == BagOfWords().embed(captions))
        #expect(throws: GalleryError.unknownKey("nope")) { try reader.embedding(key: "nope", space: Gallery.captionSpace) }
        #expect(throws: GalleryError.unknownSpace("image")) { try reader.embedding(key: "item-2", space: "image") }
        let missing = url.appendingPathComponent("absent")
        #expect(throws: GalleryError.notAGallery("no gallery at \(missing.path) (no gallery.sqlite)")) { try GalleryReader(directory: missing) }
        #expect(!FileManager.default.fileExists(atPath: missing.path))
    }
}
