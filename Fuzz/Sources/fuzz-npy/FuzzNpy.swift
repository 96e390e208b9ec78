import DMLNpy
import Foundation
import FuzzSupport

/// `.npy` bytes through `Npy.read(data:)` and the element accessors the CLI uses.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNpy(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = fuzzData(start, count)
    guard let array = try? Npy.read(data: data) else { return 0 }
    invariant(array.shape.allSatisfy { $0 >= 0 }, "negative dimension in \(array.shape)")
    invariant(array.data.count == array.count * array.dtype.size,
              "payload \(array.data.count) bytes for shape \(array.shape) of \(array.dtype)")
    invariant(array.data.count <= data.count, "payload larger than the file")
    switch array.dtype {
    case .float32, .float64: invariant((try? array.floats())?.count == array.count, "floats() count")
    case .int64, .int32: invariant((try? array.int64s())?.count == array.count, "int64s() count")
    case .uint8: invariant((try? array.uint8s())?.count == array.count, "uint8s() count")
    }
    return 0
}
