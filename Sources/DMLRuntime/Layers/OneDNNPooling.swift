import CDMLDnnl

/// One pooling layer's oneDNN handle (its JIT kernels; primitives per batch size made on first use and cached
/// inside it). Nil where oneDNN is missing, refuses the geometry, or would only run its reference loops.
final class OneDNNPooling: @unchecked Sendable {
    // The C handle locks its own cache, so concurrent `run` calls are safe.
    private let handle: OpaquePointer

    /// `padBottom`/`padRight`: the padding past the input that gives the layer's output size (ceil mode).
    init?(channels: Int, height: Int, width: Int, outHeight: Int, outWidth: Int, kernel: (Int, Int), stride: (Int, Int),
          padding: (top: Int, left: Int, bottom: Int, right: Int), dilation: (Int, Int), kind: dml_dnnl_pool_kind,
          channelsLast: Bool) {
        let values = [channels, height, width, outHeight, outWidth, kernel.0, kernel.1, stride.0, stride.1,
                      padding.top, padding.left, padding.bottom, padding.right, dilation.0, dilation.1]
        guard values.allSatisfy({ abs($0) <= Int(Int32.max) }) else { return nil }
        var shape = dml_dnnl_pool_shape(
            channels: Int32(channels), height: Int32(height), width: Int32(width), out_height: Int32(outHeight),
            out_width: Int32(outWidth), kernel_h: Int32(kernel.0), kernel_w: Int32(kernel.1), stride_h: Int32(stride.0),
            stride_w: Int32(stride.1), pad_top: Int32(padding.top), pad_left: Int32(padding.left),
            pad_bottom: Int32(padding.bottom), pad_right: Int32(padding.right), dilation_h: Int32(dilation.0),
            dilation_w: Int32(dilation.1), kind: kind, channels_last: channelsLast ? 1 : 0)
        guard let handle = dml_dnnl_pool_create(&shape) else { return nil }
        self.handle = handle
    }

    deinit { dml_dnnl_pool_destroy(handle) }

    /// False when oneDNN could not run this batch (nothing usable was written).
    func run(_ source: UnsafePointer<Float>, _ destination: UnsafeMutablePointer<Float>, batch: Int) -> Bool {
        batch <= Int(Int32.max) && dml_dnnl_pool_run(handle, source, destination, Int32(batch)) == 0
    }
}
