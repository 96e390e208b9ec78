import CImageIO
import Foundation

/// Why an image could not be read or written.
public struct ImageError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
}

/// An 8-bit RGB image, row-major, 3 bytes per pixel: what the runtime's pixel preprocessing takes.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    /// Images above this many pixels are refused rather than decoded (a guard against decompression bombs).
    public static let maximumPixels = 64 * 1024 * 1024

    public init(width: Int, height: Int, pixels: [UInt8]) throws {
        guard width > 0, height > 0, pixels.count == width * height * 3 else {
            throw ImageError(description: "an RGB image of \(width)x\(height) needs \(max(width * height * 3, 0)) bytes, got \(pixels.count)")
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// Decodes PNG or JPEG bytes (grey and alpha are converted to RGB).
    public init(encoded data: Data, source: String = "image") throws {
        var pointer: UnsafeMutablePointer<UInt8>?
        var width: Int32 = 0, height: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = data.withUnsafeBytes { bytes in
            dml_image_decode(bytes.bindMemory(to: UInt8.self).baseAddress, bytes.count, Self.maximumPixels, &pointer,
                             &width, &height, &message, message.count)
        }
        guard status == 0, let pointer else {
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw ImageError(description: "\(source): cannot decode: \(text)")
        }
        defer { dml_image_free(pointer) }
        self.width = Int(width)
        self.height = Int(height)
        pixels = Array(UnsafeBufferPointer(start: pointer, count: Int(width) * Int(height) * 3))
    }

    /// Reads and decodes a PNG or JPEG file.
    public init(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ImageError(description: "cannot read \(url.path): \(error.localizedDescription)")
        }
        try self.init(encoded: data, source: url.lastPathComponent)
    }

    /// The image as PNG bytes.
    public func pngData() throws -> Data {
        var pointer: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = dml_image_encode_png(pixels, Int32(width), Int32(height), &pointer, &size, &message, message.count)
        guard status == 0, let pointer else {
            throw ImageError(description: "cannot encode PNG: \(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        }
        defer { dml_image_free(pointer) }
        return Data(bytes: pointer, count: size)
    }
}
