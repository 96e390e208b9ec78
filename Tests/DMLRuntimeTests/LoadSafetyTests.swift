import Foundation
import Testing
@testable import DMLRuntime

/// What loading refuses: non-finite weights, files changed after export, attributes and tensor roles the op
/// does not declare, and input layouts that do not fit the input shape.
@Suite("Load-time safety")
struct LoadSafetyTests {
    /// `fixture` with the first float of `tensor` overwritten, left unsigned.
    static func tampered(_ fixture: String, tensor: String, value: Float) throws -> SafetensorsFile {
        let source = try SafetensorsFile(contentsOf: Fixtures.url(fixture))
        let tensors = try source.tensors.keys.sorted().map { name -> (String, String, [Int], [UInt8]) in
            var bytes = Array(try source.rawBytes(name))
            if name == tensor { bytes.replaceSubrange(0..<4, with: floatBytes([value])) }
            return (name, try source.info(name).dtype.rawValue, try source.info(name).shape, bytes)
        }
        return try SafetensorsFile(bytes: SafetensorsBytes(tensors: tensors, metadata: source.metadata).bytes())
    }

    @Test("NaN or infinite weights are refused, naming node and tensor", arguments: [Float.nan, .infinity, -.infinity])
    func nonFiniteWeights(_ value: Float) throws {
        let file = try editedModel("mlp-f32.safetensors", tensorBytes: ["fc2.bias": { Array(floatBytes([value])) + $0.dropFirst(4) }]) { $0 }
        #expect(throws: ModelError.nonFiniteWeight(node: "fc2", tensor: "fc2.bias", index: 0)) { try EmbeddingModel(file: file) }
    }

    @Test("an int8 scale of infinity is refused after dequantisation")
    func infiniteScale() throws {
        let file = try editedModel("mlp-int8.safetensors", tensorBytes: ["fc2.weight.scale": { Array(floatBytes([.infinity])) + $0.dropFirst(4) }]) { $0 }
        #expect(throws: ModelError.nonFiniteWeight(node: "fc2", tensor: "fc2.weight", index: 0)) { try EmbeddingModel(file: file) }
    }

    @Test("a file changed after export is refused unless the check is turned off")
    func fingerprintEnforced() throws {
        let file = try Self.tampered("mlp-f32.safetensors", tensor: "fc2.bias", value: 0.125)
        let stored = try #require(file.metadata["dml.fingerprint"])
        let computed = try #require(try file.computeFingerprint())
        #expect(stored != computed)
        #expect(throws: ModelError.fingerprintMismatch(stored: stored, computed: computed)) { try EmbeddingModel(file: file) }
        let loaded = try EmbeddingModel(file: file, options: .init(verifyFingerprint: false))
        #expect(loaded.dimension == 16)
    }

    @Test("a file without a fingerprint loads (nothing to check)")
    func noFingerprint() throws {
        let source = try SafetensorsFile(contentsOf: Fixtures.url("mlp-f32.safetensors"))
        var metadata = source.metadata
        metadata["dml.fingerprint"] = nil
        let tensors = try source.tensors.keys.sorted().map { name in
            (name, try source.info(name).dtype.rawValue, try source.info(name).shape, Array(try source.rawBytes(name)))
        }
        let file = try SafetensorsFile(bytes: SafetensorsBytes(tensors: tensors, metadata: metadata).bytes())
        #expect(try EmbeddingModel(file: file).spec.fingerprint == nil)
    }

