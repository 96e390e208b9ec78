import CDMLBlas
import Foundation

/// 2-D convolution (stride, zero padding, dilation, groups). Grouped convs with one input channel per group
/// (depthwise) run as a direct loop; the rest lower to im2col + one GEMM per sample and group, skipping
/// im2col for 1x1 stride-1 unpadded convs whose input already is the column matrix. Where oneDNN is available
/// (`ConvBackend`), it runs the layer instead, and this code is the fallback and the tests' reference.
struct Conv2dLayer: Layer {
    let weights: ConvWeights  // [outChannels, inChannels / groups, kernelH, kernelW]
    /// The f32 weights (rebuilt from oneDNN's packed copy if a BN-folded copy was dropped at load).
    var weight: FloatBuffer { weights.buffer }
    let bias: FloatBuffer?
    let inChannels: Int, height: Int, width: Int
    let outChannels: Int, outHeight: Int, outWidth: Int
    let kernelH: Int, kernelW: Int
    let strideH: Int, strideW: Int
    let padH: Int, padW: Int
    let dilationH: Int, dilationW: Int
    let groups: Int
    let outputShape: [Int]
    /// An activation that read only this conv's output, applied in the epilogue (set by the graph builder):
    /// ReLU inside the bias/scatter loop, the others in one pass over each sample's fresh output.
    var activation: ActivationLayer.Function? { didSet { remakeBackend() } }
    /// The implementation that runs this layer; setting it (or the activation) remakes the oneDNN handle.
    var backend: ConvBackend = ConvBackend.preferred { didSet { remakeBackend() } }
    /// Memory order of the source and destination (set by the channels-last pass, for oneDNN layers).
    var sourceLayout: TensorLayout = .planar { didSet { remakeBackend() } }
    var destinationLayout: TensorLayout = .planar { didSet { remakeBackend() } }
    /// A residual sum fused in (by the channels-last pass): the layer then reads `[residual, source]` and writes
    /// `activation(conv(source) + residual)`, over the residual's buffer when the plan lets it.
    var accumulates = false { didSet { remakeBackend() } }
    var canRunInPlace: Bool { accumulates }
    /// oneDNN's handle when `backend` is `.onednn` and oneDNN took the layer.
    private(set) var onednn: OneDNNConvolution?
    var fusedReLU: Bool { activation == .relu }
    /// For each kernel row / column: the output rows / columns whose tap lands inside the input
    /// (geometry only, so computed once rather than per channel and call).
    let rowRanges: [Range<Int>]
    let columnRanges: [Range<Int>]

    /// Narrow GEMMs (small feature maps) waste BLAS throughput, so several samples are lowered side by side
    /// until the GEMM is about this many columns wide.
    static let targetColumns = 512
    /// Large maps are lowered in bands of output rows so each band's columns (about this many floats)
    /// stay in cache between im2col and the GEMM that reads them.
    static let columnTileFloats = 64 * 1024

    /// Output rows per im2col band in the one-sample path.
    var bandRows: Int { max(1, min(outHeight, Self.columnTileFloats / max(1, columnRows * outWidth))) }

    var inPerGroup: Int { inChannels / groups }
    var outPerGroup: Int { outChannels / groups }
    var isDepthwise: Bool { inPerGroup == 1 && groups > 1 }
    var isPointwise: Bool {
        kernelH == 1 && kernelW == 1 && strideH == 1 && strideW == 1 && padH == 0 && padW == 0
    }
    /// Rows of the im2col matrix: input channels per group times kernel taps.
    var columnRows: Int { inPerGroup * kernelH * kernelW }
    var flops: Int { 2 * outChannels * outHeight * outWidth * columnRows }
    func workspaceCount(maxBatch: Int) -> Int {
        if isDepthwise { return 0 }
        let samples = samplesPerGemm(maxBatch)
        if samples == 1 { return isPointwise ? 0 : columnRows * bandRows * outWidth }
        // Columns for `samples` samples, then the GEMM result before it is scattered to NCHW.
        return (columnRows + outPerGroup) * outHeight * outWidth * samples
    }

    /// Samples lowered into one GEMM.
    func samplesPerGemm(_ batch: Int) -> Int {
        isDepthwise ? 1 : max(1, min(batch, Self.targetColumns / (outHeight * outWidth)))
    }

