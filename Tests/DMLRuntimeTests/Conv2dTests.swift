import Foundation
import Testing
@testable import DMLRuntime

/// The lowered convolution (im2col bands, several samples per GEMM, depthwise loop, fused ReLU) against a
/// direct six-loop convolution, on shapes big enough to take every path.
@Suite("Conv2d lowering")
struct Conv2dTests {
    struct Case: CustomStringConvertible, Sendable {
        var cin, cout, h, w, k, stride, pad, dilation, groups, batch: Int
        var relu = false
        /// Kernel width and horizontal padding when they differ from `k` and `pad` (7x1, 1x7 convs).
        var kw: Int? = nil, padW: Int? = nil
        var kernelW: Int { kw ?? k }
        var padX: Int { padW ?? pad }
        var description: String {
            "cin \(cin) cout \(cout) \(h)x\(w) k\(k)x\(kernelW) s\(stride) p\(pad),\(padX) d\(dilation) g\(groups) batch \(batch)\(relu ? " relu" : "")"
        }
    }

    static let cases: [Case] = [
        // Large map: one-sample path in several im2col bands (64 * 9 * 96 columns per row > tile).
        Case(cin: 64, cout: 16, h: 12, w: 96, k: 3, stride: 1, pad: 1, dilation: 1, groups: 1, batch: 1),
        // Small map: several samples per GEMM, with a remainder chunk.
        Case(cin: 8, cout: 12, h: 12, w: 11, k: 3, stride: 2, pad: 1, dilation: 1, groups: 1, batch: 37, relu: true),
        // Stride 1 with "same" padding and dilation 2 (the one-copy-per-tap im2col), small map batched.
        Case(cin: 6, cout: 4, h: 5, w: 7, k: 3, stride: 1, pad: 2, dilation: 2, groups: 1, batch: 9),
        // Stride 1, "same" 5x5 on a map narrower than the kernel reach.
        Case(cin: 3, cout: 5, h: 3, w: 2, k: 5, stride: 1, pad: 2, dilation: 1, groups: 1, batch: 2),
        // Grouped + dilated, strided, odd sizes.
        Case(cin: 12, cout: 6, h: 11, w: 9, k: 3, stride: 2, pad: 2, dilation: 2, groups: 3, batch: 3),
        // Depthwise with channel multiplier 2.
        Case(cin: 5, cout: 10, h: 9, w: 7, k: 5, stride: 2, pad: 2, dilation: 1, groups: 5, batch: 4, relu: true),
        // Pointwise, strided 1x1 and plain 1x1.
        Case(cin: 16, cout: 8, h: 7, w: 7, k: 1, stride: 2, pad: 0, dilation: 1, groups: 1, batch: 5),
        Case(cin: 16, cout: 8, h: 30, w: 30, k: 1, stride: 1, pad: 0, dilation: 1, groups: 1, batch: 2),
    ] + winogradCases

    /// 3x3 stride-1 convs with 32-128 x 32-256 channels (these cases: 64 x 80): oneDNN's Winograd kernels where the CPU has them (F(2x2,3x3) at
    /// batch 1, F(4x4,3x3) at batch 16, whose weights are reordered from the plain copy kept at packing).
    static let winogradCases: [Case] = [1, 16].map { batch in
        Case(cin: 64, cout: 80, h: 11, w: 13, k: 3, stride: 1, pad: 1, dilation: 1, groups: 1, batch: batch, relu: true)
    }

