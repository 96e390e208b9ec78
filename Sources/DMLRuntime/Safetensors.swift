import Foundation

/// One tensor's entry in a safetensors header.
public struct TensorInfo: Sendable, Equatable {
    /// Tensor name as written in the header.
    public var name: String
    /// Element type.
    public var dtype: TensorDType
    /// Dimensions, outermost first.
    public var shape: [Int]
    /// Byte range inside the data section (after the header).
    public var dataRange: Range<Int>
    /// Number of elements.
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A validated, memory-mapped `.safetensors` file: `u64` little-endian header length, a JSON header
/// (`name -> {dtype, shape, data_offsets}` plus optional `__metadata__`), then raw little-endian tensor data.
///
/// Everything is checked before any tensor is read: the header length fits in the file, the JSON parses,
/// every dtype is known, every byte count equals `product(shape) * size(dtype)`, every range lies inside the
/// data section and no two ranges overlap. Tensor data stays in the mapping; `floats(_:)` hands out a pointer
/// into it when the bytes are already aligned `float32`, and copies (converting) otherwise.
public final class SafetensorsFile: @unchecked Sendable {
    // Immutable after init.
    private let bytes: MappedBytes
    private let dataStart: Int
    /// String metadata from `__metadata__` (empty when absent).
    public let metadata: [String: String]
    /// Tensor entries by name.
    public let tensors: [String: TensorInfo]

    /// Headers above this size are refused: real ones are kilobytes, and this bounds the JSON parser's work.
    static let maximumHeaderLength: UInt64 = 100 << 20

    /// Opens and validates the file at `url` (memory-mapped).
    public convenience init(contentsOf url: URL) throws {
        try self.init(mapped: MappedBytes(path: url.path))
    }

    /// Validates a safetensors image held in memory.
    public convenience init(bytes: [UInt8]) throws {
        try self.init(mapped: MappedBytes(bytes: bytes))
    }

    /// Drops the file's pages from this process's resident memory (re-read on the next touch).
    func releaseResidentPages() { bytes.releaseResidentPages() }

    /// The same for the named tensors' bytes only (unknown names are skipped): load releases each tensor once
    /// it is checked and packed, so the whole file is never resident at once.
    func releaseResidentPages(of names: some Sequence<String>) {
        for name in names {
            guard let info = tensors[name] else { continue }
            bytes.releaseResidentPages(in: (dataStart + info.dataRange.lowerBound)..<(dataStart + info.dataRange.upperBound))
        }
    }

    private init(mapped: MappedBytes) throws {
        bytes = mapped
        let fileSize = mapped.count
        guard fileSize >= 8, let base = mapped.base else { throw SafetensorsError.truncated(fileSize: fileSize) }
        var headerLength: UInt64 = 0
        for i in 0..<8 { headerLength |= UInt64(base.load(fromByteOffset: i, as: UInt8.self)) << (8 * UInt64(i)) }
        guard headerLength <= Self.maximumHeaderLength, headerLength <= UInt64(fileSize - 8) else {
            throw SafetensorsError.headerLengthBeyondFile(headerLength: headerLength, fileSize: fileSize)
        }
        dataStart = 8 + Int(headerLength)
        let header: JSONValue
        do {
            header = try JSONValue.parse(UnsafeRawBufferPointer(start: base + 8, count: Int(headerLength)))
        } catch {
            throw SafetensorsError.invalidHeader("the header is not valid JSON")
        }
        guard let entries = header.objectValue else { throw SafetensorsError.invalidHeader("the header is not a JSON object") }
        (metadata, tensors) = try Self.parseEntries(entries, dataSize: fileSize - dataStart)
    }

    private static func parseEntries(_ entries: [String: JSONValue], dataSize: Int) throws
        -> ([String: String], [String: TensorInfo])
    {
        var metadata: [String: String] = [:]
        var tensors: [String: TensorInfo] = [:]
        for (name, entry) in entries {
            if name == "__metadata__" {
                guard let object = entry.objectValue else { throw SafetensorsError.invalidHeader("__metadata__ is not an object") }
                for (key, value) in object {
                    guard let text = value.stringValue else {
                        throw SafetensorsError.invalidHeader("__metadata__ value for '\(key)' is not a string")
                    }
                    metadata[key] = text
                }
                continue
            }
            tensors[name] = try parseTensor(name: name, entry: entry, dataSize: dataSize)
        }
        // Overlap check: sorted by start, each range must end before the next begins (empty tensors take no bytes).
        let sorted = tensors.values.filter { !$0.dataRange.isEmpty }.sorted { $0.dataRange.lowerBound < $1.dataRange.lowerBound }
        for (previous, next) in zip(sorted, sorted.dropFirst()) where next.dataRange.lowerBound < previous.dataRange.upperBound {
            throw SafetensorsError.overlappingTensors(previous.name, next.name)
        }
        return (metadata, tensors)
    }

