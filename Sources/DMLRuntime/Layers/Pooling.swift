import CDMLDnnl

/// Max or average pooling over 2-D windows (stride, padding; dilation for max), output size rounded down,
/// or up with `ceilMode` as PyTorch does (the last window must start inside the input or the left padding;
/// windows reaching past the input cover only what lies inside, plus padding for `countIncludePad`).
struct Pool2dLayer: Layer {
    enum Kind: Sendable { case max, average(countIncludePad: Bool) }

    let kind: Kind
    let channels: Int, height: Int, width: Int
    let kernelH: Int, kernelW: Int, strideH: Int, strideW: Int, padH: Int, padW: Int, dilationH: Int, dilationW: Int
    let outHeight: Int, outWidth: Int
    let outputShape: [Int]
    /// `.channelsLast`: the input and output are `[H, W, C]` (set by the channels-last pass).
    var layout: TensorLayout = .planar { didSet { remakeBackend() } }
    /// oneDNN's kernels (conv's choice: `DMLKIT_CONV=reference` keeps the loops below), or the loops below.
    var backend: ConvBackend = ConvBackend.preferred { didSet { remakeBackend() } }
    /// oneDNN's handle when `backend` is `.onednn` and oneDNN has a JIT kernel for the geometry.
    private(set) var onednn: OneDNNKernel?

    init(node: String, kind: Kind, inputShape: [Int], kernel: [Int], stride: [Int], padding: [Int], dilation: [Int],
         ceilMode: Bool = false) throws {
        func fail(_ reason: String) -> ModelError { .shapeMismatch(node: node, reason: reason) }
        guard inputShape.count == 3 else { throw fail("pooling needs input [C, H, W], got \(inputShape)") }
        guard kernel.count == 2, stride.count == 2, padding.count == 2, dilation.count == 2,
              kernel.allSatisfy({ $0 >= 1 }), stride.allSatisfy({ $0 >= 1 }), dilation.allSatisfy({ $0 >= 1 }),
              padding.allSatisfy({ $0 >= 0 }), padding[0] * 2 <= kernel[0], padding[1] * 2 <= kernel[1]
        else { throw fail("pooling needs kernel/stride/dilation >= 1 and padding at most half the kernel") }
        self.kind = kind
        channels = inputShape[0]; height = inputShape[1]; width = inputShape[2]
        kernelH = kernel[0]; kernelW = kernel[1]; strideH = stride[0]; strideW = stride[1]
        padH = padding[0]; padW = padding[1]; dilationH = dilation[0]; dilationW = dilation[1]
        let spanH = dilationH * (kernelH - 1) + 1, spanW = dilationW * (kernelW - 1) + 1
        guard height + 2 * padH >= spanH, width + 2 * padW >= spanW else { throw fail("pooling window is larger than the padded input \(inputShape)") }
        func outSize(_ size: Int, _ pad: Int, _ span: Int, _ stride: Int) -> Int {
            var out = (size + 2 * pad - span + (ceilMode ? stride - 1 : 0)) / stride + 1
            if ceilMode, (out - 1) * stride >= size + pad { out -= 1 }
            return out
        }
        outHeight = outSize(height, padH, spanH, strideH)
        outWidth = outSize(width, padW, spanW, strideW)
        outputShape = [channels, outHeight, outWidth]
        remakeBackend()
    }

    private mutating func remakeBackend() {
        onednn = nil
        guard backend == .onednn else { return }
        // The padding past the input that makes oneDNN's output size ours (ceil mode); negative when floor mode
        // drops input rows or columns.
        let padBottom = (outHeight - 1) * strideH + dilationH * (kernelH - 1) + 1 - height - padH
        let padRight = (outWidth - 1) * strideW + dilationW * (kernelW - 1) + 1 - width - padW
        let poolKind: dml_dnnl_pool_kind
        switch kind {
        case .max: poolKind = DML_DNNL_POOL_MAX
        case .average(countIncludePad: false): poolKind = DML_DNNL_POOL_AVG_EXCLUDE_PAD
        case .average(countIncludePad: true):
            // PyTorch counts the padding but not the cells past it, oneDNN the whole window: the same divisor
            // only while no window reaches past the padding.
            guard padBottom <= padH, padRight <= padW else { return }
            poolKind = DML_DNNL_POOL_AVG_INCLUDE_PAD
        }
        onednn = OneDNNKernel.pooling(channels: channels, height: height, width: width, outHeight: outHeight, outWidth: outWidth,
                               kernel: (kernelH, kernelW), stride: (strideH, strideW),
                               padding: (padH, padW, padBottom, padRight), dilation: (dilationH, dilationW),
                               kind: poolKind, channelsLast: layout == .channelsLast)
    }

