import CDMLDnnl

/// A memory-bound layer's oneDNN handle (pooling, channel affine, layout conversion): its JIT kernel, with
/// primitives per batch size made on first use and cached inside the handle. Nil where oneDNN is missing, refuses
/// the shape or would only run its reference loops; the layer's own loops run then.
final class OneDNNKernel: @unchecked Sendable {
    typealias Run = @convention(c) (OpaquePointer?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int32) -> Int32
    typealias Destroy = @convention(c) (OpaquePointer?) -> Void

    // The C handle locks its own cache, so concurrent `run` calls are safe.
    private let handle: OpaquePointer
    private let runHandle: Run
    private let destroyHandle: Destroy

    private init?(_ handle: OpaquePointer?, run: Run, destroy: Destroy) {
        guard let handle else { return nil }
        self.handle = handle
        runHandle = run
        destroyHandle = destroy
    }

    deinit { destroyHandle(handle) }

    /// False when oneDNN could not run this batch (nothing usable was written).
    func run(_ source: UnsafePointer<Float>, _ destination: UnsafeMutablePointer<Float>, batch: Int) -> Bool {
        batch <= Int(Int32.max) && runHandle(handle, source, destination, Int32(batch)) == 0
    }

    private static func fits(_ values: [Int]) -> Bool { values.allSatisfy { abs($0) <= Int(Int32.max) } }

    /// 2-D pooling; `padding.bottom`/`.right`: the padding past the input that gives the layer's output size.
    static func pooling(channels: Int, height: Int, width: Int, outHeight: Int, outWidth: Int, kernel: (Int, Int),
                        stride: (Int, Int), padding: (top: Int, left: Int, bottom: Int, right: Int), dilation: (Int, Int),
                        kind: dml_dnnl_pool_kind, channelsLast: Bool) -> OneDNNKernel? {
        guard fits([channels, height, width, outHeight, outWidth, kernel.0, kernel.1, stride.0, stride.1, padding.top,
                    padding.left, padding.bottom, padding.right, dilation.0, dilation.1]) else { return nil }
        var shape = dml_dnnl_pool_shape(
            channels: Int32(channels), height: Int32(height), width: Int32(width), out_height: Int32(outHeight),
            out_width: Int32(outWidth), kernel_h: Int32(kernel.0), kernel_w: Int32(kernel.1), stride_h: Int32(stride.0),
            stride_w: Int32(stride.1), pad_top: Int32(padding.top), pad_left: Int32(padding.left),
            pad_bottom: Int32(padding.bottom), pad_right: Int32(padding.right), dilation_h: Int32(dilation.0),
            dilation_w: Int32(dilation.1), kind: kind, channels_last: channelsLast ? 1 : 0)
        return OneDNNKernel(dml_dnnl_pool_create(&shape), run: dml_dnnl_pool_run, destroy: dml_dnnl_pool_destroy)
    }

    /// y = x * scale[c] + shift[c] (+ ReLU) over `channels` x `positions` per sample.
    static func channelAffine(channels: Int, positions: Int, channelsLast: Bool, scale: [Float], shift: [Float],
                              relu: Bool) -> OneDNNKernel? {
        guard channels == scale.count, channels == shift.count, fits([channels, positions]) else { return nil }
        return OneDNNKernel(dml_dnnl_affine_create(Int32(channels), Int32(positions), channelsLast ? 1 : 0, scale, shift, relu ? 1 : 0),
                            run: dml_dnnl_affine_run, destroy: dml_dnnl_affine_destroy)
    }

    /// [C, H, W] samples from planar to channels-last (`toChannelsLast`) or back.
    static func layout(channels: Int, height: Int, width: Int, toChannelsLast: Bool) -> OneDNNKernel? {
        guard fits([channels, height, width]) else { return nil }
        return OneDNNKernel(dml_dnnl_layout_create(Int32(channels), Int32(height), Int32(width), toChannelsLast ? 1 : 0),
                            run: dml_dnnl_layout_run, destroy: dml_dnnl_layout_destroy)
    }
}
