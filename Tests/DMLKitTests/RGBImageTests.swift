import DMLKit
import DMLNpy
import Foundation
import Testing

private func fixture(_ name: String) -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/images/\(name)")
}

/// Pixels decoded by Pillow (Tests/Fixtures/images/make_fixtures.py) are the reference.
@Suite struct DecodingImages {
    @Test(arguments: ["rgb.png", "grey.png", "rgba_opaque.png"])
    func pngMatchesPillowExactly(name: String) throws {
        let image = try RGBImage(contentsOf: fixture(name))
        let reference = try Npy.read(contentsOf: fixture("\(name).pixels.npy"))
        #expect([image.height, image.width, 3] == reference.shape)
        #expect(image.pixels == (try reference.uint8s()))
    }

    @Test func jpegMatchesPillowWithinRounding() throws {
        let image = try RGBImage(contentsOf: fixture("rgb.jpg"))
        let reference = try Npy.read(contentsOf: fixture("rgb.jpg.pixels.npy")).uint8s()
        #expect(image.width == 37 && image.height == 23)
        let worst = zip(image.pixels, reference).map { abs(Int($0) - Int($1)) }.max() ?? 255
        #expect(worst <= 2)
    }

    @Test func pngRoundTrip() throws {
        let image = try RGBImage(contentsOf: fixture("rgb.png"))
        #expect(try RGBImage(encoded: image.pngData()) == image)
    }

    @Test(arguments: ["truncated.jpg", "truncated.png"])
    func truncatedFilesAreErrors(name: String) {
        #expect(throws: ImageError.self) { try RGBImage(contentsOf: fixture(name)) }
    }

    @Test func junkAndMissingFilesAreErrors() {
        #expect(throws: ImageError.self) { try RGBImage(encoded: Data("GIF89a not supported".utf8)) }
        #expect(throws: ImageError.self) { try RGBImage(encoded: Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3])) }
        #expect(throws: ImageError.self) { try RGBImage(encoded: Data([0xFF, 0xD8, 0xFF, 0xE0, 0, 0])) }
        #expect(throws: ImageError.self) { try RGBImage(encoded: Data()) }
        #expect(throws: ImageError.self) { try RGBImage(contentsOf: URL(fileURLWithPath: "/nonexistent/x.png")) }
        #expect(throws: ImageError.self) { try RGBImage(width: 2, height: 2, pixels: [1, 2, 3]) }
    }
}
