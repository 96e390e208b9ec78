import CDMLDnnl
import Foundation

/// Which implementation runs `conv2d`.
enum ConvBackend: Sendable, Equatable {
    /// The runtime's own im2col + BLAS and depthwise loops (every platform; the reference in tests).
    case reference
    /// oneDNN (x86-64 Linux with libdnnl), falling back to `reference` where oneDNN refuses a layer.
    case onednn

    /// Whether this build links oneDNN and it made a CPU engine.
    static let onednnAvailable = dml_dnnl_available() != 0

    /// oneDNN where it is available, unless `DMLKIT_CONV=reference` asks for the runtime's own path.
    static let preferred: ConvBackend = {
        if ProcessInfo.processInfo.environment["DMLKIT_CONV"] == "reference" { return .reference }
        return onednnAvailable ? .onednn : .reference
    }()
}

/// One conv layer's oneDNN handle: the weights packed once into oneDNN's layout (`pack`), primitives per batch
/// size made on first use and cached inside it. Holds the bias buffer the handle reads.
// `packed` changes under `packLock` only; the C handle locks its own cache.
final class OneDNNConvolution: @unchecked Sendable {
    // The C handle locks its own cache, so concurrent `run` calls are safe.
    private let handle: OpaquePointer
    /// Where `pack` reads the weights (once).
    private let weights: ConvWeights
    private let packLock = NSLock()
    private var packed = false
    private let bias: FloatBuffer?
    /// The activation oneDNN applies as a post-op; nil when the layer's epilogue must run it.
    let fusesActivation: Bool

    /// Nil when oneDNN is unavailable or refuses the geometry.
    init?(_ conv: Conv2dLayer) {
        var shape = dml_dnnl_conv_shape(
            in_channels: Int32(conv.inChannels), height: Int32(conv.height), width: Int32(conv.width),
            out_channels: Int32(conv.outChannels), out_height: Int32(conv.outHeight), out_width: Int32(conv.outWidth),
            kernel_h: Int32(conv.kernelH), kernel_w: Int32(conv.kernelW), stride_h: Int32(conv.strideH),
            stride_w: Int32(conv.strideW), pad_h: Int32(conv.padH), pad_w: Int32(conv.padW),
            dilation_h: Int32(conv.dilationH), dilation_w: Int32(conv.dilationW), groups: Int32(conv.groups),
            source_channels_last: conv.sourceLayout == .channelsLast ? 1 : 0,
            destination_channels_last: conv.destinationLayout == .channelsLast ? 1 : 0, accumulate: conv.accumulates ? 1 : 0)
        let (kind, alpha, beta) = Self.postOp(conv.activation)
        // The weights come once, in `pack`: oneDNN keeps only its packed copy.
        guard let handle = dml_dnnl_conv_create(&shape, nil, conv.bias?.pointer, kind, alpha, beta) else { return nil }
        self.handle = handle
        weights = conv.weights
        bias = conv.bias
        fusesActivation = conv.activation == nil || kind != DML_DNNL_NONE
    }

    deinit { dml_dnnl_conv_destroy(handle) }

    /// Builds the batch-1 primitive and reorders the weights into oneDNN's layout now (at load); afterwards the
    /// handle reads only its packed copy. False when oneDNN refuses (the layer then runs the runtime's own code).
    /// The first `run` packs them too (a layer used outside a loaded model); repeated calls do nothing.
    func pack() -> Bool {
        packLock.withLock {
            if packed { return true }
            let buffer = weights.buffer
            packed = withExtendedLifetime(buffer) { dml_dnnl_conv_pack(handle, buffer.pointer) == 0 }
            return packed
        }
    }

    /// In the layouts the conv names; false when oneDNN could not run this batch (nothing usable was written).
    func run(_ source: UnsafePointer<Float>, _ destination: UnsafeMutablePointer<Float>, batch: Int) -> Bool {
        // Packed at load for every layer of a model: the lock-free check keeps `pack`'s lock off the hot path.
        batch <= Int(Int32.max) && (dml_dnnl_conv_is_packed(handle) != 0 || pack())
            && dml_dnnl_conv_run(handle, source, destination, Int32(batch)) == 0
    }

    /// oneDNN's name for the kernel that runs `batch` samples (packing first); nil when oneDNN refuses the batch.
    func kernel(batch: Int) -> String? {
        guard batch <= Int(Int32.max), pack() else { return nil }
        var name = [CChar](repeating: 0, count: 128)
        guard dml_dnnl_conv_kernel(handle, Int32(batch), &name, name.count) == 0 else { return nil }
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// oneDNN's eltwise post-op for an activation (same formulas as `ActivationLayer.Function.apply`); none for
    /// those the layer's epilogue runs faster.
    static func postOp(_ function: ActivationLayer.Function?) -> (dml_dnnl_activation, Float, Float) {
        switch function {
        case .relu: return (DML_DNNL_RELU, 0, 0)
        case .leakyRelu(let slope): return (DML_DNNL_RELU, slope, 0)
        case .clamp(let low, let high): return (DML_DNNL_CLIP, low, high)
        case .hardswish: return (DML_DNNL_HARDSWISH, 0, 0)
        case .geluErf: return (DML_DNNL_GELU_ERF, 0, 0)
        case .geluTanh: return (DML_DNNL_GELU_TANH, 0, 0)
        // SiLU runs in the epilogue (`dml_activation`): oneDNN 2.6's swish post-op cost ~0.4 ns per element,
        // more than the conv itself on EfficientNet's wide early layers (bench/RESULTS.md: b1 13.1 -> 11.2 ms).
        case .silu: return (DML_DNNL_NONE, 0, 0)
        case .sigmoid: return (DML_DNNL_LOGISTIC, 0, 0)
        case .tanh: return (DML_DNNL_TANH, 0, 0)
        case .identity, .hardsigmoid, nil: return (DML_DNNL_NONE, 0, 0)
        }
    }
}