    @Test("an attribute the op does not declare is refused")
    func unknownAttribute() throws {
        let file = try editedModel("resnet-f32.safetensors") { $0.replacingOccurrences(of: #""op":"relu""#, with: #""op":"relu","attrs":{"inplace":true}"#) }
        #expect(throws: ModelError.badAttribute(node: "stem_2", attribute: "inplace", reason: "is not an attribute of relu")) { try EmbeddingModel(file: file) }
    }

    @Test("an attribute of the wrong kind is refused")
    func wrongKind() throws {
        let file = try editedModel("resnet-f32.safetensors") { $0.replacingOccurrences(of: #""padding":[1,1]"#, with: #""padding":"same""#) }
        #expect(throws: ModelError.self) { try EmbeddingModel(file: file) }
    }

    @Test("a tensor role the op does not declare is refused")
    func unknownRole() throws {
        let file = try editedModel("mlp-f32.safetensors") { $0.replacingOccurrences(of: #""bias":"fc1.bias""#, with: #""shift":"fc1.bias""#) }
        #expect(throws: ModelError.badAttribute(node: "fc1", attribute: "tensors.shift", reason: "is not a tensor role of linear")) { try EmbeddingModel(file: file) }
    }

    @Test("the input layout is read and must fit the input shape")
    func layouts() throws {
        #expect(try EmbeddingModel(contentsOf: Fixtures.url("op-tokens.safetensors")).spec.inputLayout == .ntd)
        #expect(try EmbeddingModel(contentsOf: Fixtures.url("op-vit.safetensors")).spec.inputLayout == .nchw)
        #expect(try EmbeddingModel(contentsOf: Fixtures.url("mlp-f32.safetensors")).spec.inputLayout == .nc)
        let legacy = try editedModel("mlp-f32.safetensors") { $0.replacingOccurrences(of: #","layout":"NC""#, with: "") }
        #expect(try EmbeddingModel(file: legacy).spec.inputLayout == nil)
        let wrongRank = try editedModel("mlp-f32.safetensors") { $0.replacingOccurrences(of: #""layout":"NC""#, with: #""layout":"NCHW""#) }
        #expect(throws: ModelError.invalidLayout("NCHW needs a 3-D input shape, got [32]")) { try EmbeddingModel(file: wrongRank) }
        let unknown = try editedModel("mlp-f32.safetensors") { $0.replacingOccurrences(of: #""layout":"NC""#, with: #""layout":"NHWC""#) }
        #expect(throws: ModelError.self) { try EmbeddingModel(file: unknown) }
    }

    @Test("ops with the wrong number of inputs are refused")
    func arity() throws {
        let file = try editedModel("mlp-f32.safetensors") { $0.replacingOccurrences(of: #""inputs":["fc1"]"#, with: #""inputs":["fc1","fc1"]"#) }
        #expect(throws: ModelError.self) { try EmbeddingModel(file: file) }
    }

    @Test("attention over a sequence too long for its scratch space is refused, not allocated")
    func hugeAttention() throws {
        // 20000 tokens: q/k/v (20000 x 24) + context (20000 x 8) + scores (20000 x 20000) floats.
        let file = try editedModel("op-tokens.safetensors") { $0.replacingOccurrences(of: #""shape": [6, 8]"#, with: #""shape": [20000, 8]"#) }
        #expect(throws: ModelError.shapeMismatch(node: "attn", reason: "needs 400640000 floats of scratch space per sample, more than 268435456")) {
            try EmbeddingModel(file: file)
        }
    }

    @Test("a float attribute beyond float range is refused")
    func hugeScalar() throws {
        let file = try editedModel("op-activations.safetensors") { $0.replacingOccurrences(of: #""scalar": 0.25"#, with: #""scalar": 1e300"#) }
        #expect(throws: ModelError.badAttribute(node: "plus", attribute: "scalar", reason: "must be a finite number within float range")) {
            try EmbeddingModel(file: file)
        }
    }

    struct BadGraph: CustomStringConvertible, Sendable {
        var fixture: String, find: String, replace: String, node: String
        var description: String { "\(fixture): \(replace)" }
    }

    /// Wrong shapes or attributes in the new ops: each refused at load with the node's name, never a trap.
    static let badGraphs: [BadGraph] = [
        BadGraph(fixture: "broadcast", find: #""shape": [5, 1, 1]}"#, replace: #""shape": [3, 1, 1]}"#, node: "rows"),  // 5 values
        BadGraph(fixture: "broadcast", find: #""shape": [1, 4, 1]}"#, replace: #""shape": [1, 1, 4]}"#, node: "ratio"),  // [5, 4, 6] / [1, 1, 4]
        BadGraph(fixture: "broadcast", find: #""dims": [0, 2, 3, 1]"#, replace: #""dims": [1, 0, 2, 3]"#, node: "last"),
        BadGraph(fixture: "broadcast", find: #""dims": [0, 2, 3, 1]"#, replace: #""dims": [0, 2, 2, 1]"#, node: "last"),
        BadGraph(fixture: "shapes", find: #""start": 4, "end": 1048576"#, replace: #""start": 8, "end": 1048576"#, node: "right"),
        BadGraph(fixture: "shapes", find: #""dim": 2, "index": -1"#, replace: #""dim": 2, "index": 4"#, node: "row"),
        BadGraph(fixture: "shapes", find: #""dims": [1, -1]"#, replace: #""dims": [1, 1]"#, node: "apart"),
        BadGraph(fixture: "shapes", find: #""dims": [2, 3], "keepdim": true"#, replace: #""dims": [0, 3], "keepdim": true"#, node: "spatial"),
        BadGraph(fixture: "tokens", find: #""num_heads": 2"#, replace: #""num_heads": 3"#, node: "attn"),
        BadGraph(fixture: "tokens", find: #""softmax", "inputs": ["scores"], "attrs": {"dim": 3}"#, replace: #""softmax", "inputs": ["scores"], "attrs": {"dim": 4}"#, node: "probs"),
        BadGraph(fixture: "tokens", find: #""inputs": ["by_head", "by_head_t"]"#, replace: #""inputs": ["by_head", "by_head"]"#, node: "scores"),
        BadGraph(fixture: "pooling", find: #""output_size": [4, 3]"#, replace: #""output_size": [0, 3]"#, node: "adapt_avg"),
    ]

    @Test("shape and attribute errors in the new ops name the node", arguments: badGraphs)
    func badGraph(_ bad: BadGraph) throws {
        let file = try editedModel("op-\(bad.fixture).safetensors") { json in
            #expect(json.contains(bad.find), "the edit applies")
            return json.replacingOccurrences(of: bad.find, with: bad.replace)
        }
        do {
            _ = try EmbeddingModel(file: file)
            Issue.record("\(bad) loaded")
        } catch let error as ModelError {
            #expect(error.description.contains("'\(bad.node)'"), "\(error)")
        }
    }
}
