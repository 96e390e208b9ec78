import DMLFiles
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Element types DMLKit reads from and writes to NumPy `.npy` files (little-endian, C order).
public enum NpyDType: String, Sendable, CaseIterable {
    case float32 = "<f4"
    case float64 = "<f8"
    case int64 = "<i8"
    case int32 = "<i4"
    case uint8 = "|u1"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .float32, .int32: return 4
        case .float64, .int64: return 8
        case .uint8: return 1
        }
    }
}

/// Why an `.npy` file could not be read or written.
public enum NpyError: Error, CustomStringConvertible, Equatable {
    case notNpy(String)
    case badHeader(String)
    case unsupportedDType(String)
    case fortranOrder
    case truncated(expectedBytes: Int, actualBytes: Int)
    case wrongRank(expected: Int, actual: [Int])
    case wrongType(expected: String, actual: NpyDType)
    case io(String)

    public var description: String {
        switch self {
        case .notNpy(let why): return "not a .npy file: \(why)"
        case .badHeader(let why): return "malformed .npy header: \(why)"
        case .unsupportedDType(let d):
            return "unsupported .npy dtype '\(d)' (supported: float32 '<f4', float64 '<f8', int64 '<i8', int32 '<i4', uint8 '|u1')"
        case .fortranOrder: return ".npy array is in Fortran order; save it in C order (np.ascontiguousarray)"
        case .truncated(let e, let a): return ".npy data is truncated: header promises \(e) bytes, file has \(a)"
        case .wrongRank(let e, let s): return "expected a \(e)-D array, got shape \(s)"
        case .wrongType(let e, let a): return "expected \(e) data, got dtype \(a.rawValue)"
        case .io(let why): return why
        }
    }
}

/// A 2-D float matrix in row-major order, the shape vectors travel in.
public struct FloatMatrix: Sendable, Equatable {
    public var rows: Int
    public var columns: Int
    public var values: [Float]

    public init(rows: Int, columns: Int, values: [Float]) {
        precondition(values.count == rows * columns, "FloatMatrix: values.count must be rows * columns")
        self.rows = rows
        self.columns = columns
        self.values = values
    }
}

/// An array read from a `.npy` file: its dtype, shape and raw little-endian bytes.
public struct NpyArray: Sendable {
    public let dtype: NpyDType
    public let shape: [Int]
    /// Raw element bytes, little-endian, C order.
    public let data: Data

    /// Number of elements (product of the shape; 1 for a 0-D array).
    public var count: Int { shape.reduce(1, *) }

    /// The elements as `Float` (float32 as is, float64 rounded).
    public func floats() throws -> [Float] {
        switch dtype {
        case .float32: return loadElements(Float.self)
        case .float64: return loadElements(Double.self).map { Float($0) }
        default: throw NpyError.wrongType(expected: "float32 or float64", actual: dtype)
        }
    }

    /// The elements as `Int64` (int64 as is, int32 widened).
    public func int64s() throws -> [Int64] {
        switch dtype {
        case .int64: return loadElements(Int64.self)
        case .int32: return loadElements(Int32.self).map { Int64($0) }
        default: throw NpyError.wrongType(expected: "int64 or int32", actual: dtype)
        }
    }

    /// The elements as `UInt8`.
    public func uint8s() throws -> [UInt8] {
        guard dtype == .uint8 else { throw NpyError.wrongType(expected: "uint8", actual: dtype) }
        return [UInt8](data)
    }

    /// Copies the payload out as `T` (every platform DMLKit targets is little-endian, like the file).
    private func loadElements<T>(_: T.Type) -> [T] {
        [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            data.withUnsafeBytes { raw in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(rebasing: raw.prefix(count * MemoryLayout<T>.stride)))
            }
            initialized = count
        }
    }
}

/// Reading and writing NumPy `.npy` files (format versions 1.0, 2.0 and 3.0).
public enum Npy {
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // "\x93NUMPY"
    /// Longest header accepted, in bytes: 64 KiB. Version 1.0 cannot exceed it; versions 2.0 and 3.0 could
    /// declare up to 4 GiB, which NumPy itself refuses above 10,000 bytes unless told otherwise.
    public static let maxHeaderLength = 1 << 16

