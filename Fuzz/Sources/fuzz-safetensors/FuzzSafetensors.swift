import DMLRuntime
import Foundation
import FuzzSupport

/// Model bytes through `SafetensorsFile(bytes:)`, every tensor accessor, `EmbeddingModel(file:)` and, for small
/// models, one forward pass on zeros.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    EmbeddingModel.setThreads(1)
    let bytes = [UInt8](fuzzData(start, count))
    guard let file = try? SafetensorsFile(bytes: bytes) else { return 0 }
    for (name, info) in file.tensors {
        invariant(info.dataRange.count <= bytes.count, "tensor \(name) spans more bytes than the file")
        if let raw = try? file.rawBytes(name) { invariant(raw.count == info.dataRange.count, "rawBytes(\(name)) size") }
        if let floats = try? file.floats(name) { invariant(floats.count == info.elementCount, "floats(\(name)) count") }
        _ = try? file.int8s(name)
        _ = try? file.uint8s(name)
    }
    guard let model = try? EmbeddingModel(file: file, options: .init(maxBatch: 1)) else { return 0 }
    // A forward pass only where its activations are small: a tiny file may legitimately declare a big input.
    let inputSize = model.inputShape.reduce(1) { $0.multipliedReportingOverflow(by: max($1, 0)).partialValue }
    let activations = model.layers.map { $0.outputShape.reduce(1) { $0.multipliedReportingOverflow(by: max($1, 0)).partialValue } }
    guard inputSize > 0, inputSize <= 1 << 14, activations.allSatisfy({ $0 >= 0 && $0 <= 1 << 16 }), model.dimension <= 1 << 16
    else { return 0 }
    let input = [Float](repeating: 0.5, count: inputSize)
    var output = [Float](repeating: 0, count: model.dimension)
    input.withUnsafeBufferPointer { i in
        output.withUnsafeMutableBufferPointer { o in _ = try? model.embed(batch: i, count: 1, into: o) }
    }
    return 0
}
