import DMLKit
import DMLRuntime
import Foundation

// Command-line pieces shared by `dml gallery` and `dml demo`: loading models, reading a pose file, decoding an image
// with one-line errors, progress lines. The pipeline itself is DMLKit's (`GalleryBuilder` and friends).

/// The image model, or one line naming the file.
func loadImageModel(_ path: String) throws -> EmbeddingModel {
    try EmbeddingModel.load(contentsOf: fileURL(path))
}

/// The text model in a directory, or one line naming it.
func loadCaptionModel(_ path: String) throws -> CaptionModel {
    try CaptionModel(directory: fileURL(path))
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

/// Shows a library call's `BuildProgress` as progress lines, one per stage.
final class ProgressPrinter: @unchecked Sendable {
    private let lock = NSLock()
    private var line: ProgressLine?
    private var stage: BuildProgress.Stage?

    func report(_ progress: BuildProgress) {
        lock.withLock {
            if stage != progress.stage {
                line?.finish()
                line = ProgressLine(progress.stage.rawValue, total: progress.total)
                stage = progress.stage
            }
            line?.update(progress.done)
        }
    }

    func finish() { lock.withLock { line?.finish(); line = nil } }
}

/// Opens the store of an existing gallery, or fails with one line.
func openReader(_ path: String) throws -> GalleryReader {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw CLIError("no gallery directory at \(path)")
    }
    return try GalleryReader(directory: fileURL(path))
}
