import DMLIndex
import DMLKit
import DMLRuntime
import DMLText
import Foundation

// Pieces shared by `dml gallery` and `dml demo`: loading models as gallery spaces, reading captions and poses,
// embedding decoded images, progress lines.

/// The image model as the gallery's "image" space.
func imageSpace(_ model: EmbeddingModel, factory: String = "Flat") throws -> EmbeddingSpace {
    guard let fingerprint = model.spec.fingerprint else {
        throw CLIError("the model has no dml.fingerprint in its metadata: re-export it with dmlkit.export")
    }
    return EmbeddingSpace(name: "image", dimension: model.dimension, fingerprint: fingerprint, metric: .cosine, factory: factory)
}

func loadImageModel(_ path: String) throws -> EmbeddingModel {
    do {
        return try EmbeddingModel(contentsOf: fileURL(path))
    } catch {
        throw CLIError("\(path): \(error)")
    }
}

/// A text model and the caption space it defines.
struct CaptionModel {
    let embedder: TextEmbedder
    let space: EmbeddingSpace

    /// Loads a Hugging Face model directory. The fingerprint hashes the small files (config, vocabulary, pooling)
    /// and the weight file's size: cheap, and it changes when the model does.
    init(directory path: String, factory: String = "Flat") throws {
        let url = fileURL(path)
        do {
            embedder = try TextEmbedder(directory: url)
        } catch {
            throw CLIError("\(path): \(error)")
        }
        var hash = FNV1a()
        for name in ["config.json", "vocab.txt", "tokenizer_config.json", "1_Pooling/config.json"] {
            hash.add(Data(name.utf8))
            if let data = try? Data(contentsOf: url.appendingPathComponent(name)) { hash.add(data) }
        }
        let weights = url.appendingPathComponent("model.safetensors").resolvingSymlinksInPath()
        let size = ((try? FileManager.default.attributesOfItem(atPath: weights.path))?[.size] as? Int) ?? -1
        hash.add(Data("model.safetensors:\(size)".utf8))
        let fingerprint = "text:fnv1a64:" + String(format: "%016llx", hash.value)
        space = EmbeddingSpace(name: Gallery.captionSpace, dimension: embedder.dimension, fingerprint: fingerprint,
                               metric: .cosine, factory: factory)
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

/// Captions per image id from a COCO captions file (`{"annotations": [{"image_id", "caption"}, …]}`).
func readCaptions(_ path: String) throws -> [Int64: [String]] {
    let data: Data
    do { data = try Data(contentsOf: fileURL(path)) } catch { throw CLIError("\(path): cannot read (\(error.localizedDescription))") }
    guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
          let annotations = root["annotations"] as? [Any]
    else { throw CLIError("\(path): not a COCO captions file (no 'annotations' list)") }
    var captions: [Int64: [String]] = [:]
    for (i, entry) in annotations.enumerated() {
        guard let entry = entry as? [String: Any], let imageID = (entry["image_id"] as? NSNumber)?.int64Value,
              let text = entry["caption"] as? String, !text.trimmingCharacters(in: .whitespaces).isEmpty
        else { throw CLIError("\(path): annotations[\(i)] needs an integer 'image_id' and a non-empty 'caption'") }
        captions[imageID, default: []].append(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }
    return captions
}

/// A pose from a JSON file: 51 numbers `[x, y, v, …]`, 17 triples `[[x, y, v], …]`, or an object with "keypoints".
func readPose(_ path: String) throws -> Pose {
    let data: Data
    do { data = try Data(contentsOf: fileURL(path)) } catch { throw CLIError("\(path): cannot read (\(error.localizedDescription))") }
    guard var value = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else {
        throw CLIError("\(path): not valid JSON")
    }
    if let object = value as? [String: Any], let keypoints = object["keypoints"] { value = keypoints }
    var numbers: [Double] = []
    if let flat = value as? [NSNumber] {
        numbers = flat.map(\.doubleValue)
    } else if let triples = value as? [[NSNumber]], triples.allSatisfy({ $0.count == 3 }) {
        numbers = triples.flatMap { $0.map(\.doubleValue) }
    } else {
        throw CLIError("\(path): a pose is 51 numbers [x, y, v, ...] or 17 triples [[x, y, v], ...]")
    }
    do {
        return try Pose(coco: numbers)
    } catch {
        throw CLIError("\(path): \(error)")
    }
}

func decodeImage(_ path: String) throws -> RGBImage {
    do {
        return try RGBImage(contentsOf: fileURL(path))
    } catch {
        throw CLIError("\(path): \(error)")
    }
}

/// Embeddings of decoded images, one row each; same-sized images go through the model as one batch.
func embedImages(_ images: [RGBImage], with model: EmbeddingModel) throws -> [Float] {
    guard let first = images.first else { return [] }
    if images.allSatisfy({ $0.width == first.width && $0.height == first.height }) {
        let pixels = images.flatMap(\.pixels)
        return try pixels.withUnsafeBufferPointer {
            try model.embed(pixels: $0, width: first.width, height: first.height, format: .rgb8, count: images.count)
        }
    }
    var out: [Float] = []
    for image in images {
        out += try image.pixels.withUnsafeBufferPointer { try model.embed(pixels: $0, width: image.width, height: image.height, format: .rgb8) }
    }
    return out
}

/// A progress line on stderr, rewritten in place, only when stderr is a terminal: scripts see no progress, so a
/// failing command's stderr is its one error line.
struct ProgressLine {
    let label: String
    let total: Int
    private let start = DispatchTime.now().uptimeNanoseconds
    private let interactive = isatty(STDERR_FILENO) != 0

    init(_ label: String, total: Int) {
        self.label = label
        self.total = total
    }

    var elapsed: Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }

    func update(_ done: Int) {
        guard interactive else { return }
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        FileHandle.standardError.write(Data("\r\(label) \(done)/\(total) (\(Int(rate))/s)   ".utf8))
    }

    func finish() {
        guard interactive else { return }
        let rate = elapsed > 0 ? Double(total) / elapsed : 0
        FileHandle.standardError.write(Data("\r\(label) \(total)/\(total) in \(String(format: "%.1f", elapsed)) s (\(Int(rate))/s)\n".utf8))
    }
}

/// Opens the store of an existing gallery, or fails with one line.
func openReader(_ path: String) throws -> GalleryReader {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw CLIError("no gallery directory at \(path)")
    }
    return try GalleryReader(directory: fileURL(path))
}
