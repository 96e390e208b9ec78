import CDMLDnnl

/// An unfolded BatchNorm's oneDNN handle (its batch-normalization JIT kernel with fixed statistics; primitives
/// per batch size cached inside it). Nil where oneDNN is missing or has only its reference loops.
final class OneDNNChannelAffine: @unchecked Sendable {
    // The C handle locks its own cache, so concurrent `run` calls are safe.
    private let handle: OpaquePointer

    init?(channels: Int, positions: Int, channelsLast: Bool, scale: [Float], shift: [Float], relu: Bool) {
        guard channels == scale.count, channels == shift.count, channels <= Int(Int32.max), positions <= Int(Int32.max),
              let handle = dml_dnnl_affine_create(Int32(channels), Int32(positions), channelsLast ? 1 : 0, scale, shift, relu ? 1 : 0)
        else { return nil }
        self.handle = handle
    }

    deinit { dml_dnnl_affine_destroy(handle) }

    /// False when oneDNN could not run this batch (nothing usable was written). `destination` may be `source`.
    func run(_ source: UnsafePointer<Float>, _ destination: UnsafeMutablePointer<Float>, batch: Int) -> Bool {
        batch <= Int(Int32.max) && dml_dnnl_affine_run(handle, source, destination, Int32(batch)) == 0
    }
}