    /// Whether every window lies wholly inside the unpadded input.
    var windowsInside: Bool {
        padH == 0 && padW == 0 && dilationH == 1 && dilationW == 1
            && (outHeight - 1) * strideH + kernelH <= height && (outWidth - 1) * strideW + kernelW <= width
    }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        if let onednn, onednn.run(inputs[0], output, batch: batch) { return }
        if layout == .channelsLast {
            forwardChannelsLast(inputs[0], output, batch: batch)
            return
        }
        if windowsInside {
            forwardUnpadded(inputs[0], output, planes: batch * channels)
            return
        }
        var y = output
        for plane in 0..<(batch * channels) {
            let x = inputs[0] + plane * height * width
            for oy in 0..<outHeight {
                for ox in 0..<outWidth {
                    var best = -Float.infinity
                    var sum: Float = 0
                    var inside = 0
                    for ki in 0..<kernelH {
                        let iy = oy * strideH - padH + ki * dilationH
                        guard iy >= 0, iy < height else { continue }
                        for kj in 0..<kernelW {
                            let ix = ox * strideW - padW + kj * dilationW
                            guard ix >= 0, ix < width else { continue }
                            let v = x[iy * width + ix]
                            best = max(best, v)
                            sum += v
                            inside += 1
                        }
                    }
                    switch kind {
                    case .max:
                        y[oy * outWidth + ox] = best
                    case let .average(countIncludePad):
                        let divisor = averageDivisor(oy: oy, ox: ox, inside: inside, countIncludePad: countIncludePad)
                        y[oy * outWidth + ox] = divisor > 0 ? sum / Float(divisor) : 0
                    }
                }
            }
            y += outHeight * outWidth
        }
    }
}

extension Pool2dLayer {
    /// An average window's divisor: the taps inside the input, or with count_include_pad also the padded
    /// cells (but not cells past the padding), as PyTorch counts them.
    fileprivate func averageDivisor(oy: Int, ox: Int, inside: Int, countIncludePad: Bool) -> Int {
        guard countIncludePad else { return inside }
        let y0 = oy * strideH - padH, x0 = ox * strideW - padW
        return (min(y0 + kernelH, height + padH) - y0) * (min(x0 + kernelW, width + padW) - x0)
    }

    /// Channels-last windows: each tap is a contiguous run of `channels` values, so the inner loop vectorises.
    /// Same taps, order and divisors as the planar loop.
    fileprivate func forwardChannelsLast(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int) {
        let isMax: Bool
        if case .max = kind { isMax = true } else { isMax = false }
        parallelFor(batch * outHeight, grain: max(1, 4096 / max(1, outWidth * channels))) { rows in
            for row in rows {
                let n = row / outHeight, oy = row % outHeight
                let x = input + n * height * width * channels
                var y = output + row * outWidth * channels
                for ox in 0..<outWidth {
                    y.update(repeating: isMax ? -Float.infinity : 0, count: channels)
                    var inside = 0
                    for ki in 0..<kernelH {
                        let iy = oy * strideH - padH + ki * dilationH
                        guard iy >= 0, iy < height else { continue }
                        for kj in 0..<kernelW {
                            let ix = ox * strideW - padW + kj * dilationW
                            guard ix >= 0, ix < width else { continue }
                            let tap = x + (iy * width + ix) * channels
                            if isMax {
                                for c in 0..<channels { y[c] = max(y[c], tap[c]) }
                            } else {
                                for c in 0..<channels { y[c] += tap[c] }
                            }
                            inside += 1
                        }
                    }
                    if case let .average(countIncludePad) = kind {
                        let divisor = averageDivisor(oy: oy, ox: ox, inside: inside, countIncludePad: countIncludePad)
                        let d = Float(max(divisor, 1))
                        for c in 0..<channels { y[c] = divisor > 0 ? y[c] / d : 0 }
                    }
                    y += channels
                }
            }
        }
    }

