import Foundation
import Testing
@testable import DMLRuntime

/// Bad models and bad inputs give typed errors naming the problem, never a crash.
@Suite("Model and input errors")
struct ModelErrorTests {
    @Test("an unknown op is named with its node")
    func unknownOp() throws {
        let file = try editedModel("resnet-f32.safetensors") { $0.replacingOccurrences(of: #""op":"relu""#, with: #""op":"swish42""#) }
        #expect(throws: ModelError.unknownOp(node: "stem_2", op: "swish42")) { try EmbeddingModel(file: file) }
    }

    @Test("a weight dtype the op cannot take is refused")
    func wrongDType() throws {
        let file = try editedModel("mlp-f32.safetensors", tensorDType: ["fc1.weight": "I32"]) { $0 }
        #expect(throws: ModelError.unsupportedDType(node: "fc1", tensor: "fc1.weight", dtype: "I32")) { try EmbeddingModel(file: file) }
    }

    @Test("int8 weights without their scales are refused")
    func int8WithoutScale() throws {
        let source = try SafetensorsFile(contentsOf: Fixtures.url("mlp-int8.safetensors"))
        let tensors = try source.tensors.keys.sorted().filter { $0 != "fc2.weight.scale" }.map { name in
            (name, try source.info(name).dtype.rawValue, try source.info(name).shape, Array(try source.rawBytes(name)))
        }
        let file = try SafetensorsFile(bytes: SafetensorsBytes(tensors: tensors, metadata: source.metadata).bytes())
        // Unsigned edit: skip the fingerprint check so the problem under test is the one reported.
        #expect(throws: ModelError.self) { try EmbeddingModel(file: file, options: .init(verifyFingerprint: false)) }
    }

    @Test("weights that do not fit the input shape are refused")
    func weightShapeMismatch() throws {
        let file = try editedModel("mlp-f32.safetensors") { $0.replacingOccurrences(of: #""shape":[32]"#, with: #""shape":[31]"#) }
        #expect(throws: ModelError.shapeMismatch(node: "fc1", reason: "linear takes 32 features, input shape is [31]")) {
            try EmbeddingModel(file: file)
        }
    }

    @Test("an unsupported format version is named")
    func formatVersion() throws {
        let source = try SafetensorsFile(contentsOf: Fixtures.url("mlp-f32.safetensors"))
        var metadata = source.metadata
        metadata["dml.format_version"] = "99"
        let tensors = try source.tensors.keys.sorted().map { name in
            (name, try source.info(name).dtype.rawValue, try source.info(name).shape, Array(try source.rawBytes(name)))
        }
        let file = try SafetensorsFile(bytes: SafetensorsBytes(tensors: tensors, metadata: metadata).bytes())
        #expect(throws: ModelError.unsupportedFormatVersion("99")) { try EmbeddingModel(file: file) }
    }

    @Test("a safetensors file without DMLKit metadata is not a model")
    func missingMetadata() throws {
        let file = try SafetensorsFile(bytes: SafetensorsBytes(tensors: [("a", "F32", [1], floatBytes([1]))]).bytes())
        #expect(throws: ModelError.missingMetadata("dml.format_version")) { try EmbeddingModel(file: file) }
    }

    @Test("a node reading an undefined value is refused")
    func unknownInput() throws {
        let file = try editedModel("mlp-f32.safetensors") { $0.replacingOccurrences(of: #""inputs":["fc1"]"#, with: #""inputs":["nowhere"]"#) }
        #expect(throws: ModelError.unknownInput(node: "act1", input: "nowhere")) { try EmbeddingModel(file: file) }
    }

    @Test("input that does not hold whole samples of the input shape is refused")
    func inputShapeMismatch() throws {
        let model = try EmbeddingModel(contentsOf: Fixtures.url("mlp-f32.safetensors"))
        #expect(throws: InferenceError.inputSizeMismatch(expected: 64, got: 63, shape: [32])) {
            _ = try model.embed(batch: [Float](repeating: 0, count: 63), count: 2)
        }
    }

    @Test("NaN input is refused with its position")
    func nanInput() throws {
        let model = try EmbeddingModel(contentsOf: Fixtures.url("cnn-f32.safetensors"))
        var input = [Float](repeating: 0.5, count: 2 * model.inputSize)
        input[model.inputSize + 7] = .nan
        #expect(throws: InferenceError.nonFiniteInput(index: model.inputSize + 7)) { _ = try model.embed(batch: input, count: 2) }
        input[model.inputSize + 7] = .infinity
        #expect(throws: InferenceError.nonFiniteInput(index: model.inputSize + 7)) { _ = try model.embed(batch: input, count: 2) }
    }

    @Test("absurd attribute values are refused, not overflowed")
    func hugeAttribute() throws {
        let file = try editedModel("resnet-f32.safetensors") { $0.replacingOccurrences(of: #""padding":[1,1]"#, with: #""padding":[1099511627776,1]"#) }
        #expect(throws: ModelError.self) { try EmbeddingModel(file: file) }
    }

    @Test("an input shape too large to allocate is refused")
    func hugeInputShape() throws {
        let file = try editedModel("mlp-f32.safetensors") { $0.replacingOccurrences(of: #""shape":[32]"#, with: #""shape":[16000000,16000000,32]"#) }
        #expect(throws: ModelError.self) { try EmbeddingModel(file: file) }
    }

    @Test("a layer with an empty output is refused")
    func emptyOutput() throws {
        // fc4 with zero output features: an empty weight [0, 48] and bias [0].
        let source = try SafetensorsFile(contentsOf: Fixtures.url("mlp-f32.safetensors"))
        let tensors = try source.tensors.keys.sorted().map { name -> (String, String, [Int], [UInt8]) in
            if name == "fc4.weight" { return (name, "F32", [0, 48], []) }
            if name == "fc4.bias" { return (name, "F32", [0], []) }
            return (name, try source.info(name).dtype.rawValue, try source.info(name).shape, Array(try source.rawBytes(name)))
        }
        let file = try SafetensorsFile(bytes: SafetensorsBytes(tensors: tensors, metadata: source.metadata).bytes())
        // Unsigned edit: skip the fingerprint check so the problem under test is the one reported.
        #expect(throws: ModelError.self) { try EmbeddingModel(file: file, options: .init(verifyFingerprint: false)) }
    }

    @Test("a sample count whose size overflows is refused")
    func overflowingCount() throws {
        let model = try EmbeddingModel(contentsOf: Fixtures.url("mlp-f32.safetensors"))
        #expect(throws: InferenceError.self) { _ = try model.embed(batch: [Float](repeating: 0, count: 32), count: Int.max / 2) }
        #expect(throws: InferenceError.self) { _ = try model.embed(batch: [], count: -1) }
    }

    @Test("errors read as one clear line")
    func messages() {
        #expect(ModelError.unknownOp(node: "n1", op: "foo").description == "unknown op 'foo' in node 'n1'")
        #expect(SafetensorsError.overlappingTensors("a", "b").description.contains("overlapping"))
    }
}
