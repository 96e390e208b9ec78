import DMLNpy
import Foundation
import FuzzSupport

/// Seeds written by `Npy.encode`, the writer behind every `.npy` the CLI produces.
@_cdecl("LLVMFuzzerInitialize")
public func initializeNpy(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> CInt {
    writeSeedsIfRequested { save in
        func bytes<T>(_ values: [T]) -> Data { values.withUnsafeBytes { Data($0) } }
        try save("swift_f4_2x3.npy", Npy.encode(dtype: .float32, shape: [2, 3], payload: bytes([Float](arrayLiteral: 1, -2, 3.5, 0, .pi, 1e-30))))
        try save("swift_f8_1x4.npy", Npy.encode(dtype: .float64, shape: [1, 4], payload: bytes([Double](arrayLiteral: 1, 2, 3, 4))))
        try save("swift_i8_3.npy", Npy.encode(dtype: .int64, shape: [3], payload: bytes([Int64](arrayLiteral: 0, Int64.max, -1))))
        try save("swift_i4_2x2.npy", Npy.encode(dtype: .int32, shape: [2, 2], payload: bytes([Int32](arrayLiteral: 1, 2, 3, 4))))
        try save("swift_u1_2x2x3.npy", Npy.encode(dtype: .uint8, shape: [2, 2, 3], payload: Data((0..<12).map { UInt8($0 * 20) })))
        try save("swift_f4_0x8.npy", Npy.encode(dtype: .float32, shape: [0, 8], payload: Data()))
        try save("swift_f4_scalar.npy", Npy.encode(dtype: .float32, shape: [], payload: bytes([Float(7)])))
    }
    return 0
}
