import DMLKit
import Foundation
import FuzzSupport

/// Seeds written by `RGBImage.pngData()` (the contact sheet's writer); JPEGs and other PNG kinds come from
/// Pillow in `make-corpus.sh`.
@_cdecl("LLVMFuzzerInitialize")
public func initializeImage(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> CInt {
    writeSeedsIfRequested { save in
        for (width, height) in [(1, 1), (3, 2), (16, 12)] {
            let pixels = (0..<width * height * 3).map { UInt8(truncatingIfNeeded: $0 * 37) }
            try save("swift_\(width)x\(height).png", try RGBImage(width: width, height: height, pixels: pixels).pngData())
        }
    }
    return 0
}
