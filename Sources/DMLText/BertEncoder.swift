import CDMLBlas
import DMLRuntime
import Foundation

/// A BERT encoder (forward only): word + position + token-type embeddings, LayerNorm, then per layer multi-head
/// self-attention and a GELU feed-forward block, each with a residual connection and LayerNorm.
///
/// Sequences are packed back to back without padding: the dense layers run as one GEMM over all tokens of the
/// batch, and attention runs per sequence over its real length only. That is exactly what a padded batch with an
/// attention mask computes for the real tokens, without the work on padding.
public struct BertEncoder: Sendable {
    /// The encoder's shape.
    public let configuration: BertConfiguration
    let weights: BertWeights

    /// Loads the weights from `model.safetensors`, rounded to `precision`.
    public init(file: SafetensorsFile, configuration: BertConfiguration, precision: WeightPrecision = .f32) throws {
        self.configuration = configuration
        weights = try BertWeights(file: file, configuration: configuration, precision: precision)
    }

    /// Encodes packed sequences and writes each token's final hidden vector to `workspace.hidden`
    /// (`[total tokens, hidden size]`, sequences in order). Ids must be below the vocabulary size and each
    /// sequence no longer than `maxPositions` (the caller checks).
    func encode(ids: [Int32], lengths: [Int], workspace w: Workspace) {
        let total = ids.count
        guard total > 0 else { return }  // every buffer below is non-empty from here on
        w.reserve(tokens: total, longest: lengths.max() ?? 0, configuration: configuration)
        w.hidden.withUnsafeMutableBufferPointer { hiddenBuffer in
            let hidden = hiddenBuffer.baseAddress!
            embed(ids: ids, lengths: lengths, into: hidden)
            for layer in weights.layers {
                attention(layer, hidden: hidden, lengths: lengths, total: total, workspace: w)
                feedForward(layer, hidden: hidden, total: total, workspace: w)
            }
        }
    }

    private func embed(ids: [Int32], lengths: [Int], into hidden: UnsafeMutablePointer<Float>) {
        let h = configuration.hiddenSize
        var t = 0
        weights.positionEmbeddings.withUnsafeBufferPointer { positions in
            weights.typeEmbeddings.withUnsafeBufferPointer { types in
                for length in lengths {
                    for p in 0..<length {
                        let row = hidden + t * h
                        let word = weights.wordEmbeddings.pointer + Int(ids[t]) * h
                        let position = positions.baseAddress! + p * h
                        for j in 0..<h { row[j] = word[j] + position[j] + types[j] }  // token type 0
                        t += 1
                    }
                }
            }
        }
        Kernels.addLayerNorm(hidden, residual: nil, rows: t, width: h, weight: weights.embeddingNormWeight,
                             bias: weights.embeddingNormBias, epsilon: configuration.layerNormEpsilon)
    }

    private func attention(_ layer: BertLayerWeights, hidden: UnsafeMutablePointer<Float>, lengths: [Int], total: Int, workspace w: Workspace) {
        let c = configuration
        let h = c.hiddenSize, d = c.headSize, stride = 3 * h
        let scale = 1 / Float(d).squareRoot()
        w.qkv.withUnsafeMutableBufferPointer { qkvBuffer in
            w.context.withUnsafeMutableBufferPointer { contextBuffer in
                w.scores.withUnsafeMutableBufferPointer { scoresBuffer in
                    w.projected.withUnsafeMutableBufferPointer { projectedBuffer in
                        let qkv = qkvBuffer.baseAddress!, context = contextBuffer.baseAddress!
                        let scores = scoresBuffer.baseAddress!, projected = projectedBuffer.baseAddress!
                        layer.qkv.apply(hidden, rows: total, into: qkv)
                        var offset = 0
                        for length in lengths {
                            let n = Int32(length)
                            for head in 0..<c.headCount {
                                let q = qkv + offset * stride + head * d
                                let k = q + h, v = q + 2 * h
                                // scores[L, L] = Q · Kᵀ; softmax applies the 1/√d scale.
                                dml_sgemm(0, 1, n, n, Int32(d), 1, q, Int32(stride), k, Int32(stride), 0, scores, n)
                                Kernels.softmax(scores, rows: length, width: length, stride: length, scale: scale)
                                dml_sgemm(0, 0, n, Int32(d), n, 1, scores, n, v, Int32(stride), 0,
                                          context + offset * h + head * d, Int32(h))
                            }
                            offset += length
                        }
                        layer.attentionOutput.apply(context, rows: total, into: projected)
                        Kernels.addLayerNorm(projected, residual: hidden, rows: total, width: h, weight: layer.attentionNormWeight,
                                             bias: layer.attentionNormBias, epsilon: c.layerNormEpsilon)
                        hidden.update(from: projected, count: total * h)
                    }
                }
            }
        }
    }

    private func feedForward(_ layer: BertLayerWeights, hidden: UnsafeMutablePointer<Float>, total: Int, workspace w: Workspace) {
        let c = configuration
        let h = c.hiddenSize
        w.intermediate.withUnsafeMutableBufferPointer { intermediateBuffer in
            w.projected.withUnsafeMutableBufferPointer { projectedBuffer in
                let inter = intermediateBuffer.baseAddress!, projected = projectedBuffer.baseAddress!
                layer.intermediate.apply(hidden, rows: total, into: inter)  // GELU fused
                layer.output.apply(inter, rows: total, into: projected)
                Kernels.addLayerNorm(projected, residual: hidden, rows: total, width: h, weight: layer.outputNormWeight,
                                     bias: layer.outputNormBias, epsilon: c.layerNormEpsilon)
                hidden.update(from: projected, count: total * h)
            }
        }
    }
}
