import CImageIO
import Foundation

/// Why an image could not be read or written.
public struct ImageError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What kind of failure, for callers that act on it (and tests that check it).
    public enum Kind: Sendable, Equatable {
        /// Not a readable PNG/JPEG: unknown signature, corrupt or truncated data, bad arguments.
        case invalid
        /// Refused before decoding: more pixels than the limit, more than the file can hold, too much decoder memory,
        /// too many progressive scans (see `RGBImage.init(encoded:source:maximumPixels:)`).
        case tooLarge
        /// The file could not be read.
        case unreadable
    }

    public let kind: Kind
    public let description: String

    public init(_ kind: Kind = .invalid, description: String) {
        self.kind = kind
        self.description = description
    }
}

/// An 8-bit RGB image, row-major, 3 bytes per pixel: what the runtime's pixel preprocessing takes.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    /// The default pixel limit of decoding: 64 megapixels (2^26), 192 MiB of RGB.
    public static let maximumPixels = 64 * 1024 * 1024

    public init(width: Int, height: Int, pixels: [UInt8]) throws {
        guard width > 0, height > 0, pixels.count == width * height * 3 else {
            throw ImageError(.invalid, description: "an RGB image of \(width)x\(height) needs \(max(width * height * 3, 0)) bytes, got \(pixels.count)")
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// Decodes PNG or JPEG bytes (grey and alpha are converted to RGB).
    ///
    /// Decompression bombs are refused (`ImageError.Kind.tooLarge`) from the header, before memory the size of the
    /// image is allocated: more than `maximumPixels` pixels; more pixels than the file's bytes can encode (a JPEG
    /// spends at least one bit per 8x8 block, deflate compresses at most ~1032:1); libjpeg needing more than
    /// 6 x `maximumPixels` + 64 MiB (its `max_memory_to_use`); more than 256 progressive JPEG scans.
    public init(encoded data: Data, source: String = "image", maximumPixels: Int = RGBImage.maximumPixels) throws {
        var pointer: UnsafeMutablePointer<UInt8>?
        var width: Int32 = 0, height: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let limit = max(1, min(maximumPixels, 1 << 40))  // keeps libjpeg's memory limit in range
        let status = data.withUnsafeBytes { bytes in
            dml_image_decode(bytes.bindMemory(to: UInt8.self).baseAddress, bytes.count, limit, &pointer,
                             &width, &height, &message, message.count)
        }
        guard status == 0, let pointer else {
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let kind: ImageError.Kind = status == DML_IMAGE_TOO_LARGE ? .tooLarge : .invalid
            throw ImageError(kind, description: "\(source): cannot decode: \(text)")
        }
        defer { dml_image_free(pointer) }
        self.width = Int(width)
        self.height = Int(height)
        pixels = Array(UnsafeBufferPointer(start: pointer, count: Int(width) * Int(height) * 3))
    }

    /// Reads and decodes a PNG or JPEG file.
    public init(contentsOf url: URL, maximumPixels: Int = RGBImage.maximumPixels) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ImageError(.unreadable, description: "cannot read \(url.path): \(error.localizedDescription)")
        }
        try self.init(encoded: data, source: url.lastPathComponent, maximumPixels: maximumPixels)
    }

    /// The image as PNG bytes.
    public func pngData() throws -> Data {
        var pointer: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = dml_image_encode_png(pixels, Int32(width), Int32(height), &pointer, &size, &message, message.count)
        guard status == 0, let pointer else {
            throw ImageError(.invalid, description: "cannot encode PNG: \(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        }
        defer { dml_image_free(pointer) }
        return Data(bytes: pointer, count: size)
    }
}