    init(node: String, inputShape: [Int], weight: FloatBuffer, weightShape: [Int], bias: FloatBuffer?,
         stride: [Int], padding: [Int], dilation: [Int], groups: Int) throws {
        try self.init(node: node, inputShape: inputShape, weights: ConvWeights(weight), weightShape: weightShape,
                      bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups)
    }

    init(node: String, inputShape: [Int], weights: ConvWeights, weightShape: [Int], bias: FloatBuffer?,
         stride: [Int], padding: [Int], dilation: [Int], groups: Int) throws {
        func fail(_ reason: String) -> ModelError { .shapeMismatch(node: node, reason: reason) }
        guard inputShape.count == 3 else { throw fail("conv2d needs input [C, H, W], got \(inputShape)") }
        guard weightShape.count == 4 else { throw fail("conv2d weight must be 4-D, got \(weightShape)") }
        guard groups >= 1, inputShape[0] % groups == 0, weightShape[0] % groups == 0 else {
            throw fail("groups \(groups) must divide input channels \(inputShape[0]) and output channels \(weightShape[0])")
        }
        guard weightShape[1] * groups == inputShape[0] else {
            throw fail("weight \(weightShape) with groups \(groups) takes \(weightShape[1] * groups) channels, input has \(inputShape[0])")
        }
        guard stride.count == 2, padding.count == 2, dilation.count == 2,
              stride.allSatisfy({ $0 >= 1 }), dilation.allSatisfy({ $0 >= 1 }), padding.allSatisfy({ $0 >= 0 })
        else { throw fail("stride/dilation must be two values >= 1 and padding two values >= 0") }
        if let bias, bias.count != weightShape[0] { throw fail("bias has \(bias.count) values, expected \(weightShape[0])") }
        guard weights.count == weightShape.reduce(1, *) else {
            throw fail("weight holds \(weights.count) values, shape \(weightShape) needs \(weightShape.reduce(1, *))")
        }
        self.weights = weights
        self.bias = bias
        inChannels = inputShape[0]; height = inputShape[1]; width = inputShape[2]
        outChannels = weightShape[0]; kernelH = weightShape[2]; kernelW = weightShape[3]
        strideH = stride[0]; strideW = stride[1]; padH = padding[0]; padW = padding[1]
        dilationH = dilation[0]; dilationW = dilation[1]
        self.groups = groups
        outHeight = (height + 2 * padH - dilationH * (kernelH - 1) - 1) / strideH + 1
        outWidth = (width + 2 * padW - dilationW * (kernelW - 1) - 1) / strideW + 1
        guard height + 2 * padH >= dilationH * (kernelH - 1) + 1, width + 2 * padW >= dilationW * (kernelW - 1) + 1,
              outHeight >= 1, outWidth >= 1
        else { throw fail("kernel does not fit the padded input \(inputShape)") }
        outputShape = [outChannels, outHeight, outWidth]
        let (h, w, oh, ow) = (height, width, outHeight, outWidth)
        let (sh, sw, ph, pw, dh, dw) = (strideH, strideW, padH, padW, dilationH, dilationW)
        rowRanges = (0..<kernelH).map { Self.validRange(size: h, outSize: oh, stride: sh, pad: ph, offset: $0 * dh) }
        columnRanges = (0..<kernelW).map { Self.validRange(size: w, outSize: ow, stride: sw, pad: pw, offset: $0 * dw) }
        remakeBackend()
    }

    private mutating func remakeBackend() { onednn = backend == .onednn ? OneDNNConvolution(self) : nil }