    /// Whether oneDNN 2.6 has its f32 Winograd convolution here (AVX-512 with BW/VL/DQ, no ISA cap set) and the
    /// runtime may use it (DMLKIT_WINOGRAD not off).
    static var cpuHasWinograd: Bool {
        #if arch(x86_64) && os(Linux)
        let environment = ProcessInfo.processInfo.environment
        guard environment["ONEDNN_MAX_CPU_ISA"] == nil, environment["DNNL_MAX_CPU_ISA"] == nil,
              !["off", "0"].contains(environment["DMLKIT_WINOGRAD"] ?? ""),
              let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flags = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return false }
        let set = Set(flags.split(separator: " ").map(String.init))
        return ["avx512f", "avx512bw", "avx512vl", "avx512dq"].allSatisfy(set.contains)
        #else
        return false
        #endif
    }

    @Test("3x3 convs with 32+ channels run oneDNN's Winograd kernels on AVX-512 (a batch whose scratchpad outgrows the bound in smaller calls), direct ones with 16", arguments: [1, 16])
    func winogradChosen(_ batch: Int) throws {
        guard ConvBackend.onednnAvailable else { return }
        func kernel(cin: Int, cout: Int, size: (Int, Int) = (11, 13)) throws -> String {
            let c = Case(cin: cin, cout: cout, h: size.0, w: size.1, k: 3, stride: 1, pad: 1, dilation: 1, groups: 1, batch: batch)
            var layer = try Conv2dLayer(
                node: "conv", inputShape: [c.cin, c.h, c.w], weight: FloatBuffer(Self.values(c.cout * c.cin * 9, seed: 6)),
                weightShape: [c.cout, c.cin, 3, 3], bias: nil, stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1)
            layer.backend = .onednn
            let onednn = try #require(layer.onednn)
            return try #require(onednn.kernel(batch: batch))
        }
        let wide = try kernel(cin: 64, cout: 80), narrow = try kernel(cin: 16, cout: 32), thin = try kernel(cin: 32, cout: 32)
        #expect(wide.contains("wino") == Self.cpuHasWinograd, "64 -> 80 channels at batch \(batch): \(wide)")
        #expect(thin.contains("wino") == Self.cpuHasWinograd, "32 -> 32 channels at batch \(batch): \(thin)")
        #expect(!narrow.contains("wino"), "16 -> 32 channels at batch \(batch): \(narrow)")
        // 64 -> 128 at 16x16: 16 samples' scratchpad (14.6 MB) and copies pass the 16 MiB bound, so it runs in calls
        // of fewer samples, still Winograd (it used to fall back to the direct kernel, 2.2x slower).
        let smallMap = try kernel(cin: 64, cout: 128, size: (16, 16))
        #expect(smallMap.contains("wino") == Self.cpuHasWinograd, "64 -> 128 at 16x16, batch \(batch): \(smallMap)")
    }

    /// Inception-style "same" convs whose im2col band (a row or two) is shorter than the vertical padding:
    /// the first valid row of a tap must be clamped to the band (these trapped before).
    static let shortBandCases: [Case] = [1, 2].flatMap { batch in [
        Case(cin: 48, cout: 4, h: 35, w: 35, k: 5, stride: 1, pad: 2, dilation: 1, groups: 1, batch: batch),
        Case(cin: 192, cout: 3, h: 17, w: 17, k: 7, stride: 1, pad: 3, dilation: 1, groups: 1, batch: batch, kw: 1, padW: 0),
        Case(cin: 192, cout: 3, h: 17, w: 17, k: 1, stride: 1, pad: 0, dilation: 1, groups: 1, batch: batch, kw: 7, padW: 3),
        Case(cin: 64, cout: 3, h: 56, w: 56, k: 7, stride: 1, pad: 3, dilation: 1, groups: 1, batch: batch),
    ] }

    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000
        }
    }

    @Test("short im2col bands with tall padding match a direct convolution", arguments: shortBandCases)
    func shortBands(_ c: Case) throws {
        let layer = try Self.layer(c)
        #expect(layer.samplesPerGemm(c.batch) == 1 && layer.bandRows < layer.outHeight, "\(c) takes the banded one-sample path")
        for backend in Self.backends { try matchesDirect(c, backend) }
    }

    /// The runtime's own path always; oneDNN where this build has it (it must on x86-64 Linux).
    static let backends: [ConvBackend] = ConvBackend.onednnAvailable ? [.reference, .onednn] : [.reference]

    @Test("oneDNN is linked on x86-64 Linux")
    func onednnLinked() {
        #if arch(x86_64) && os(Linux)
        #expect(ConvBackend.onednnAvailable)
        #endif
    }

    static func layer(_ c: Case) throws -> Conv2dLayer {
        try Conv2dLayer(
            node: "conv", inputShape: [c.cin, c.h, c.w], weight: FloatBuffer([Float](repeating: 0, count: c.cout * c.cin / c.groups * c.k * c.kernelW)),
            weightShape: [c.cout, c.cin / c.groups, c.k, c.kernelW], bias: nil, stride: [c.stride, c.stride], padding: [c.pad, c.padX],
            dilation: [c.dilation, c.dilation], groups: c.groups)
    }

    @Test("matches a direct convolution", arguments: cases, backends)
    func matchesDirect(_ c: Case, _ backend: ConvBackend) throws {
        let cinPerGroup = c.cin / c.groups, coutPerGroup = c.cout / c.groups
        let kw = c.kernelW
        let weight = Self.values(c.cout * cinPerGroup * c.k * kw, seed: 1)
        let bias = Self.values(c.cout, seed: 2)
        let input = Self.values(c.batch * c.cin * c.h * c.w, seed: 3)
        var layer = try Conv2dLayer(
            node: "conv", inputShape: [c.cin, c.h, c.w], weight: FloatBuffer(weight), weightShape: [c.cout, cinPerGroup, c.k, kw],
            bias: FloatBuffer(bias), stride: [c.stride, c.stride], padding: [c.pad, c.padX], dilation: [c.dilation, c.dilation],
            groups: c.groups)
        layer.activation = c.relu ? .relu : nil
        layer.backend = backend
        let (ho, wo) = (layer.outHeight, layer.outWidth)
        if backend == .onednn {  // oneDNN really runs it (forward would fall back silently)
            let onednn = try #require(layer.onednn, "\(c): oneDNN refused the layer")
            var probe = [Float](repeating: 0, count: c.batch * c.cout * ho * wo)
            #expect(input.withUnsafeBufferPointer { i in probe.withUnsafeMutableBufferPointer { onednn.run(i.baseAddress!, $0.baseAddress!, batch: c.batch) } })
        }
        var output = [Float](repeating: .nan, count: c.batch * c.cout * ho * wo)
        var workspace = [Float](repeating: .nan, count: max(1, layer.workspaceCount(maxBatch: c.batch)))
        input.withUnsafeBufferPointer { i in
            output.withUnsafeMutableBufferPointer { o in
                workspace.withUnsafeMutableBufferPointer { layer.forward([i.baseAddress!], o.baseAddress!, batch: c.batch, workspace: $0.baseAddress!) }
            }
        }
        var worst: Float = 0
        for n in 0..<c.batch {
            for oc in 0..<c.cout {
                let g = oc / coutPerGroup
                for oy in 0..<ho {
                    for ox in 0..<wo {
                        var sum = Double(bias[oc]), magnitude = abs(Double(bias[oc]))
                        for ic in 0..<cinPerGroup {
                            for ki in 0..<c.k {
                                for kj in 0..<kw {
                                    let iy = oy * c.stride - c.pad + ki * c.dilation, ix = ox * c.stride - c.padX + kj * c.dilation
                                    guard iy >= 0, iy < c.h, ix >= 0, ix < c.w else { continue }
                                    let x = input[((n * c.cin + g * cinPerGroup + ic) * c.h + iy) * c.w + ix]
                                    let term = Double(weight[((oc * cinPerGroup + ic) * c.k + ki) * kw + kj]) * Double(x)
                                    sum += term
                                    magnitude += abs(term)
                                }
                            }
                        }
                        let expected = c.relu ? max(Float(sum), 0) : Float(sum)
                        // Float32 sums in another order (oneDNN's blocking) drift with the terms' size: 1e-4 plus
                        // 1e-7 of sum |terms| (a 3136-term 7x7x64 dot reaches ~1.4e-4 on oneDNN).
                        let error = abs(expected - output[((n * c.cout + oc) * ho + oy) * wo + ox]) / (1 + Float(magnitude) * 1e-3)
                        if !(error <= worst) { worst = error.isNaN ? .infinity : error }  // NaN counts as a failure
                    }
                }
            }
        }
        #expect(worst <= 1e-4, "\(c) \(backend): max error \(worst) (abs / (1 + 1e-3 sum |terms|))")
    }

    @Test("a Winograd layer's large batch (run in several calls to bound its blocked copies) gives each sample's own result")
    func winogradSplitBatch() throws {
        guard ConvBackend.onednnAvailable else { return }
        // 64 -> 64 channels at 40x40: 0.8 MB of blocked copies per sample, so 11 samples run as 6 + 5.
        let cin = 64, cout = 64, side = 40, batch = 11
        var layer = try Conv2dLayer(
            node: "conv", inputShape: [cin, side, side], weight: FloatBuffer(Self.values(cout * cin * 9, seed: 7)),
            weightShape: [cout, cin, 3, 3], bias: FloatBuffer(Self.values(cout, seed: 8)), stride: [1, 1], padding: [1, 1],
            dilation: [1, 1], groups: 1)
        layer.activation = .relu
        layer.backend = .onednn
        let onednn = try #require(layer.onednn)
        let input = Self.values(batch * cin * side * side, seed: 9)
        let sampleOut = cout * side * side
        var together = [Float](repeating: .nan, count: batch * sampleOut), alone = together
        #expect(input.withUnsafeBufferPointer { i in together.withUnsafeMutableBufferPointer { onednn.run(i.baseAddress!, $0.baseAddress!, batch: batch) } })
        for n in 0..<batch {
            #expect(input.withUnsafeBufferPointer { i in
                alone.withUnsafeMutableBufferPointer { onednn.run(i.baseAddress! + n * cin * side * side, $0.baseAddress! + n * sampleOut, batch: 1) }
            })
        }
        // Winograd's tile sizes differ between the two (F(4x4) vs F(2x2)): float rounding only.
        let worst = zip(together, alone).map { abs($0 - $1) / (1 + abs($1)) }.max() ?? .nan
        #expect(worst <= 1e-4, "max relative difference \(worst)")  // NaN fails
    }

    @Test("a BN-folded conv keeps only oneDNN's packed weights after packing and rebuilds the f32 ones on demand")
    func foldedWeightsAreDroppedAfterPacking() throws {
        let cin = 8, cout = 6, k = 3, side = 10, batch = 2
        let weight = Self.values(cout * cin * k * k, seed: 4)
        let scale = (0..<cout).map { 0.5 + Float($0) * 0.25 }
        let folded = weight.enumerated().map { $0.element * scale[$0.offset / (cin * k * k)] }
        let weights = ConvWeights(folding: FloatBuffer(weight), scale: scale)
        #expect(!weights.isResident)  // folded on first use, not at build
        func conv(_ w: ConvWeights, _ backend: ConvBackend) throws -> Conv2dLayer {
            var layer = try Conv2dLayer(node: "conv", inputShape: [cin, side, side], weights: w, weightShape: [cout, cin, k, k],
                                        bias: nil, stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1)
            layer.backend = backend
            return layer
        }
        func run(_ layer: Conv2dLayer, _ input: [Float]) -> [Float] {
            var output = [Float](repeating: .nan, count: batch * cout * side * side)
            var workspace = [Float](repeating: 0, count: max(1, layer.workspaceCount(maxBatch: batch)))
            input.withUnsafeBufferPointer { i in
                output.withUnsafeMutableBufferPointer { o in
                    workspace.withUnsafeMutableBufferPointer { layer.forward([i.baseAddress!], o.baseAddress!, batch: batch, workspace: $0.baseAddress!) }
                }
            }
            return output
        }
        let input = Self.values(batch * cin * side * side, seed: 5)
        let layer = try conv(weights, ConvBackend.preferred)
        layer.prepareBackend()
        if layer.onednn != nil { #expect(!weights.isResident, "the folded copy is dropped once packed") }
        let packed = run(layer, input)
        let expected = run(try conv(ConvWeights(FloatBuffer(folded)), .reference), input)
        let worst = zip(packed, expected).map { abs($0 - $1) / (1 + abs($1)) }.max() ?? .nan
        #expect(worst <= 1e-5, "max relative error \(worst)")
        // The runtime's own path on the same weights folds them again: the exact values.
        #expect(run(try conv(weights, .reference), input) == expected)
        #expect(weights.buffer.array == folded)
    }

    static let activations: [ActivationLayer.Function] = [
        .relu, .leakyRelu(0.1), .clamp(low: 0, high: 6), .clamp(low: -.infinity, high: 0.5), .hardswish,
        .hardsigmoid, .geluErf, .geluTanh, .silu, .sigmoid, .tanh,
    ]

    @Test("oneDNN's fused activations match the runtime's own conv + activation", arguments: activations)
    func onednnActivations(_ function: ActivationLayer.Function) throws {
        guard ConvBackend.onednnAvailable else { return }
        let (cin, cout, h, w, batch) = (6, 8, 9, 7, 3)
        var layer = try Conv2dLayer(
            node: "conv", inputShape: [cin, h, w], weight: FloatBuffer(Self.values(cout * cin * 9, seed: 4)), weightShape: [cout, cin, 3, 3],
            bias: FloatBuffer(Self.values(cout, seed: 5)), stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1)
        layer.activation = function
        let input = Self.values(batch * cin * h * w, seed: 6).map { $0 * 4 }  // reaches both sides of every kink
        func run(_ backend: ConvBackend) -> [Float] {
            layer.backend = backend
            var output = [Float](repeating: .nan, count: batch * cout * h * w)
            var workspace = [Float](repeating: .nan, count: max(1, layer.workspaceCount(maxBatch: batch)))
            input.withUnsafeBufferPointer { i in
                output.withUnsafeMutableBufferPointer { o in
                    workspace.withUnsafeMutableBufferPointer { layer.forward([i.baseAddress!], o.baseAddress!, batch: batch, workspace: $0.baseAddress!) }
                }
            }
            return output
        }
        let reference = run(.reference)
        let onednn = run(.onednn)
        #expect(layer.onednn != nil)
        var worst: Float = 0
        for (a, b) in zip(reference, onednn) {
            let error = abs(a - b) / max(1, abs(a))
            if !(error <= worst) { worst = error.isNaN ? .infinity : error }
        }
        #expect(worst <= 1e-5, "\(function): max error \(worst)")
    }

    @Test("the large case really is split into bands and the small one batched")
    func pathsAreTaken() throws {
        let big = Self.cases[0], small = Self.cases[1]
        let bigLayer = try Conv2dLayer(node: "a", inputShape: [big.cin, big.h, big.w], weight: FloatBuffer([Float](repeating: 0, count: 16 * 64 * 9)),
                                       weightShape: [16, 64, 3, 3], bias: nil, stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1)
        #expect(bigLayer.bandRows < bigLayer.outHeight)
        let smallLayer = try Conv2dLayer(node: "b", inputShape: [small.cin, small.h, small.w], weight: FloatBuffer([Float](repeating: 0, count: 12 * 8 * 9)),
                                         weightShape: [12, 8, 3, 3], bias: nil, stride: [2, 2], padding: [1, 1], dilation: [1, 1], groups: 1)
        #expect(smallLayer.samplesPerGemm(small.batch) > 1)
        #expect(small.batch % smallLayer.samplesPerGemm(small.batch) != 0)
    }
}
