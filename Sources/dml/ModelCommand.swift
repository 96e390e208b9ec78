import ArgumentParser
import DMLRuntime
import Foundation

/// `dml model …`: inspect exported model files.
struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Inspect exported model files.",
        subcommands: [Info.self]
    )

    /// What `dml model info --json` prints.
    struct Summary: Encodable {
        struct Layer: Encodable { let name: String, op: String, outputShape: [Int] }
        struct Preprocessing: Encodable { let channelOrder: String, scale: Float, mean: [Float], std: [Float] }
        let path: String
        let formatVersion: Int
        let fingerprint: String?
        /// Whether the fingerprint recomputed from the file equals the stored one (nil when none is stored).
        let fingerprintMatches: Bool?
        let weightDTypes: [String]
        let parameters: Int
        let fileBytes: Int
        let inputShape: [Int]
        /// `input.layout` (NCHW, NTD, NC), nil for files written before layouts were declared.
        let inputLayout: String?
        let preprocessing: Preprocessing?
        /// The factor a leading `input_scale` node applies to raw float inputs (the trainer's loader scaling).
        let inputScale: Float?
        let outputDimension: Int
        let normalize: Bool
        let foldedAtLoad: [String]
        let layers: [Layer]
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Architecture, parameters, dtype, fingerprint and input spec of a model.")
        @Argument(help: "Model file (.safetensors).") var model: String
        @Flag(help: "Print as JSON.") var json = false

        func run() throws {
            // Loaded unchecked so a changed file can still be inspected; the mismatch is reported below.
            let loaded = try EmbeddingModel(contentsOf: fileURL(model), options: .init(verifyFingerprint: false))
            let spec = loaded.spec
            let size = (try? FileManager.default.attributesOfItem(atPath: model)[.size] as? Int) ?? 0
            let summary = Summary(
                path: model, formatVersion: spec.formatVersion, fingerprint: spec.fingerprint,
                fingerprintMatches: try spec.fingerprint.map { try loaded.file.computeFingerprint() == $0 },
                weightDTypes: loaded.weightDTypes, parameters: loaded.parameterCount, fileBytes: size,
                inputShape: spec.inputShape, inputLayout: spec.inputLayout?.rawValue,
                preprocessing: spec.preprocessing.map {
                    .init(channelOrder: $0.channelOrder.rawValue, scale: $0.scale, mean: $0.mean, std: $0.std)
                },
                inputScale: spec.inputScale,
                outputDimension: loaded.dimension, normalize: spec.normalize, foldedAtLoad: loaded.foldedBatchNorms,
                layers: loaded.layers.map { .init(name: $0.name, op: $0.op, outputShape: $0.outputShape) })
            if json {
                try printJSON(summary)
            } else {
                printText(summary)
            }
        }

        private func printText(_ s: Summary) {
            print("model:          \(s.path) (\(s.fileBytes) bytes)")
            print("format version: \(s.formatVersion)")
            let check = s.fingerprintMatches.map {
                $0 ? " (matches the file)" : " (DOES NOT match: the file changed after export; dml embed refuses it without --ignore-fingerprint)"
            } ?? ""
            print("fingerprint:    \(s.fingerprint ?? "none")\(check)")
            print("weights:        \(s.weightDTypes.joined(separator: ", ")), \(s.parameters) parameters")
            let expected = "(n, " + s.inputShape.map(String.init).joined(separator: ", ") + ")"
            print("input:          \(s.inputShape), layout \(s.inputLayout ?? "unspecified"): float .npy of shape \(expected)")
            if let p = s.preprocessing {
                print("preprocessing:  8-bit \(p.channelOrder) pixels, x * \(p.scale), mean \(p.mean), std \(p.std) (uint8 .npy (n, H, W, 3) or float as above, already preprocessed)")
            } else if let scale = s.inputScale {
                print("preprocessing:  raw float input scaled by \(scale) inside the model (node input_scale)")
            } else {
                print("preprocessing:  none (float input)")
            }
            print("output:         \(s.outputDimension) floats\(s.normalize ? ", L2-normalised" : "")")
            if !s.foldedAtLoad.isEmpty { print("folded at load: \(s.foldedAtLoad.joined(separator: ", "))") }
            var counts: [String: Int] = [:]
            for layer in s.layers { counts[layer.op, default: 0] += 1 }
            print("layers (\(s.layers.count)): " + counts.sorted { $0.key < $1.key }.map { "\($0.key) x\($0.value)" }.joined(separator: ", "))
            let width = s.layers.map(\.name.count).max() ?? 0
            for layer in s.layers {
                print("  \(layer.name.padding(toLength: width, withPad: " ", startingAt: 0))  \(layer.op.padding(toLength: 16, withPad: " ", startingAt: 0)) -> \(layer.outputShape)")
            }
        }
    }
}
