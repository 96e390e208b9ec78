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

/// Crafted headers that promise far more than the file holds (Tests/Fixtures/images/make_bombs.py) are refused as
/// `tooLarge` from the header, before the decoder allocates for the image; real, extremely compressible images still
/// decode. The memory bound itself is measured on a child `dml` process in Tests/interop/test_gallery_cli.py.
@Suite struct DecoderLimits {
    @Test(arguments: ["bomb_progressive_huge.jpg", "bomb_progressive_8k.jpg", "bomb_baseline_huge.jpg", "many_scans.jpg",
                      "bomb_huge.png", "bomb_8k.png"])
    func craftedHeadersAreRefusedAsTooLarge(name: String) throws {
        let before = peakResidentBytes()
        #expect {
            try RGBImage(contentsOf: fixture(name))
        } throws: { error in
            (error as? ImageError)?.kind == .tooLarge && "\(error)".contains(name)
        }
        // The high-water mark of this process may not move by more than a small decoder's worth.
        #expect(peakResidentBytes() - before < 64 << 20)
    }

    @Test func theMessagesSayWhy() throws {
        func message(_ name: String) -> String {
            do { _ = try RGBImage(contentsOf: fixture(name)); return "decoded" } catch { return "\(error)" }
        }
        #expect(message("bomb_progressive_huge.jpg").contains("65500x65500 pixels, more than the limit of 67108864 pixels"))
        #expect(message("bomb_progressive_8k.jpg").contains("8000x8000 pixels"))
        #expect(message("bomb_progressive_8k.jpg").contains("cannot hold"))
        #expect(message("many_scans.jpg").contains("more than 256 progressive scans"))
        #expect(message("bomb_huge.png").contains("30000x30000 pixels, more than the limit"))
    }

    @Test func theLimitIsSettable() throws {
        let image = try RGBImage(contentsOf: fixture("rgb.png"))
        #expect(image.width * image.height == 851)
        #expect(try RGBImage(contentsOf: fixture("rgb.png"), maximumPixels: 851) == image)
        for name in ["rgb.png", "rgb.jpg"] {
            #expect {
                try RGBImage(contentsOf: fixture(name), maximumPixels: 850)
            } throws: { ($0 as? ImageError)?.kind == .tooLarge }
        }
    }

    @Test func extremelyCompressibleRealImagesStillDecode() throws {
        let jpeg = try RGBImage(contentsOf: fixture("flat_progressive.jpg"))
        #expect(jpeg.width == 1024 && jpeg.height == 1024)
        #expect(jpeg.pixels.allSatisfy { (127...129).contains($0) })
        let png = try RGBImage(contentsOf: fixture("flat_1bit.png"))
        #expect(png.width == 4000 && png.height == 4000)
        #expect(png.pixels.allSatisfy { $0 == 0 })
    }

    @Test func corruptAndUnreadableAreTheirOwnKinds() {
        #expect { try RGBImage(contentsOf: fixture("truncated.jpg")) } throws: { ($0 as? ImageError)?.kind == .invalid }
        #expect { try RGBImage(contentsOf: fixture("no-such-file.png")) } throws: { ($0 as? ImageError)?.kind == .unreadable }
    }
}

/// This process's peak resident set (ru_maxrss, KiB on Linux), in bytes.
private func peakResidentBytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss * 1024
}