    private static func parseTensor(name: String, entry: JSONValue, dataSize: Int) throws -> TensorInfo {
        guard let object = entry.objectValue else { throw SafetensorsError.invalidTensor(name: name, reason: "entry is not an object") }
        guard let dtypeName = object["dtype"]?.stringValue else {
            throw SafetensorsError.invalidTensor(name: name, reason: "missing dtype")
        }
        guard let dtype = TensorDType(rawValue: dtypeName) else {
            throw SafetensorsError.invalidTensor(name: name, reason: "unknown dtype '\(dtypeName)'")
        }
        guard let shapeValues = object["shape"]?.arrayValue else {
            throw SafetensorsError.invalidTensor(name: name, reason: "missing shape")
        }
        var shape: [Int] = []
        var elements = 1
        for value in shapeValues {
            guard let dim = value.intValue, dim >= 0 else {
                throw SafetensorsError.invalidTensor(name: name, reason: "shape holds a value that is not a non-negative integer")
            }
            let (product, overflow) = elements.multipliedReportingOverflow(by: dim)
            guard !overflow else { throw SafetensorsError.invalidTensor(name: name, reason: "shape is too large") }
            elements = product
            shape.append(dim)
        }
        guard let offsets = object["data_offsets"]?.arrayValue, offsets.count == 2,
              let begin = offsets[0].intValue, let end = offsets[1].intValue, begin >= 0, begin <= end
        else {
            throw SafetensorsError.invalidTensor(name: name, reason: "data_offsets must be two integers [begin, end] with 0 <= begin <= end")
        }
        guard end <= dataSize else { throw SafetensorsError.offsetsOutOfRange(name: name, end: end, dataSize: dataSize) }
        let (byteCount, overflow) = elements.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow, byteCount == end - begin else {
            throw SafetensorsError.invalidTensor(
                name: name, reason: "shape \(shape) of \(dtype.rawValue) needs \(elements) x \(dtype.byteSize) bytes, offsets give \(end - begin)")
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, dataRange: begin..<end)
    }

    /// Looks up a tensor's entry.
    public func info(_ name: String) throws -> TensorInfo {
        guard let info = tensors[name] else { throw SafetensorsError.missingTensor(name) }
        return info
    }

    /// The raw little-endian bytes of a tensor, pointing into the file.
    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        let info = try info(name)
        guard let base = bytes.base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + dataStart + info.dataRange.lowerBound, count: info.dataRange.count)
    }

    /// A tensor's values as `Float`. Aligned `F32` data is borrowed from the mapping without a copy;
    /// misaligned `F32` and `F16`/`BF16`/`F64` data is converted into a new buffer. Integer dtypes are refused
    /// here (int8 weights need their scales: see `ModelWeights`).
    public func floats(_ name: String) throws -> FloatBuffer {
        let info = try info(name)
        let raw = try rawBytes(name)
        let count = info.elementCount
        switch info.dtype {
        case .f32:
            if let start = raw.baseAddress, Int(bitPattern: start) % MemoryLayout<Float>.alignment == 0 {
                return FloatBuffer(borrowing: start.assumingMemoryBound(to: Float.self), count: count, owner: bytes)
            }
            // Misaligned: copy byte-wise (loadUnaligned) into an aligned buffer.
            return FloatBuffer(count: count) { out in
                for i in 0..<count { out[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))) }
            }
        case .f16:
            return FloatBuffer(count: count) { out in
                for i in 0..<count { out[i] = halfToFloat(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) }
            }
        case .bf16:
            return FloatBuffer(count: count) { out in
                for i in 0..<count { out[i] = bfloat16ToFloat(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) }
            }
        case .f64:
            return FloatBuffer(count: count) { out in
                for i in 0..<count { out[i] = Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))) }
            }
        default:
            throw SafetensorsError.invalidTensor(name: name, reason: "dtype \(info.dtype.rawValue) is not a floating-point type")
        }
    }

    /// A tensor's values as signed bytes (`I8`).
    public func int8s(_ name: String) throws -> [Int8] {
        let info = try info(name)
        guard info.dtype == .i8 else { throw SafetensorsError.invalidTensor(name: name, reason: "dtype \(info.dtype.rawValue) is not I8") }
        return try rawBytes(name).map { Int8(bitPattern: $0) }
    }

    /// A tensor's values as unsigned bytes (`U8`), e.g. pixels in golden files.
    public func uint8s(_ name: String) throws -> [UInt8] {
        let info = try info(name)
        guard info.dtype == .u8 else { throw SafetensorsError.invalidTensor(name: name, reason: "dtype \(info.dtype.rawValue) is not U8") }
        return Array(try rawBytes(name))
    }
}
