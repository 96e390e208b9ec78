/// Resolves a node's weight roles to `Float` buffers, checking dtypes and dequantising int8.
///
/// Storage dtypes: `F32` (borrowed from the mapping when aligned), `F16`/`BF16` (converted at load),
/// and `I8` with a companion `<name>.scale` tensor of one `F32` scale per output channel (dimension 0):
/// `w[o, ...] = q[o, ...] * scale[o]`. Compute is always `Float`. A tensor holding NaN or infinity
/// (after dequantisation) is refused, naming the node and tensor.
struct ModelWeights {
    let file: SafetensorsFile

    /// The tensor for `role`, or nil when the node does not name one.
    func optional(_ node: NodeSpec, _ role: String) throws -> (buffer: FloatBuffer, shape: [Int])? {
        guard let name = node.tensors[role] else { return nil }
        return try load(node, name)
    }

    /// The tensor for `role`, which the op requires.
    func required(_ node: NodeSpec, _ role: String) throws -> (buffer: FloatBuffer, shape: [Int]) {
        guard let result = try optional(node, role) else {
            throw ModelError.badAttribute(node: node.name, attribute: "tensors.\(role)", reason: "is missing")
        }
        return result
    }

    private func load(_ node: NodeSpec, _ name: String) throws -> (buffer: FloatBuffer, shape: [Int]) {
        let loaded = try dequantised(node, name)
        let values = loaded.buffer
        for i in 0..<values.count where !values[i].isFinite {
            throw ModelError.nonFiniteWeight(node: node.name, tensor: name, index: i)
        }
        return loaded
    }

    private func dequantised(_ node: NodeSpec, _ name: String) throws -> (buffer: FloatBuffer, shape: [Int]) {
        let info = try file.info(name)
        if info.dtype.isFloatingPoint { return (try file.floats(name), info.shape) }
        guard info.dtype == .i8 else { throw ModelError.unsupportedDType(node: node.name, tensor: name, dtype: info.dtype.rawValue) }
        guard let scaleInfo = file.tensors[name + ".scale"] else {
            throw ModelError.badAttribute(node: node.name, attribute: "tensors", reason: "I8 tensor '\(name)' has no '\(name).scale'")
        }
        guard scaleInfo.dtype.isFloatingPoint, let rows = info.shape.first, scaleInfo.elementCount == rows, rows > 0 else {
            throw ModelError.shapeMismatch(node: node.name, reason: "'\(name).scale' must hold one float per output channel of '\(name)'")
        }
        let scales = try file.floats(name + ".scale")
        let quantised = try file.int8s(name)
        let buffer = dequantisedRows(quantised, scales: scales.array, rows: rows)
        return (buffer, info.shape)
    }
}

/// `w[r, i] = q[r, i] * scale[r]` for int8 weights with one scale per row (dimension 0); `rows` divides the count.
package func dequantisedRows(_ quantised: [Int8], scales: [Float], rows: Int) -> FloatBuffer {
    let perRow = quantised.count / rows
    return FloatBuffer(count: quantised.count) { out in
        for r in 0..<rows {
            let s = scales[r]
            for i in 0..<perRow { out[r * perRow + i] = Float(quantised[r * perRow + i]) * s }
        }
    }
}
