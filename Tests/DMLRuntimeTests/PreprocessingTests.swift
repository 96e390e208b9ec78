import Foundation
import Testing
@testable import DMLRuntime

/// Pixels in, embeddings out: the runtime's preprocessing against the same steps done with torch ops.
@Suite("Image preprocessing")
struct PreprocessingTests {
    static func run(_ key: String, height: Int, width: Int) throws -> (actual: [Float], expected: [Float]) {
        let golden = try SafetensorsFile(contentsOf: Fixtures.url("cnn-pixels.golden.safetensors"))
        let pixels = try golden.uint8s(key)
        let expected = try golden.floats(key + "_output").array
        let model = try EmbeddingModel(contentsOf: Fixtures.url("cnn-f32.safetensors"))
        let embeddings = try pixels.withUnsafeBufferPointer {
            try model.embed(pixels: $0, width: width, height: height, format: .rgb8, count: 17)
        }
        // embed() normalises; compare against the normalised PyTorch output.
        var normalised = expected
        normalised.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: 17, width: model.dimension) }
        return (embeddings, normalised)
    }

    @Test("RGB pixels at the model's size match PyTorch")
    func nativeSize() throws {
        let (actual, expected) = try Self.run("pixels", height: 16, width: 16)
        #expect(maxAbsError(actual, expected) <= 1e-4)
    }

    @Test("RGB pixels of another size are resized bilinearly like F.interpolate")
    func resized() throws {
        let (actual, expected) = try Self.run("pixels_resized", height: 21, width: 13)
        #expect(maxAbsError(actual, expected) <= 1e-4)
    }

    @Test("BGR pixels give the same embedding as the same image in RGB")
    func channelOrder() throws {
        let golden = try SafetensorsFile(contentsOf: Fixtures.url("cnn-pixels.golden.safetensors"))
        let rgb = Array(try golden.uint8s("pixels").prefix(16 * 16 * 3))
        var bgr = rgb
        for p in stride(from: 0, to: bgr.count, by: 3) { bgr.swapAt(p, p + 2) }
        let model = try EmbeddingModel(contentsOf: Fixtures.url("cnn-f32.safetensors"))
        let a = try rgb.withUnsafeBufferPointer { try model.embed(pixels: $0, width: 16, height: 16, format: .rgb8) }
        let b = try bgr.withUnsafeBufferPointer { try model.embed(pixels: $0, width: 16, height: 16, format: .bgr8) }
        #expect(maxAbsError(a, b) == 0)
    }

    @Test("a pixel buffer of the wrong length is an error")
    func wrongLength() throws {
        let model = try EmbeddingModel(contentsOf: Fixtures.url("cnn-f32.safetensors"))
        let pixels = [UInt8](repeating: 0, count: 16 * 16 * 3 - 1)
        #expect(throws: InferenceError.self) {
            _ = try pixels.withUnsafeBufferPointer { try model.embed(pixels: $0, width: 16, height: 16, format: .rgb8) }
        }
    }

    @Test("pixels for a model without preprocessing are an error")
    func noPreprocessing() throws {
        let model = try EmbeddingModel(contentsOf: Fixtures.url("resnet-f32.safetensors"))
        let pixels = [UInt8](repeating: 0, count: 16 * 16 * 3)
        #expect(throws: InferenceError.preprocessing("the model declares no image preprocessing")) {
            _ = try pixels.withUnsafeBufferPointer { try model.embed(pixels: $0, width: 16, height: 16, format: .rgb8) }
        }
    }
}
