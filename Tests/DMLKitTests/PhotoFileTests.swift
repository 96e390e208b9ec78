import DMLKit
import DMLNpy
import Foundation
import Testing

private func photo(_ name: String) -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/images/\(name)")
}

/// The largest per-byte difference to Pillow's decode of the same file, or nil when the sizes differ.
private func worstDifferenceToPillow(_ name: String) throws -> Int? {
    let image = try RGBImage(contentsOf: photo(name))
    let reference = try Npy.read(contentsOf: photo("\(name).pixels.npy"))
    guard [image.height, image.width, 3] == reference.shape else { return nil }
    return zip(image.pixels, try reference.uint8s()).map { abs(Int($0) - Int($1)) }.max()
}

/// Files as cameras and print tools write them (`Fixtures/images/make_photo_fixtures.py`), against Pillow's
/// `ImageOps.exif_transpose(...).convert("RGB")`.
@Suite struct PhotoFileTests {
    /// Every EXIF orientation is shown upright: the displayed picture is 37x23 whatever the file's frame.
    @Test(arguments: 2...8)
    func exifOrientationIsApplied(orientation: Int) throws {
        let image = try RGBImage(contentsOf: photo("orient_\(orientation).jpg"))
        #expect(image.width == 37 && image.height == 23)
        let worst = try #require(try worstDifferenceToPillow("orient_\(orientation).jpg"))
        #expect(worst <= 2)
    }

    @Test func cmykJpegMatchesPillow() throws {
        let worst = try #require(try worstDifferenceToPillow("cmyk.jpg"))
        #expect(worst <= 3)
    }

    @Test(arguments: ["palette.png", "rgb16.png"])
    func palettedAndSixteenBitPngMatchPillowExactly(name: String) throws {
        #expect(try worstDifferenceToPillow(name) == 0)
    }
}