    /// The common case (no padding, no dilation): every window lies inside the input, so no bounds checks.
    fileprivate func forwardUnpadded(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, planes: Int) {
        let isMax: Bool
        if case .max = kind { isMax = true } else { isMax = false }
        let divisor = 1 / Float(kernelH * kernelW)
        if isMax, kernelH == 2, kernelW == 2, strideH == 2, strideW == 2 {
            // The usual 2x2/2 max pool, written out so the compiler can vectorise it.
            for plane in 0..<planes {
                let x = input + plane * height * width
                let y = output + plane * outHeight * outWidth
                for oy in 0..<outHeight {
                    let top = x + 2 * oy * width, bottom = top + width
                    let out = y + oy * outWidth
                    for ox in 0..<outWidth {
                        out[ox] = max(max(top[2 * ox], top[2 * ox + 1]), max(bottom[2 * ox], bottom[2 * ox + 1]))
                    }
                }
            }
            return
        }
        for plane in 0..<planes {
            let x = input + plane * height * width
            let y = output + plane * outHeight * outWidth
            for oy in 0..<outHeight {
                for ox in 0..<outWidth {
                    let window = x + oy * strideH * width + ox * strideW
                    if isMax {
                        var best = window[0]
                        for ki in 0..<kernelH { for kj in 0..<kernelW { best = max(best, window[ki * width + kj]) } }
                        y[oy * outWidth + ox] = best
                    } else {
                        var sum: Float = 0
                        for ki in 0..<kernelH { for kj in 0..<kernelW { sum += window[ki * width + kj] } }
                        y[oy * outWidth + ox] = sum * divisor
                    }
                }
            }
        }
    }
}

/// Global average or max pooling over all positions after the channel axis (`AdaptiveAvgPool2d(1)`,
/// `x.mean((2, 3))`). `keepDimensions` gives `[C, 1, 1]` instead of `[C]`.
struct GlobalPoolLayer: Layer {
    let isMax: Bool
    let channels: Int
    let inner: Int
    /// H of a `[C, H, W]` input (1 for other ranks): oneDNN's window shape.
    let rows: Int
    let outputShape: [Int]
    /// `.channelsLast`: the input is `[H, W, C]` (the output, one value per channel, is the same either way).
    var layout: TensorLayout = .planar { didSet { remakeBackend() } }
    /// oneDNN's kernels (as `Pool2dLayer`), or the loops below.
    var backend: ConvBackend = ConvBackend.preferred { didSet { remakeBackend() } }
    private(set) var onednn: OneDNNKernel?

    init(node: String, inputShape: [Int], isMax: Bool, keepDimensions: Bool) throws {
        guard inputShape.count >= 2 else { throw ModelError.shapeMismatch(node: node, reason: "global pooling needs input [C, H, W], got \(inputShape)") }
        self.isMax = isMax
        channels = inputShape[0]
        inner = inputShape.dropFirst().reduce(1, *)
        rows = inputShape.count == 3 ? inputShape[1] : 1
        outputShape = keepDimensions ? [channels] + Array(repeating: 1, count: inputShape.count - 1) : [channels]
        remakeBackend()
    }

