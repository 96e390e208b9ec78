import CDMLBlas
import CDMLDnnl
import Foundation

/// Softmax along one per-sample axis: `exp(x - max) / sum`, per row of that axis.
struct SoftmaxLayer: Layer {
    let outer: Int
    let size: Int
    let inner: Int
    let outputShape: [Int]
    var canRunInPlace: Bool { true }

    init(inputShape: [Int], axis: Int) {
        outer = inputShape[..<axis].reduce(1, *)
        size = inputShape[axis]
        inner = inputShape[(axis + 1)...].reduce(1, *)
        outputShape = inputShape
    }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        for o in 0..<(batch * outer) {
            for j in 0..<inner {
                softmaxRow(inputs[0] + o * size * inner + j, output + o * size * inner + j, count: size, stride: inner)
            }
        }
    }
}

/// Softmax of `count` values `stride` apart; `x` and `y` may be the same buffer.
@inline(__always)
func softmaxRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, stride: Int) {
    var top = -Float.infinity
    for i in 0..<count { top = max(top, x[i * stride]) }
    var sum: Float = 0
    for i in 0..<count { let e = exp(x[i * stride] - top); y[i * stride] = e; sum += e }
    let scale = 1 / sum
    for i in 0..<count { y[i * stride] *= scale }
}

/// `torch.matmul` of per-sample `[..., M, K]` and `[..., K, N]` with equal leading axes: one GEMM per
/// sample and leading index.
struct MatmulLayer: Layer {
    let leading: Int
    let m: Int, k: Int, n: Int
    let outputShape: [Int]
    var flops: Int { 2 * leading * m * k * n }

    init(node: String, shapes: [[Int]]) throws {
        let a = shapes[0], b = shapes[1]
        guard a.count >= 2, a.count == b.count, a.dropLast(2) == b.dropLast(2), a[a.count - 1] == b[b.count - 2] else {
            throw ModelError.shapeMismatch(node: node, reason: "matmul needs [..., M, K] and [..., K, N] with equal leading axes, got \(a) and \(b)")
        }
        leading = a.dropLast(2).reduce(1, *)
        m = a[a.count - 2]; k = a[a.count - 1]; n = b[b.count - 1]
        outputShape = a.dropLast() + [n]
    }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        for i in 0..<(batch * leading) {
            dml_sgemm(0, 0, Int32(m), Int32(n), Int32(k), 1, inputs[0] + i * m * k, Int32(k), inputs[1] + i * k * n, Int32(n),
                      0, output + i * m * n, Int32(n))
        }
    }
}

/// Fused multi-head self-attention over tokens `[T, D]` (`nn.MultiheadAttention` with batch_first, timm
/// `Attention`): one GEMM projects every token to q, k, v (`in_weight` `[3D, D]`), each head takes
/// `softmax(q k^T / sqrt(D / heads)) v`, and one GEMM applies the out projection. With oneDNN the projections run
/// over the whole batch and the (sample, head) pairs are split over the threads, each pair single-threaded
/// (small GEMMs do not scale across cores, and a threaded BLAS inside would fight the OpenMP threads); without it,
/// per sample and head through the BLAS.
struct SelfAttentionLayer: Layer {
    let tokens: Int
    let width: Int
    let heads: Int
    /// Tokens to q, k, v (`in_weight` `[3D, D]`) and the out projection (`[D, D]`).
    let inProjection: Projection
    let outProjection: Projection
    /// oneDNN's per-head primitives, when the backend is oneDNN and it took the shape.
    let onednnHeads: OneDNNAttention?
    let outputShape: [Int]
    var headWidth: Int { width / heads }
    var flops: Int { 2 * tokens * width * 4 * width + 4 * tokens * tokens * width }

    init(node: String, inputShape: [Int], heads: Int, inWeight: (FloatBuffer, [Int]), inBias: FloatBuffer?,
         outWeight: (FloatBuffer, [Int]), outBias: FloatBuffer?, backend: ConvBackend = ConvBackend.preferred) throws {
        func fail(_ reason: String) -> ModelError { .shapeMismatch(node: node, reason: reason) }
        guard inputShape.count == 2 else { throw fail("self_attention needs tokens [T, D], got \(inputShape)") }
        let d = inputShape[1]
        guard heads >= 1, d % heads == 0 else {
            throw ModelError.badAttribute(node: node, attribute: "num_heads", reason: "must divide the width \(d), got \(heads)")
        }
        guard inWeight.1 == [3 * d, d] else { throw fail("in_weight must be [\(3 * d), \(d)], got \(inWeight.1)") }
        guard outWeight.1 == [d, d] else { throw fail("out_weight must be [\(d), \(d)], got \(outWeight.1)") }
        guard (inBias?.count ?? 3 * d) == 3 * d, (outBias?.count ?? d) == d else { throw fail("in_bias must hold \(3 * d) values and out_bias \(d)") }
        tokens = inputShape[0]
        width = d
        self.heads = heads
        inProjection = Projection(weight: inWeight.0, bias: inBias, inFeatures: d, outFeatures: 3 * d, backend: backend, typicalRows: inputShape[0])
        outProjection = Projection(weight: outWeight.0, bias: outBias, inFeatures: d, outFeatures: d, backend: backend, typicalRows: inputShape[0])
        onednnHeads = backend == .onednn ? OneDNNAttention(tokens: tokens, width: d, heads: heads) : nil
        outputShape = inputShape
    }

