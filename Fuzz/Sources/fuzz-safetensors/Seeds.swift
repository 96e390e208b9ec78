import FuzzSupport

/// The model seeds come from the Python exporter (`Tests/Fixtures/runtime` and `make-corpus.sh`).
@_cdecl("LLVMFuzzerInitialize")
public func initializeSafetensors(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> CInt { 0 }
