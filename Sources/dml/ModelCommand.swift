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
        let preprocessing: Preprocessing?
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
            let loaded = try EmbeddingModel(contentsOf: fileURL(model))
            let spec = loaded.spec
            let size = (try? FileManager.default.attributesOfItem(atPath: model)[.size] as? Int) ?? 0
            let summary = Summary(
                path: model, formatVersion: spec.formatVersion, fingerprint: spec.fingerprint,
                fingerprintMatches: try spec.fingerprint.map { try loaded.file.computeFingerprint() == $0 },
                weightDTypes: loaded.weightDTypes, parameters: loaded.parameterCount, fileBytes: size,
                inputShape: spec.inputShape,
                preprocessing: spec.preprocessing.map {
                    .init(channelOrder: $0.channelOrder.rawValue, scale: $0.scale, mean: $0.mean, std: $0.std)
                },
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
            let check = s.fingerprintMatches.map { $0 ? " (matches the file)" : " (DOES NOT match: the file changed after export)" } ?? ""
            print("fingerprint:    \(s.fingerprint ?? "none")\(check)")
            print("weights:        \(s.weightDTypes.joined(separator: ", ")), \(s.parameters) parameters")
            print("input:          \(s.inputShape)")
            if let p = s.preprocessing {
                print("preprocessing:  8-bit \(p.channelOrder) pixels, x * \(p.scale), mean \(p.mean), std \(p.std)")
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
