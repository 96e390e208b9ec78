import DMLKit
import Foundation
import FuzzSupport

/// PNG/JPEG bytes through `RGBImage(encoded:)`; a decoded image must hold exactly width x height x 3 bytes within
/// the pixel limit, and re-encode as PNG.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImage(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = fuzzData(start, count)
    guard let image = try? RGBImage(encoded: data) else { return 0 }
    invariant(image.width > 0 && image.height > 0, "decoded \(image.width)x\(image.height)")
    invariant(image.width * image.height <= RGBImage.maximumPixels, "decoded past the pixel limit")
    invariant(image.pixels.count == image.width * image.height * 3, "pixel buffer size")
    // Re-encoding is only cheap for small images; large ones are legitimate but slow to fuzz.
    if image.width * image.height <= 1 << 16 {
        invariant((try? image.pngData()) != nil, "a decoded image does not encode")
    }
    return 0
}
