/// Reshapes without moving data (`flatten`, `reshape` to a fixed per-sample shape): a copy unless run in place.
struct ReshapeLayer: Layer {
    let outputShape: [Int]
    var canRunInPlace: Bool { true }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        copyIfNeeded(inputs[0], output, count: batch * outputShape.elementCount)
    }
}

/// Concatenation along a per-sample axis (`axis` 0 is the tensor's dimension 1).
struct ConcatLayer: Layer {
    let axis: Int
    /// Contiguous floats each input contributes per outer index.
    let chunks: [Int]
    let outer: Int
    let outputShape: [Int]

    init(node: String, shapes: [[Int]], axis: Int) throws {
        func fail(_ reason: String) -> ModelError { .shapeMismatch(node: node, reason: reason) }
        guard let first = shapes.first else { throw fail("concat needs at least one input") }
        guard axis >= 0, axis < first.count else { throw fail("concat dimension \(axis + 1) is out of range for shape \(first)") }
        for shape in shapes where shape.count != first.count || zip(shape, first).enumerated().contains(where: { $0.offset != axis && $0.element.0 != $0.element.1 }) {
            throw fail("concat inputs \(first) and \(shape) differ outside dimension \(axis + 1)")
        }
        self.axis = axis
        outer = first.prefix(axis).reduce(1, *)
        chunks = shapes.map { $0.suffix(from: axis).reduce(1, *) }
        var shape = first
        shape[axis] = shapes.map { $0[axis] }.reduce(0, +)
        outputShape = shape
    }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        var y = output
        for b in 0..<(batch * outer) {
            for (input, chunk) in zip(inputs, chunks) {
                y.update(from: input + b * chunk, count: chunk)
                y += chunk
            }
        }
    }
}
