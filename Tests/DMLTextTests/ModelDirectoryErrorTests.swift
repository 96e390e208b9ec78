import DMLText
import Foundation
import Testing

/// A model directory that is incomplete or describes a model the encoder does not implement fails with an error
/// naming the file, key or tensor, never a crash.
@Suite final class ModelDirectoryErrorTests {
    private var made: [URL] = []
    deinit { for url in made { try? FileManager.default.removeItem(at: url) } }

    static let files = ["config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "sentence_bert_config.json", "1_Pooling/config.json"]

    /// A copy of the MiniLM directory made of links, leaving out `missing` and writing `replaced` files.
    private func variant(missing: String? = nil, replaced: [String: String] = [:]) throws -> URL {
        let source = try TextFixtures.modelDirectory()
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dmltext-model-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url.appendingPathComponent("1_Pooling"), withIntermediateDirectories: true)
        made.append(url)
        for file in Self.files where file != missing {
            let target = url.appendingPathComponent(file)
            if let text = replaced[file] {
                try Data(text.utf8).write(to: target)
            } else {
                try FileManager.default.createSymbolicLink(at: target, withDestinationURL: source.appendingPathComponent(file))
            }
        }
        return url
    }

    private func config(_ change: (inout [String: Any]) -> Void) throws -> String {
        let source = try TextFixtures.modelDirectory().appendingPathComponent("config.json")
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: source)) as? [String: Any] ?? [:]
        change(&object)
        return String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    @Test(arguments: ["config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "1_Pooling/config.json"])
    func missingFileIsNamed(_ file: String) throws {
        let url = try variant(missing: file)
        #expect(throws: TextModelError.missingFile(file)) { try TextEmbedder(directory: url) }
    }

    @Test func missingDirectoryIsNamed() throws {
        #expect(throws: TextModelError.notADirectory("/nonexistent/minilm")) { try TextEmbedder(directory: URL(fileURLWithPath: "/nonexistent/minilm")) }
    }

    @Test func unsupportedActivationIsNamed() throws {
        let url = try variant(replaced: ["config.json": try config { $0["hidden_act"] = "relu" }])
        #expect(throws: TextModelError.unsupportedConfig(file: "config.json", key: "hidden_act", value: "relu")) { try TextEmbedder(directory: url) }
    }

    @Test func otherModelTypesAreRefused() throws {
        let url = try variant(replaced: ["config.json": try config { $0["model_type"] = "roberta" }])
        #expect(throws: TextModelError.unsupportedConfig(file: "config.json", key: "model_type", value: "roberta")) { try TextEmbedder(directory: url) }
    }

    @Test func headCountThatDoesNotDivideTheWidthIsRefused() throws {
        let url = try variant(replaced: ["config.json": try config { $0["num_attention_heads"] = 5 }])
        let error = #expect(throws: TextModelError.self) { try TextEmbedder(directory: url) }
        #expect(error?.description.contains("num_attention_heads") == true)
    }

    @Test func missingKeyIsNamed() throws {
        let url = try variant(replaced: ["config.json": try config { $0.removeValue(forKey: "hidden_size") }])
        #expect(throws: TextModelError.invalidConfig(file: "config.json", key: "hidden_size", reason: "is missing")) { try TextEmbedder(directory: url) }
    }

    @Test func configThatDoesNotFitTheWeightsNamesTheTensor() throws {
        let url = try variant(replaced: ["config.json": try config { $0["intermediate_size"] = 1024 }])
        #expect(throws: TextModelError.badTensor(name: "encoder.layer.0.intermediate.dense.weight", reason: "has shape [1536, 384], config.json implies [1024, 384]")) {
            try TextEmbedder(directory: url)
        }
        let deeper = try variant(replaced: ["config.json": try config { $0["num_hidden_layers"] = 7 }])
        #expect(throws: TextModelError.badTensor(name: "encoder.layer.6.attention.self.query.weight", reason: "is missing")) {
            try TextEmbedder(directory: deeper)
        }
    }

    @Test func poolingMustChooseOneSupportedMode() throws {
        let two = try variant(replaced: ["1_Pooling/config.json": #"{"pooling_mode_mean_tokens": true, "pooling_mode_cls_token": true}"#])
        let error = #expect(throws: TextModelError.self) { try TextEmbedder(directory: two) }
        #expect(error?.description.contains("1_Pooling/config.json") == true)
        let weighted = try variant(replaced: ["1_Pooling/config.json": #"{"pooling_mode_weightedmean_tokens": true}"#])
        #expect(throws: TextModelError.unsupportedConfig(file: "1_Pooling/config.json", key: "pooling_mode_weightedmean_tokens", value: "true")) {
            try TextEmbedder(directory: weighted)
        }
    }

    @Test func corruptWeightsFileIsNamed() throws {
        let url = try variant(replaced: ["model.safetensors": "not a safetensors file"])
        let error = #expect(throws: TextModelError.self) { try TextEmbedder(directory: url) }
        #expect(error?.description.hasPrefix("cannot read model.safetensors") == true)
    }

    @Test func maximumLengthBeyondThePositionTableIsRefused() throws {
        let url = try variant(replaced: ["sentence_bert_config.json": #"{"max_seq_length": 4096}"#])
        let error = #expect(throws: TextModelError.self) { try TextEmbedder(directory: url) }
        #expect(error?.description.contains("max_position_embeddings") == true)
    }
}
