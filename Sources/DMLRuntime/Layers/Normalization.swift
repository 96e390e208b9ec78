/// LayerNorm over the trailing `normalizedCount` elements of each sample, with optional affine weights.
struct LayerNormLayer: Layer {
    let normalizedCount: Int
    let weight: FloatBuffer?
    let bias: FloatBuffer?
    let epsilon: Float
    let outputShape: [Int]
    var canRunInPlace: Bool { true }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        let rows = batch * outputShape.elementCount / normalizedCount
        layerNormRows(inputs[0], output, rows: rows, width: normalizedCount, weight: weight?.pointer, bias: bias?.pointer, epsilon: epsilon)
    }
}

/// LayerNorm of `rows` rows of `width` floats, `x` to `y` (which may alias), with optional affine weights.
/// Rows are split over the runtime's threads.
package func layerNormRows(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, rows: Int, width: Int,
                           weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, epsilon: Float) {
    parallelFor(rows, grain: max(1, 16384 / max(1, width))) { range in
        for r in range {
            layerNormRow(input + r * width, output + r * width, width: width, weight: weight, bias: bias, epsilon: epsilon)
        }
    }
}

/// One row: two passes in Float (mean, then the variance of deviations: stable for the row widths seen here),
/// each summed in eight lanes so the loops vectorise, then the affine step.
@inline(__always)
private func layerNormRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, width: Int,
                          weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, epsilon: Float) {
    let lanes = 8, whole = width / lanes * lanes
    func load(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> {
        UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
    }
    var sums = SIMD8<Float>()
    for i in stride(from: 0, to: whole, by: lanes) { sums += load(x, i) }
    var total = sums.sum()
    for i in whole..<width { total += x[i] }
    let mean = total / Float(width)
    var squares = SIMD8<Float>()
    for i in stride(from: 0, to: whole, by: lanes) { let d = load(x, i) - mean; squares += d * d }
    var variance = squares.sum()
    for i in whole..<width { let d = x[i] - mean; variance += d * d }
    variance /= Float(width)
    let inverse = 1 / (variance + epsilon).squareRoot()
    // One plain loop per affine case (same operations in the same order as a single loop with optional steps).
    switch (weight, bias) {
    case let (w?, b?): for i in 0..<width { y[i] = (x[i] - mean) * inverse * w[i] + b[i] }
    case let (w?, nil): for i in 0..<width { y[i] = (x[i] - mean) * inverse * w[i] }
    case let (nil, b?): for i in 0..<width { y[i] = (x[i] - mean) * inverse + b[i] }
    case (nil, nil): for i in 0..<width { y[i] = (x[i] - mean) * inverse }
    }
}

/// `x / max(||x||_2, eps)` along dimension 1 (the first per-sample dimension), like `F.normalize`.
struct L2NormalizeLayer: Layer {
    let epsilon: Float
    let outputShape: [Int]
    var canRunInPlace: Bool { true }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        let channels = outputShape[0]
        let inner = outputShape.elementCount / channels
        for n in 0..<batch {
            let x = inputs[0] + n * channels * inner
            let y = output + n * channels * inner
            for j in 0..<inner {
                var sum: Float = 0
                for c in 0..<channels { let v = x[c * inner + j]; sum += v * v }
                let scale = 1 / max(sum.squareRoot(), epsilon)
                for c in 0..<channels { y[c * inner + j] = x[c * inner + j] * scale }
            }
        }
    }
}

/// L2-normalises `rows` rows of `width` floats in place (used for the final embedding).
package func l2NormalizeRows(_ data: UnsafeMutablePointer<Float>, rows: Int, width: Int, epsilon: Float = 1e-12) {
    for r in 0..<rows {
        let row = data + r * width
        var sum: Float = 0
        for i in 0..<width { sum += row[i] * row[i] }
        let scale = 1 / max(sum.squareRoot(), epsilon)
        for i in 0..<width { row[i] *= scale }
    }
}

/// LayerNorm over the channel axis of `[C, ...]` at each position (timm/torchvision `LayerNorm2d`, ConvNeXt):
/// statistics over the `C` values one plane apart, accumulated plane by plane so the reads stay contiguous.
struct ChannelLayerNormLayer: Layer {
    let channels: Int
    let plane: Int
    let weight: FloatBuffer?
    let bias: FloatBuffer?
    let epsilon: Float
    let outputShape: [Int]
    /// `.channelsLast`: the input and output are `[H, W, C]`, so each position's channels are contiguous.
    var layout: TensorLayout = .planar
    var canRunInPlace: Bool { true }

    func workspaceCount(maxBatch: Int) -> Int { 2 * plane }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        let scale = 1 / Float(channels)
        if layout == .channelsLast {
            // The same sums in the same order as the planar loop, one position at a time.
            for position in 0..<(batch * plane) {
                let x = inputs[0] + position * channels, y = output + position * channels
                var mean: Float = 0
                for c in 0..<channels { mean += x[c] }
                mean *= scale
                var variance: Float = 0
                for c in 0..<channels { let d = x[c] - mean; variance += d * d }
                let inverse = 1 / (variance * scale + epsilon).squareRoot()
                for c in 0..<channels { y[c] = (x[c] - mean) * inverse * (weight?[c] ?? 1) + (bias?[c] ?? 0) }
            }
            return
        }
        let mean = workspace, inverse = workspace + plane
        for n in 0..<batch {
            let x = inputs[0] + n * channels * plane, y = output + n * channels * plane
            mean.update(repeating: 0, count: plane)
            inverse.update(repeating: 0, count: plane)
            for c in 0..<channels { let row = x + c * plane; for p in 0..<plane { mean[p] += row[p] } }
            for p in 0..<plane { mean[p] *= scale }
            for c in 0..<channels { let row = x + c * plane; for p in 0..<plane { let d = row[p] - mean[p]; inverse[p] += d * d } }
            for p in 0..<plane { inverse[p] = 1 / (inverse[p] * scale + epsilon).squareRoot() }
            for c in 0..<channels {
                let row = x + c * plane, out = y + c * plane
                let w = weight?[c] ?? 1, b = bias?[c] ?? 0
                for p in 0..<plane { out[p] = (row[p] - mean[p]) * inverse[p] * w + b }
            }
        }
    }
}
