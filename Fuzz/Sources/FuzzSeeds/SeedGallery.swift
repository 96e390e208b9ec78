import DMLKit
import Foundation

/// The small gallery both `make-corpus` (its `gallery.sqlite` is the seed) and `fuzz-gallery` (its index files
/// sit beside every fuzzed store) build, the same way each time, so the seed's recorded index generations match.
public enum SeedGallery {
    /// Two embedding spaces of different metrics (Flat: the gallery removes items, which HNSW cannot, and adds
    /// without training, which SQ/IVF/PQ need).
    public static let spaces = [
        EmbeddingSpace(name: "image", dimension: 8, fingerprint: "fuzz-image-v1", metric: .cosine, factory: "Flat"),
        EmbeddingSpace(name: "caption", dimension: 4, fingerprint: "fuzz-caption-v1", metric: .innerProduct, factory: "Flat"),
    ]

    /// A standing pose, and the query the fuzzer searches with.
    public static func pose(_ item: Int) -> Pose {
        var values: [Double] = []
        for j in 0..<Pose.jointCount {
            let x = 100 + Double(j % 5) * 10 + Double(item), y = 50 + Double(j) * 12 + Double(item % 3)
            values += [x, y, j % 6 == 4 ? 1 : 2]
        }
        return try! Pose(coco: values)
    }

    /// Writes the gallery into `directory` (created): 12 items, half with poses and captions, one batch removed
    /// and one more added so the store has a generation above 1 and freed pages.
    public static func build(at directory: URL) throws {
        let gallery = try Gallery(directory: directory, spaces: spaces)
        func batch(_ range: Range<Int>) throws {
            let items = range.map { i in
                GalleryItem(key: "item-\(i)", image: "images/\(i).png", caption: i % 2 == 0 ? "a person standing \(i)" : nil,
                            pose: i % 2 == 0 ? pose(i) : nil, classLabel: Int64(i % 3), metadata: i % 4 == 0 ? "{\"n\": \(i)}" : nil)
            }
            let image = range.flatMap { i in (0..<8).map { Float(sin(Double(i * 8 + $0))) + 0.1 } }
            let caption = range.flatMap { i in (0..<4).map { Float(cos(Double(i * 4 + $0))) } }
            try gallery.add(items, embeddings: ["image": image, "caption": caption])
        }
        try batch(0..<8)
        _ = try gallery.remove(keys: ["item-1", "item-2"])
        try batch(8..<12)
    }
}