    /// Packs the weights into oneDNN's layout now (at load), one layer at a time; a BN-folded copy made for that
    /// is dropped right after (`ConvWeights.packed`).
    func prepareBackend() {
        guard let onednn, onednn.pack() else { return }
        weights.packed()
    }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        let inSize = inChannels * height * width
        let outPlane = outHeight * outWidth
        let source = accumulates ? inputs[1] : inputs[0]
        if accumulates { copyIfNeeded(inputs[0], output, count: batch * outChannels * outPlane) }
        if let onednn, onednn.run(source, output, batch: batch) {
            if !onednn.fusesActivation { activation?.applyOnThreads(output, output, count: batch * outChannels * outPlane) }
            return
        }
        if sourceLayout != .planar || destinationLayout != .planar || accumulates {
            forwardThroughPlanar(source, output, batch: batch, workspace: workspace)
            return
        }
        let samples = samplesPerGemm(batch)
        if samples > 1 {
            var first = 0
            while first < batch {
                let chunk = min(samples, batch - first)
                forwardSideBySide(inputs[0] + first * inSize, output + first * outChannels * outPlane, samples: chunk, workspace: workspace)
                first += chunk
            }
            return
        }
        for n in 0..<batch {
            let source = inputs[0] + n * inSize
            let destination = output + n * outChannels * outPlane
            fillBias(destination)
            if isDepthwise {
                depthwise(source, destination)
            } else {
                for g in 0..<groups {
                    let groupInput = source + g * inPerGroup * height * width
                    let columns: UnsafePointer<Float>
                    if isPointwise {
                        columns = groupInput
                        dml_sgemm(0, 0, Int32(outPerGroup), Int32(outPlane), Int32(columnRows), 1,
                                  weight.pointer + g * outPerGroup * columnRows, Int32(columnRows),
                                  columns, Int32(outPlane), 1, destination + g * outPerGroup * outPlane, Int32(outPlane))
                        continue
                    }
                    var top = 0
                    while top < outHeight {
                        let rows = min(bandRows, outHeight - top)
                        let band = rows * outWidth
                        im2col(groupInput, workspace, rowStride: band, outputRows: top..<(top + rows))
                        dml_sgemm(0, 0, Int32(outPerGroup), Int32(band), Int32(columnRows), 1,
                                  weight.pointer + g * outPerGroup * columnRows, Int32(columnRows),
                                  workspace, Int32(band), 1, destination + g * outPerGroup * outPlane + top * outWidth, Int32(outPlane))
                        top += rows
                    }
                }
            }
            activation?.apply(destination, destination, count: outChannels * outPlane)
        }
    }

    /// The fallback when oneDNN could not run a layer the channels-last pass gave it: the planar reference on
    /// converted copies (allocated here: this path is the exception, never the plan).
    private func forwardThroughPlanar(_ source: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        var planar = self
        planar.backend = .reference
        planar.activation = nil
        planar.sourceLayout = .planar
        planar.destinationLayout = .planar
        planar.accumulates = false
        let inCount = batch * inChannels * height * width, outCount = batch * outChannels * outHeight * outWidth
        let input = UnsafeMutablePointer<Float>.allocate(capacity: inCount)
        let result = UnsafeMutablePointer<Float>.allocate(capacity: outCount)
        defer { input.deallocate(); result.deallocate() }
        convertLayout(source, input, from: sourceLayout, to: .planar, channels: inChannels, plane: height * width, batch: batch)
        planar.forward([UnsafePointer(input)], result, batch: batch, workspace: workspace)
        if accumulates {
            let converted = UnsafeMutablePointer<Float>.allocate(capacity: outCount)
            defer { converted.deallocate() }
            convertLayout(result, converted, from: .planar, to: destinationLayout, channels: outChannels, plane: outHeight * outWidth, batch: batch)
            for i in 0..<outCount { output[i] += converted[i] }
        } else {
            convertLayout(result, output, from: .planar, to: destinationLayout, channels: outChannels, plane: outHeight * outWidth, batch: batch)
        }
        activation?.apply(output, output, count: outCount)
    }

    /// `samples` samples as one GEMM per group: columns `[columnRows, samples * plane]`, result
    /// `[outPerGroup, samples * plane]`, then bias (+ ReLU) while scattering back to NCHW.
    private func forwardSideBySide(_ source: UnsafePointer<Float>, _ destination: UnsafeMutablePointer<Float>,
                                   samples: Int, workspace: UnsafeMutablePointer<Float>) {
        let plane = outHeight * outWidth
        let wide = samples * plane
        let columns = workspace
        let result = workspace + columnRows * wide
        for g in 0..<groups {
            for s in 0..<samples {
                im2col(source + s * inChannels * height * width + g * inPerGroup * height * width, columns + s * plane,
                       rowStride: wide, outputRows: 0..<outHeight)
            }
            dml_sgemm(0, 0, Int32(outPerGroup), Int32(wide), Int32(columnRows), 1,
                      weight.pointer + g * outPerGroup * columnRows, Int32(columnRows),
                      columns, Int32(wide), 0, result, Int32(wide))
            for c in 0..<outPerGroup {
                let oc = g * outPerGroup + c
                let b = bias?[oc] ?? 0
                for s in 0..<samples {
                    let from = result + c * wide + s * plane
                    let to = destination + s * outChannels * plane + oc * plane
                    if fusedReLU {
                        for p in 0..<plane { to[p] = max(from[p] + b, 0) }
                    } else {
                        for p in 0..<plane { to[p] = from[p] + b }
                        activation?.apply(to, to, count: plane)
                    }
                }
            }
        }
    }

    private func fillBias(_ destination: UnsafeMutablePointer<Float>) {
        let plane = outHeight * outWidth
        for c in 0..<outChannels {
            (destination + c * plane).update(repeating: bias?[c] ?? 0, count: plane)
        }
    }

    /// Output positions `o` whose input coordinate `o * stride - pad + offset` lies in `0..<size`.
    @inline(__always)
    private static func validRange(size: Int, outSize: Int, stride: Int, pad: Int, offset: Int) -> Range<Int> {
        // smallest o with o*stride >= pad - offset; largest o with o*stride <= size - 1 + pad - offset
        let low = max(0, (pad - offset + stride - 1) / stride)
        let highNumerator = size - 1 + pad - offset
        let high = highNumerator < 0 ? -1 : min(outSize - 1, highNumerator / stride)
        return low <= high ? low..<(high + 1) : 0..<0
    }

    /// Unfolds one group's input for output rows `outputRows` into a `[columnRows, rows * outWidth]` block
    /// (rows of the block `rowStride` apart), zero where padding.
    private func im2col(_ source: UnsafePointer<Float>, _ columns: UnsafeMutablePointer<Float>, rowStride: Int, outputRows: Range<Int>) {
        var row = 0
        for c in 0..<inPerGroup {
            let channel = source + c * height * width
            for ki in 0..<kernelH {
                let ys = rowRanges[ki]
                for kj in 0..<kernelW {
                    let xs = columnRanges[kj]
                    let out = columns + row * rowStride
                    let x0 = kj * dilationW - padW
                    if strideH == 1, strideW == 1, outWidth == width {
                        sameSizeTap(channel, out, ys: ys, xs: xs, rowOffset: ki * dilationH - padH, x0: x0, outputRows: outputRows)
                        row += 1
                        continue
                    }
                    // Each element is written once: zeros where the tap falls in the padding, input elsewhere.
                    for oy in outputRows {
                        let outRow = out + (oy - outputRows.lowerBound) * outWidth
                        guard ys.contains(oy) else {
                            outRow.update(repeating: 0, count: outWidth)
                            continue
                        }
                        let inRow = channel + (oy * strideH - padH + ki * dilationH) * width
                        if xs.lowerBound > 0 { outRow.update(repeating: 0, count: xs.lowerBound) }
                        if strideW == 1 {
                            (outRow + xs.lowerBound).update(from: inRow + xs.lowerBound + x0, count: xs.count)
                        } else {
                            for ox in xs { outRow[ox] = inRow[ox * strideW + x0] }
                        }
                        if xs.upperBound < outWidth { (outRow + xs.upperBound).update(repeating: 0, count: outWidth - xs.upperBound) }
                    }
                    row += 1
                }
            }
        }
    }

    /// One kernel tap of a stride-1 conv whose output is as wide as its input ("same" padding): output pixel
    /// `j` reads input pixel `j + offset` for one constant offset, so the whole band is one copy; the columns
    /// that fall in the horizontal padding (which the copy filled from the neighbouring row) are zeroed after.
    private func sameSizeTap(_ channel: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, ys: Range<Int>, xs: Range<Int>,
                             rowOffset: Int, x0: Int, outputRows: Range<Int>) {
        // Clamped to the band: a band shorter than the vertical padding may lie wholly before `ys`.
        let lower = min(max(ys.lowerBound, outputRows.lowerBound), outputRows.upperBound)
        let valid = lower..<max(lower, min(ys.upperBound, outputRows.upperBound))
        let first = outputRows.lowerBound
        // Rows entirely in the vertical padding.
        out.update(repeating: 0, count: (valid.lowerBound - first) * outWidth)
        (out + (valid.upperBound - first) * outWidth).update(repeating: 0, count: (outputRows.upperBound - valid.upperBound) * outWidth)
        guard !valid.isEmpty else { return }
        var destination = (valid.lowerBound - first) * outWidth
        var source = valid.lowerBound * width + rowOffset * width + x0
        var count = valid.count * width
        if source < 0 {  // the skipped elements are padding columns, zeroed below
            destination -= source
            count += source
            source = 0
        }
        count = min(count, height * width - source)
        if count > 0 { (out + destination).update(from: channel + source, count: count) }
        if xs.count < outWidth {
            for oy in valid {
                let line = out + (oy - first) * outWidth
                for ox in 0..<min(xs.lowerBound, outWidth) { line[ox] = 0 }
                for ox in max(xs.upperBound, xs.lowerBound)..<outWidth { line[ox] = 0 }
            }
        }
    }

    /// One input channel per group: each output channel is a small stencil over its input channel.
    private func depthwise(_ source: UnsafePointer<Float>, _ destination: UnsafeMutablePointer<Float>) {
        for oc in 0..<outChannels {
            let channel = source + (oc / outPerGroup) * height * width
            let out = destination + oc * outHeight * outWidth
            let taps = weight.pointer + oc * kernelH * kernelW
            for ki in 0..<kernelH {
                let ys = rowRanges[ki]
                for kj in 0..<kernelW {
                    let xs = columnRanges[kj]
                    let w = taps[ki * kernelW + kj]
                    let x0 = kj * dilationW - padW
                    for oy in ys {
                        let inRow = channel + (oy * strideH - padH + ki * dilationH) * width
                        let outRow = out + oy * outWidth
                        if strideW == 1 {
                            for ox in xs { outRow[ox] += w * inRow[ox + x0] }
                        } else {
                            for ox in xs { outRow[ox] += w * inRow[ox * strideW + x0] }
                        }
                    }
                }
            }
        }
    }
}

