import Foundation
import Testing
@testable import DMLRuntime

/// The reader accepts well-formed files and refuses every malformed one with a typed error.
@Suite("Safetensors reader")
struct SafetensorsTests {
    static let twoTensors = SafetensorsBytes(tensors: [
        ("a", "F32", [2], floatBytes([1, 2])),
        ("b", "F32", [1], floatBytes([3])),
    ], metadata: ["k": "v"])

    @Test("a well-formed file exposes tensors and metadata")
    func readsValidFile() throws {
        let file = try SafetensorsFile(bytes: Self.twoTensors.bytes())
        #expect(file.metadata == ["k": "v"])
        #expect(try file.floats("a").array == [1, 2])
        #expect(try file.floats("b").array == [3])
        #expect(try file.info("a").shape == [2])
    }

    @Test("a file shorter than the length prefix is truncated")
    func truncatedPrefix() {
        #expect(throws: SafetensorsError.truncated(fileSize: 5)) { try SafetensorsFile(bytes: [1, 2, 3, 4, 5]) }
    }

    @Test("a model file cut short is refused, not read past its end")
    func truncatedModel() throws {
        let bytes = try Data(contentsOf: Fixtures.url("mlp-f32.safetensors"))
        let cut = Array(bytes.prefix(bytes.count - 100))
        #expect(throws: SafetensorsError.self) { try SafetensorsFile(bytes: cut) }
    }

    @Test("a header length beyond the file is refused")
    func headerLengthBeyondFile() {
        let bytes = Self.twoTensors.bytes(headerLength: 1 << 40)
        #expect(throws: SafetensorsError.headerLengthBeyondFile(headerLength: 1 << 40, fileSize: bytes.count)) {
            try SafetensorsFile(bytes: bytes)
        }
    }

    @Test("overlapping data offsets are refused")
    func overlapping() {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        #expect(throws: SafetensorsError.overlappingTensors("a", "b")) {
            try SafetensorsFile(bytes: SafetensorsBytes(header: header, data: floatBytes([1, 2])).bytes())
        }
    }

    @Test("offsets past the data section are refused")
    func outOfRange() {
        let header = #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#
        #expect(throws: SafetensorsError.offsetsOutOfRange(name: "a", end: 16, dataSize: 8)) {
            try SafetensorsFile(bytes: SafetensorsBytes(header: header, data: floatBytes([1, 2])).bytes())
        }
    }

    @Test("offsets that disagree with shape and dtype are refused")
    func byteCountMismatch() {
        let header = #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#
        #expect(throws: SafetensorsError.self) {
            try SafetensorsFile(bytes: SafetensorsBytes(header: header, data: floatBytes([1, 2])).bytes())
        }
    }

    @Test("an unknown dtype is refused")
    func unknownDType() {
        let header = #"{"a":{"dtype":"F8","shape":[2],"data_offsets":[0,2]}}"#
        #expect(throws: SafetensorsError.invalidTensor(name: "a", reason: "unknown dtype 'F8'")) {
            try SafetensorsFile(bytes: SafetensorsBytes(header: header, data: [0, 0]).bytes())
        }
    }

    @Test("a shape whose size overflows is refused")
    func shapeOverflow() {
        let header = #"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#
        #expect(throws: SafetensorsError.self) {
            try SafetensorsFile(bytes: SafetensorsBytes(header: header, data: floatBytes([1, 2])).bytes())
        }
    }

    @Test("a header that is not JSON is refused")
    func invalidJSON() {
        #expect(throws: SafetensorsError.invalidHeader("the header is not valid JSON")) {
            try SafetensorsFile(bytes: SafetensorsBytes(header: "{\"a\": ", data: []).bytes())
        }
    }

    @Test("a missing file is an I/O error")
    func missingFile() {
        #expect(throws: SafetensorsError.self) {
            try SafetensorsFile(contentsOf: URL(fileURLWithPath: "/nonexistent/model.safetensors"))
        }
    }

    @Test("misaligned F32 data is copied and reads the same values")
    func misalignedCopy() throws {
        let header = #"{"pad":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}}"#
        var bytes = SafetensorsBytes(header: header, data: [7] + floatBytes([1.5, -2.25])).bytes()
        // Pad the header so the data section starts 8-aligned: then "a" sits at an odd address.
        let pad = (8 - (bytes.count - 9) % 8) % 8
        bytes = SafetensorsBytes(header: header + String(repeating: " ", count: pad), data: [7] + floatBytes([1.5, -2.25])).bytes()
        let file = try SafetensorsFile(bytes: bytes)
        let values = try file.floats("a")
        #expect(!values.isBorrowed)
        #expect(values.array == [1.5, -2.25])
    }

    @Test("F16 and BF16 convert to Float exactly")
    func halfConversion() throws {
        // 1.0, -2.0, 65504 (max half), 2^-24 (smallest subnormal) in F16; 1.0 and -3.0 in BF16.
        let f16: [UInt16] = [0x3C00, 0xC000, 0x7BFF, 0x0001]
        let bf16: [UInt16] = [0x3F80, 0xC040]
        let bytes = SafetensorsBytes(tensors: [
            ("h", "F16", [4], f16.flatMap { withUnsafeBytes(of: $0.littleEndian, Array.init) }),
            ("b", "BF16", [2], bf16.flatMap { withUnsafeBytes(of: $0.littleEndian, Array.init) }),
        ]).bytes()
        let file = try SafetensorsFile(bytes: bytes)
        #expect(try file.floats("h").array == [1, -2, 65504, Float(1.0 / 16_777_216.0)])
        #expect(try file.floats("b").array == [1, -3])
    }
}
