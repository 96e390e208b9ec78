import DMLText
import Foundation

/// Turns texts into embeddings for the gallery's caption space. `TextEmbedder` (MiniLM) is the one the library
/// ships; tests and apps may plug in others.
public protocol CaptionEmbedder {
    /// Length of one embedding.
    var dimension: Int { get }
    /// Embeddings of `texts`, one row of `dimension` floats per text, back to back.
    func embed(_ texts: [String]) throws -> [Float]
}

extension TextEmbedder: CaptionEmbedder {}

extension Gallery {
    /// The name `dml gallery` gives the caption embedding space.
    public static let captionSpace = "caption"

    /// The `k` items whose caption embeddings in `space` are closest to the embedding of `caption`.
    /// The gallery must have been opened with `space` registered under the same embedder's fingerprint.
    public func search(caption: String, embedder: some CaptionEmbedder, k: Int, space: String = Gallery.captionSpace)
        throws -> [GalleryHit]
    {
        let text = caption.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw GalleryError.invalidQuery("empty caption") }
        guard k >= 1 else { throw GalleryError.invalidQuery("k must be at least 1") }
        guard let declared = spaces.first(where: { $0.name == space }) else { throw GalleryError.unknownSpace(space) }
        guard embedder.dimension == declared.dimension else {
            throw GalleryError.invalidQuery(
                "the text embedder gives \(embedder.dimension)-d vectors but space '\(space)' holds \(declared.dimension)-d ones")
        }
        let vector = try embedder.embed([text])
        guard vector.count == declared.dimension else {
            throw GalleryError.invalidQuery("the text embedder returned \(vector.count) floats for one text")
        }
        return try search(embedding: vector, space: space, k: k)
    }
}