    /// Reads an array from a `.npy` file.
    public static func read(contentsOf url: URL) throws -> NpyArray {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw NpyError.io("cannot read \(url.path): no such file")
        }
        guard !isDirectory.boolValue else { throw NpyError.io("cannot read \(url.path): it is a directory, not a .npy file") }
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            throw NpyError.io("cannot read \(url.path): \(reason(error))")
        }
        return try read(data: data)
    }

    /// Parses an array from the bytes of a `.npy` file.
    public static func read(data: Data) throws -> NpyArray {
        let bytes = [UInt8](data.prefix(12))
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw NpyError.notNpy("missing the \\x93NUMPY magic string")
        }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw NpyError.notNpy("file ends inside the preamble") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default:
            throw NpyError.notNpy("unknown format version \(major).\(bytes[7])")
        }
        guard headerLength <= maxHeaderLength else {
            throw NpyError.badHeader("header length \(headerLength) bytes is over the limit of \(maxHeaderLength) bytes")
        }
        guard headerStart + headerLength <= data.count else {
            throw NpyError.badHeader("header length \(headerLength) runs past the end of the file (\(data.count) bytes)")
        }
        let headerBytes = data.subdata(in: data.startIndex + headerStart..<data.startIndex + headerStart + headerLength)
        guard let header = String(data: headerBytes, encoding: major == 3 ? .utf8 : .isoLatin1) else {
            throw NpyError.badHeader("header is not text")
        }
        let (dtype, fortran, shape) = try parseHeader(header)
        if fortran { throw NpyError.fortranOrder }
        let (count, overflow) = shape.reduce((1, false)) { acc, dim in
            let (p, o) = acc.0.multipliedReportingOverflow(by: dim)
            return (p, acc.1 || o)
        }
        let (byteCount, o2) = count.multipliedReportingOverflow(by: dtype.size)
        guard !overflow, !o2 else { throw NpyError.badHeader("shape \(shape) is too large") }
        let dataStart = headerStart + headerLength
        let available = data.count - dataStart
        guard available >= byteCount else { throw NpyError.truncated(expectedBytes: byteCount, actualBytes: available) }
        let payload = data.subdata(in: data.startIndex + dataStart..<data.startIndex + dataStart + byteCount)
        return NpyArray(dtype: dtype, shape: shape, data: payload)
    }

    /// The POSIX reason inside a Foundation file error ("Permission denied"), rather than "error 257".
    static func reason(_ error: Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
        return error.localizedDescription
    }

    /// Reads a 2-D float32 or float64 array as a `FloatMatrix`.
    public static func readMatrix(contentsOf url: URL) throws -> FloatMatrix {
        let array = try read(contentsOf: url)
        guard array.shape.count == 2 else { throw NpyError.wrongRank(expected: 2, actual: array.shape) }
        return FloatMatrix(rows: array.shape[0], columns: array.shape[1], values: try array.floats())
    }

    /// Reads a 1-D int64 (or int32) array, e.g. ids.
    public static func readInt64Vector(contentsOf url: URL) throws -> [Int64] {
        let array = try read(contentsOf: url)
        guard array.shape.count == 1 else { throw NpyError.wrongRank(expected: 1, actual: array.shape) }
        return try array.int64s()
    }

    // MARK: Header parsing

    /// Parses the Python dict literal, e.g. `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
    static func parseHeader(_ header: String) throws -> (NpyDType, Bool, [Int]) {
        let text = header.trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.hasPrefix("{"), text.hasSuffix("}") else { throw NpyError.badHeader("not a dictionary: \(text.prefix(60))") }
        guard let descr = value(of: "descr", in: text) else { throw NpyError.badHeader("no 'descr' key") }
        guard let fortranText = value(of: "fortran_order", in: text) else { throw NpyError.badHeader("no 'fortran_order' key") }
        guard let shapeText = value(of: "shape", in: text) else { throw NpyError.badHeader("no 'shape' key") }

        let descrName = descr.trimmingCharacters(in: CharacterSet(charactersIn: "'\" "))
        let normalised: String
        switch descrName {
        case "<u1", "|u1", "u1", "B": normalised = "|u1"
        default: normalised = descrName
        }
        guard let dtype = NpyDType(rawValue: normalised) else { throw NpyError.unsupportedDType(descrName) }

        let fortran: Bool
        switch fortranText.trimmingCharacters(in: .whitespaces) {
        case "False": fortran = false
        case "True": fortran = true
        default: throw NpyError.badHeader("fortran_order is '\(fortranText)'")
        }

        let inner = shapeText.trimmingCharacters(in: CharacterSet(charactersIn: "() "))
        var shape: [Int] = []
        for part in inner.split(separator: ",") {
            let token = part.trimmingCharacters(in: .whitespaces)
            if token.isEmpty { continue }
            guard let dim = Int(token.hasSuffix("L") ? String(token.dropLast()) : token), dim >= 0 else {
                throw NpyError.badHeader("bad shape \(shapeText)")
            }
            shape.append(dim)
        }
        return (dtype, fortran, shape)
    }

    /// The raw text of a key's value in the header dict: a quoted string, a tuple or a bare word.
    private static func value(of key: String, in text: String) -> String? {
        guard let keyRange = text.range(of: "'\(key)'") ?? text.range(of: "\"\(key)\"") else { return nil }
        var rest = text[keyRange.upperBound...].drop(while: { $0 == " " })
        guard rest.first == ":" else { return nil }
        rest = rest.dropFirst().drop(while: { $0 == " " })
        guard let first = rest.first else { return nil }
        if first == "(" {
            guard let close = rest.firstIndex(of: ")") else { return nil }
            return String(rest[rest.startIndex...close])
        }
        if first == "'" || first == "\"" {
            let body = rest.dropFirst()
            guard let close = body.firstIndex(of: first) else { return nil }
            return String(body[body.startIndex..<close])
        }
        let end = rest.firstIndex(where: { $0 == "," || $0 == "}" }) ?? rest.endIndex
        return String(rest[rest.startIndex..<end])
    }

    // MARK: Writing

    /// Encodes raw little-endian element bytes as a version 1.0 `.npy` file.
    public static func encode(dtype: NpyDType, shape: [Int], payload: Data) -> Data {
        let shapeText: String
        switch shape.count {
        case 1: shapeText = "(\(shape[0]),)"
        default: shapeText = "(" + shape.map(String.init).joined(separator: ", ") + ")"
        }
        var header = "{'descr': '\(dtype.rawValue)', 'fortran_order': False, 'shape': \(shapeText), }"
        // Pad so the data starts on a 64-byte boundary, ending the header with a newline.
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out = Data(magic)
        out.append(contentsOf: [1, 0])
        let length = UInt16(header.utf8.count)
        out.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
        out.append(header.data(using: .isoLatin1)!)
        out.append(payload)
        return out
    }

    /// Writes float32 values atomically.
    public static func write(_ values: [Float], shape: [Int], to url: URL) throws {
        try checkShape(shape, count: values.count)
        let payload = values.withUnsafeBytes { Data($0) }
        try writeAtomically(encode(dtype: .float32, shape: shape, payload: payload), to: url)
    }

    /// Writes int64 values atomically.
    public static func write(_ values: [Int64], shape: [Int], to url: URL) throws {
        try checkShape(shape, count: values.count)
        let payload = values.withUnsafeBytes { Data($0) }
        try writeAtomically(encode(dtype: .int64, shape: shape, payload: payload), to: url)
    }

    /// Writes uint8 values atomically.
    public static func write(_ values: [UInt8], shape: [Int], to url: URL) throws {
        try checkShape(shape, count: values.count)
        try writeAtomically(encode(dtype: .uint8, shape: shape, payload: Data(values)), to: url)
    }

    private static func checkShape(_ shape: [Int], count: Int) throws {
        guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == count else {
            throw NpyError.io("shape \(shape) does not hold \(count) values")
        }
    }

    /// Writes to a temporary file beside `url`, flushes it to disk, then renames it into place.
    public static func writeAtomically(_ data: Data, to url: URL) throws {
        do {
            try AtomicFile.write(data, to: url)
        } catch {
            throw NpyError.io("\(error)")
        }
    }
}

extension NpyError: LocalizedError {
    public var errorDescription: String? { description }
}
