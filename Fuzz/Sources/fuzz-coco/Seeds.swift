import FuzzSupport

/// The COCO seeds come from the Python generator and hand-written edge cases (`make-corpus.sh`).
@_cdecl("LLVMFuzzerInitialize")
public func initializeCOCO(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> CInt { 0 }
