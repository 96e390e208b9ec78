import Foundation
@testable import DMLRuntime

/// Committed fixtures written by `python -m dmlkit.export.fixtures Tests/Fixtures/runtime`.
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/runtime")

    static func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

    /// Golden inputs and PyTorch outputs.
    struct Golden {
        let input: [Float]
        let output: [Float]
        let count: Int
        let file: SafetensorsFile
    }

    static func golden(_ name: String) throws -> Golden {
        let file = try SafetensorsFile(contentsOf: url("\(name).golden.safetensors"))
        let input = try file.floats("input").array
        let output = try file.floats("output").array
        return Golden(input: input, output: output, count: try file.info("input").shape[0], file: file)
    }
}

/// Largest absolute difference; infinity when a value is NaN or the lengths differ, so a comparison fails.
func maxAbsError(_ a: [Float], _ b: [Float]) -> Float {
    guard a.count == b.count, !a.isEmpty else { return .infinity }
    var worst: Float = 0
    for (x, y) in zip(a, b) {
        let error = abs(x - y)
        guard !error.isNaN else { return .infinity }
        worst = max(worst, error)
    }
    return worst
}

/// Smallest per-row cosine similarity between two row-major matrices of width `width`; -infinity when a
/// row holds NaN, is zero, or the shapes differ, so a comparison fails.
func minCosine(_ a: [Float], _ b: [Float], width: Int) -> Float {
    guard a.count == b.count, width > 0, !a.isEmpty, a.count % width == 0 else { return -.infinity }
    var worst: Float = 1
    for start in stride(from: 0, to: a.count, by: width) {
        var dot: Float = 0, na: Float = 0, nb: Float = 0
        for i in start..<(start + width) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i] }
        let cosine = dot / (na.squareRoot() * nb.squareRoot())
        guard cosine.isFinite else { return -.infinity }
        worst = min(worst, cosine)
    }
    return worst
}

/// Writes safetensors bytes by hand, so tests can build broken files on purpose.
struct SafetensorsBytes {
    var header: String
    var data: [UInt8]

    /// A well-formed file from `(name, dtype, shape, bytes)` entries laid out back to back.
    init(tensors: [(String, String, [Int], [UInt8])], metadata: [String: String] = [:]) {
        var entries: [String] = []
        var data: [UInt8] = []
        for (name, dtype, shape, bytes) in tensors {
            entries.append("\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":[\(data.count),\(data.count + bytes.count)]}")
            data += bytes
        }
        if !metadata.isEmpty {
            let json = try! JSONSerialization.data(withJSONObject: metadata, options: [.sortedKeys])
            entries.append("\"__metadata__\":" + String(decoding: json, as: UTF8.self))
        }
        header = "{" + entries.joined(separator: ",") + "}"
        self.data = data
    }

    init(header: String, data: [UInt8]) {
        self.header = header
        self.data = data
    }

    /// Length prefix + header + data; `headerLength` overrides the prefix.
    func bytes(headerLength: UInt64? = nil) -> [UInt8] {
        let json = Array(header.utf8)
        let length = headerLength ?? UInt64(json.count)
        return withUnsafeBytes(of: length.littleEndian, Array.init) + json + data
    }
}

func floatBytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
}

/// Rebuilds a fixture model with its architecture JSON passed through `edit` (for bad-model tests).
func editedModel(_ fixture: String, tensorDType: [String: String] = [:], tensorBytes: [String: ([UInt8]) -> [UInt8]] = [:],
                 edit: (String) -> String) throws -> SafetensorsFile {
    let file = try SafetensorsFile(contentsOf: Fixtures.url(fixture))
    var metadata = file.metadata
    metadata["dml.architecture"] = edit(metadata["dml.architecture"] ?? "")
    let tensors = try file.tensors.keys.sorted().map { name -> (String, String, [Int], [UInt8]) in
        let info = try file.info(name)
        var bytes = Array(try file.rawBytes(name))
        var dtype = info.dtype.rawValue
        if let forced = tensorDType[name] {
            // Reinterpret as a different dtype of the same total size (e.g. F32 -> I32).
            dtype = forced
            bytes = Array(bytes.prefix(info.elementCount * (TensorDType(rawValue: forced)?.byteSize ?? 4)))
        }
        if let change = tensorBytes[name] { bytes = change(bytes) }
        return (name, dtype, info.shape, bytes)
    }
    // Re-signed, so a test meets the problem it made rather than the fingerprint check.
    let unsigned = try SafetensorsFile(bytes: SafetensorsBytes(tensors: tensors, metadata: metadata).bytes())
    metadata["dml.fingerprint"] = try unsigned.computeFingerprint()
    return try SafetensorsFile(bytes: SafetensorsBytes(tensors: tensors, metadata: metadata).bytes())
}