    func workspaceCount(maxBatch: Int) -> Int {
        (onednnHeads != nil ? maxBatch : 1) * tokens * 4 * width + tokens * tokens
    }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        let (t, d) = (tokens, width)
        if let onednnHeads {
            let qkv = workspace, context = workspace + batch * t * 3 * d, scores = context + batch * t * d
            inProjection.apply(inputs[0], rows: batch * t, into: qkv)
            if !onednnHeads.run(qkv, context, batch: batch) {
                for s in 0..<batch { attendWithBLAS(qkv + s * t * 3 * d, into: context + s * t * d, scores: scores) }
            }
            outProjection.apply(context, rows: batch * t, into: output)
            return
        }
        let qkv = workspace, context = workspace + t * 3 * d, scores = context + t * d
        for s in 0..<batch {
            inProjection.apply(inputs[0] + s * t * d, rows: t, into: qkv)
            attendWithBLAS(qkv, into: context, scores: scores)
            outProjection.apply(context, rows: t, into: output + s * t * d)
        }
    }

    /// Every head of one sample: `qkv` `[T, 3D]` to `context` `[T, D]`, with `scores` `[T, T]` as scratch.
    private func attendWithBLAS(_ qkv: UnsafePointer<Float>, into context: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>) {
        let (t, d, dh) = (tokens, width, headWidth)
        let scale = 1 / Float(dh).squareRoot()
        for h in 0..<heads {
            let q = qkv + h * dh, k = q + d, v = q + 2 * d
            dml_sgemm(0, 1, Int32(t), Int32(t), Int32(dh), scale, q, Int32(3 * d), k, Int32(3 * d), 0, scores, Int32(t))
            for r in 0..<t { softmaxRow(scores + r * t, scores + r * t, count: t, stride: 1) }
            dml_sgemm(0, 0, Int32(t), Int32(dh), Int32(t), 1, scores, Int32(t), v, Int32(3 * d), 0, context + h * dh, Int32(d))
        }
    }
}

/// One attention layer's oneDNN primitives (scores, softmax, context), made at load.
final class OneDNNAttention: @unchecked Sendable {
    // The C handle is read-only after creation; concurrent `run` calls are safe.
    private let handle: OpaquePointer

    init?(tokens: Int, width: Int, heads: Int) {
        guard tokens <= Int(Int32.max), width <= Int(Int32.max),
              let handle = dml_dnnl_attention_create(Int32(tokens), Int32(width), Int32(heads)) else { return nil }
        self.handle = handle
    }

    deinit { dml_dnnl_attention_destroy(handle) }

    /// Per sample `[T, 3D]` -> `[T, D]`; false when oneDNN could not run it (nothing usable was written).
    func run(_ qkv: UnsafePointer<Float>, _ context: UnsafeMutablePointer<Float>, batch: Int) -> Bool {
        batch <= Int(Int32.max) && dml_dnnl_attention_run(handle, qkv, context, Int32(batch)) == 0
    }
}

/// `y = x W^T + b` for `rows` rows (the bias pre-filled and accumulated into, as in `LinearLayer`).
@inline(__always)
package func projectRows(_ x: UnsafePointer<Float>, rows: Int, inFeatures: Int, weight: FloatBuffer, bias: FloatBuffer?, outFeatures: Int,
                 into y: UnsafeMutablePointer<Float>) {
    var beta: Float = 0
    if let bias {
        for r in 0..<rows { (y + r * outFeatures).update(from: bias.pointer, count: outFeatures) }
        beta = 1
    }
    dml_sgemm(0, 1, Int32(rows), Int32(outFeatures), Int32(inFeatures), 1, x, Int32(inFeatures), weight.pointer, Int32(inFeatures),
              beta, y, Int32(outFeatures))
}
