/// Layout of an 8-bit pixel buffer handed to the runtime (row-major, channels interleaved).
public enum PixelFormat: Sendable {
    case rgb8, bgr8, gray8

    /// Bytes per pixel.
    public var channels: Int { self == .gray8 ? 1 : 3 }
}

extension ImagePreprocessing {
    /// Writes one model input sample (`[C, height, width]`) from an image of any size: bilinear resize
    /// (half-pixel centres, like `F.interpolate(mode="bilinear", align_corners=False)`), channel reorder
    /// (gray from colour uses ITU-R BT.601 weights; gray to colour repeats the value), then
    /// `(value * scale - mean[c]) / std[c]`.
    func apply(_ pixels: UnsafeBufferPointer<UInt8>, width sourceWidth: Int, height sourceHeight: Int,
               format: PixelFormat, into output: UnsafeMutablePointer<Float>) throws {
        guard sourceWidth > 0, sourceHeight > 0 else { throw InferenceError.preprocessing("image size \(sourceWidth)x\(sourceHeight) is empty") }
        let (expected, overflow) = sourceWidth.multipliedReportingOverflow(by: sourceHeight * format.channels)
        guard !overflow, pixels.count == expected else {
            throw InferenceError.preprocessing("\(pixels.count) bytes do not hold a \(sourceWidth)x\(sourceHeight) image with \(format.channels) channel(s)")
        }
        // Model channel c reads these source channels with these weights.
        let sources: [[(Int, Float)]]
        switch (channelOrder, format) {
        case (.gray, .gray8): sources = [[(0, 1)]]
        case (.gray, .rgb8): sources = [[(0, 0.299), (1, 0.587), (2, 0.114)]]
        case (.gray, .bgr8): sources = [[(2, 0.299), (1, 0.587), (0, 0.114)]]
        case (_, .gray8): sources = [[(0, 1)], [(0, 1)], [(0, 1)]]
        case (.rgb, .rgb8), (.bgr, .bgr8): sources = [[(0, 1)], [(1, 1)], [(2, 1)]]
        case (.rgb, .bgr8), (.bgr, .rgb8): sources = [[(2, 1)], [(1, 1)], [(0, 1)]]
        }
        let xs = Self.taps(output: width, input: sourceWidth)
        let ys = Self.taps(output: height, input: sourceHeight)
        let stride = format.channels
        for (c, mix) in sources.enumerated() {
            let a = scale / std[c], b = -mean[c] / std[c]
            let plane = output + c * height * width
            for (oy, ty) in ys.enumerated() {
                for (ox, tx) in xs.enumerated() {
                    var value: Float = 0
                    for (channel, weight) in mix {
                        func at(_ y: Int, _ x: Int) -> Float { Float(pixels[(y * sourceWidth + x) * stride + channel]) }
                        let top = at(ty.0, tx.0) * (1 - tx.2) + at(ty.0, tx.1) * tx.2
                        let bottom = at(ty.1, tx.0) * (1 - tx.2) + at(ty.1, tx.1) * tx.2
                        value += weight * (top * (1 - ty.2) + bottom * ty.2)
                    }
                    plane[oy * width + ox] = value * a + b
                }
            }
        }
    }

    /// For each output coordinate: the two source coordinates and the weight of the second.
    private static func taps(output: Int, input: Int) -> [(Int, Int, Float)] {
        let ratio = Float(input) / Float(output)
        return (0..<output).map { o in
            let source = max(0, (Float(o) + 0.5) * ratio - 0.5)
            let low = min(Int(source), input - 1)
            let high = low < input - 1 ? low + 1 : low
            return (low, high, source - Float(low))
        }
    }
}