/// A conv's f32 weights, shared by the copies of its layer: as given (read in place from the model file, or
/// a copy), or made on first use from the file's weights with a BatchNorm folded in. Once oneDNN holds its packed
/// copy, a folded copy is dropped (and the file's pages released): loading a BN-folded model then never holds
/// every layer's folded weights at once next to the packed ones. The values come back on a use that needs them
/// (a layer running without oneDNN).
final class ConvWeights: @unchecked Sendable {
    // `values` changes under `lock` only.
    private let lock = NSLock()
    private var values: FloatBuffer?
    private let make: (() -> FloatBuffer)?
    private let releasePages: (() -> Void)?
    let count: Int

    /// `releasePages` lets the model file's pages go once oneDNN packed the values (packing reads them again).
    init(_ buffer: FloatBuffer, releasePages: (() -> Void)? = nil) {
        values = buffer
        count = buffer.count
        make = nil
        self.releasePages = releasePages
    }

    /// `source` with output channel o scaled by `scale[o]` (rows of `source.count / scale.count` values);
    /// `releasePages` lets the file's pages go once the values are packed.
    init(folding source: FloatBuffer, scale: [Float], releasePages: (() -> Void)? = nil) {
        count = source.count
        let perRow = source.count / max(scale.count, 1)
        make = {
            FloatBuffer(count: source.count) { out in
                for i in 0..<source.count { out[i] = source[i] * scale[i / perRow] }
            }
        }
        self.releasePages = releasePages
    }

    var buffer: FloatBuffer {
        lock.withLock {
            if let values { return values }
            let made = make!()  // values is nil only when `make` exists
            values = made
            return made
        }
    }

    /// Whether the f32 values are in memory now (tests).
    var isResident: Bool { lock.withLock { values != nil } }

    /// oneDNN packed the values: drop a folded copy and let the file's pages go (both come back if needed).
    func packed() {
        if make != nil { lock.withLock { values = nil } }
        releasePages?()
    }
}