    /// One window over all positions, as `rows` rows of pixels (any other rank as one row: the same bytes).
    private mutating func remakeBackend() {
        let columns = inner / rows
        onednn = backend != .onednn ? nil
            : OneDNNKernel.pooling(channels: channels, height: rows, width: columns, outHeight: 1, outWidth: 1, kernel: (rows, columns),
                            stride: (1, 1), padding: (0, 0, 0, 0), dilation: (1, 1),
                            kind: isMax ? DML_DNNL_POOL_MAX : DML_DNNL_POOL_AVG_EXCLUDE_PAD, channelsLast: layout == .channelsLast)
    }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        if let onednn, onednn.run(inputs[0], output, batch: batch) { return }
        if layout == .channelsLast {
            // Positions in the same order as the planar sums, a block of channels at a time, blocks over threads.
            let width = 64, blocks = (channels + width - 1) / width
            parallelFor(batch * blocks, grain: max(1, 16384 / max(1, inner * width))) { items in
                for item in items {
                    let n = item / blocks, first = item % blocks * width, count = min(width, channels - first)
                    let x = inputs[0] + n * inner * channels + first, y = output + n * channels + first
                    y.update(from: x, count: count)
                    for p in 1..<max(inner, 1) {
                        let row = x + p * channels
                        if isMax {
                            for c in 0..<count { y[c] = max(y[c], row[c]) }
                        } else {
                            for c in 0..<count { y[c] += row[c] }
                        }
                    }
                    if !isMax { for c in 0..<count { y[c] /= Float(inner) } }
                }
            }
            return
        }
        for plane in 0..<(batch * channels) {
            let x = inputs[0] + plane * inner
            if isMax {
                var best = -Float.infinity
                for i in 0..<inner { best = max(best, x[i]) }
                output[plane] = best
            } else {
                var sum: Float = 0
                for i in 0..<inner { sum += x[i] }
                output[plane] = sum / Float(inner)
            }
        }
    }
}

/// Adaptive average or max pooling of `[C, H, W]` to `[C, outH, outW]` as PyTorch bins it: output row `i`
/// covers input rows `floor(i * H / outH) ..< ceil((i + 1) * H / outH)` (and likewise for columns).
struct AdaptivePool2dLayer: Layer {
    let isMax: Bool
    let channels: Int, height: Int, width: Int
    let rowBins: [Range<Int>]
    let columnBins: [Range<Int>]
    let outputShape: [Int]
    /// `.channelsLast`: the input and output are `[H, W, C]` (set by the channels-last pass).
    var layout: TensorLayout = .planar

    init(node: String, inputShape: [Int], outputSize: [Int], isMax: Bool) throws {
        guard inputShape.count == 3 else { throw ModelError.shapeMismatch(node: node, reason: "adaptive pooling needs input [C, H, W], got \(inputShape)") }
        guard outputSize.count == 2, outputSize.allSatisfy({ $0 >= 1 }),
              let count = (outputSize + [inputShape[0]]).checkedElementCount, count <= RuntimeLimits.maxValueElements
        else {
            throw ModelError.badAttribute(node: node, attribute: "output_size", reason: "must be two sizes >= 1 of moderate size")
        }
        self.isMax = isMax
        channels = inputShape[0]; height = inputShape[1]; width = inputShape[2]
        func bins(_ size: Int, _ out: Int) -> [Range<Int>] {
            (0..<out).map { i in (i * size / out)..<(((i + 1) * size + out - 1) / out) }
        }
        rowBins = bins(height, outputSize[0])
        columnBins = bins(width, outputSize[1])
        outputShape = [channels, outputSize[0], outputSize[1]]
    }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        var y = output
        if layout == .channelsLast {
            for n in 0..<batch {
                let x = inputs[0] + n * height * width * channels
                for rows in rowBins {
                    for columns in columnBins {
                        y.update(repeating: isMax ? -Float.infinity : 0, count: channels)
                        for iy in rows {
                            for ix in columns {
                                let tap = x + (iy * width + ix) * channels
                                if isMax {
                                    for c in 0..<channels { y[c] = max(y[c], tap[c]) }
                                } else {
                                    for c in 0..<channels { y[c] += tap[c] }
                                }
                            }
                        }
                        if !isMax { for c in 0..<channels { y[c] /= Float(rows.count * columns.count) } }
                        y += channels
                    }
                }
            }
            return
        }
        for plane in 0..<(batch * channels) {
            let x = inputs[0] + plane * height * width
            for rows in rowBins {
                for columns in columnBins {
                    var best = -Float.infinity
                    var sum: Float = 0
                    for iy in rows {
                        for ix in columns {
                            let v = x[iy * width + ix]
                            best = max(best, v)
                            sum += v
                        }
                    }
                    y.pointee = isMax ? best : sum / Float(rows.count * columns.count)
                    y += 1
                }
            }
        }
    }
}
