import DMLRuntime
import DMLText
import Foundation

// Fingerprints name the embedder of a gallery space; a gallery refuses vectors from another one. They are public
// and computed the same way everywhere (the CLI, the benchmark, apps), so a gallery built by one is searchable by
// the others.

extension EmbeddingModel {
    /// Loads an exported image model (`.safetensors` with `dml.*` metadata); a failure names the file.
    public static func load(contentsOf url: URL, options: Options = .init()) throws -> EmbeddingModel {
        do {
            return try EmbeddingModel(contentsOf: url, options: options)
        } catch {
            throw PipelineError("\(url.path): \(error)")
        }
    }

    /// The model's fingerprint as the gallery stores it: the file's `dml.fingerprint` metadata (nil for a file
    /// exported without one).
    public var galleryFingerprint: String? { spec.fingerprint }

    /// The model as a gallery embedding space (cosine); refused for a file without `dml.fingerprint`.
    public func gallerySpace(name: String = GalleryPipeline.imageSpace, factory: String = "Flat") throws -> EmbeddingSpace {
        guard let fingerprint = galleryFingerprint else {
            throw PipelineError("the model has no dml.fingerprint in its metadata: re-export it with dmlkit.export")
        }
        return EmbeddingSpace(name: name, dimension: dimension, fingerprint: fingerprint, metric: .cosine, factory: factory)
    }
}

/// A text model (Hugging Face directory: MiniLM/BERT) and the caption space it defines.
public struct CaptionModel: Sendable {
    /// The encoder.
    public let embedder: TextEmbedder
    /// The directory it was loaded from.
    public let directory: URL
    /// The fingerprint the caption space stores (see `CaptionModel.fingerprint(directory:)`).
    public let fingerprint: String

    /// Loads the model in `directory`; a failure names the directory.
    public init(directory: URL, options: TextEmbedder.Options = .init()) throws {
        do {
            embedder = try TextEmbedder(directory: directory, options: options)
        } catch {
            throw PipelineError("\(directory.path): \(error)")
        }
        self.directory = directory
        fingerprint = Self.fingerprint(directory: directory)
    }

    /// Length of one caption embedding.
    public var dimension: Int { embedder.dimension }

    /// The caption space of this model.
    public func space(name: String = Gallery.captionSpace, factory: String = "Flat") -> EmbeddingSpace {
        EmbeddingSpace(name: name, dimension: dimension, fingerprint: fingerprint, metric: .cosine, factory: factory)
    }

    /// The fingerprint of the text model in `directory`: 64-bit FNV-1a over the small files (config, vocabulary,
    /// tokenizer config, pooling config, each preceded by its name) and the weight file's size, written
    /// `text:fnv1a64:<16 hex digits>`. Cheap, and it changes when the model does; galleries built before this API
    /// existed store the same value.
    public static func fingerprint(directory: URL) -> String {
        var hash = FNV1a()
        for name in ["config.json", "vocab.txt", "tokenizer_config.json", "1_Pooling/config.json"] {
            hash.add(Data(name.utf8))
            if let data = try? Data(contentsOf: directory.appendingPathComponent(name)) { hash.add(data) }
        }
        let weights = directory.appendingPathComponent("model.safetensors").resolvingSymlinksInPath()
        let size = ((try? FileManager.default.attributesOfItem(atPath: weights.path))?[.size] as? Int) ?? -1
        hash.add(Data("model.safetensors:\(size)".utf8))
        return "text:fnv1a64:" + String(format: "%016llx", hash.value)
    }
}

/// 64-bit FNV-1a: a stable, dependency-free hash for fingerprints that need not resist tampering.
struct FNV1a {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
    mutating func add(_ data: Data) {
        for byte in data {
            value ^= UInt64(byte)
            value = value &* 0x0000_0100_0000_01b3
        }
    }
}

extension EmbeddingSpace {
    /// Throws a `PipelineError` saying what to do when `self` (what a model gives) cannot be used on `stored` (what a
    /// gallery holds): names the model (`model`: its file or name), both dimensions and both fingerprints, and says
    /// "another model" when the dimensions alone show it. Returns when they match.
    public func checkMatches(stored: EmbeddingSpace, model: String, gallery: URL) throws {
        guard stored.fingerprint != fingerprint || stored.dimension != dimension else { return }
        let given = "\(model) gives \(dimension)-d vectors (fingerprint \(fingerprint))"
        let held = "the gallery's '\(name)' space at \(gallery.path) holds \(stored.dimension)-d vectors from \(stored.fingerprint)"
        if stored.dimension != dimension {
            throw PipelineError("\(given), but \(held): this is another model; pass the model the gallery was built with")
        }
        throw PipelineError("\(given), but \(held): pass the model the gallery was built with, or build a new gallery "
            + "(into another directory) for this model")
    }
}
