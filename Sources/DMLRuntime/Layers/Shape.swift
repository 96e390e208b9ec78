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
        let total = chunks.reduce(0, +)
        parallelFor(batch * outer, grain: max(1, 16384 / total)) { rows in
            var y = output + rows.lowerBound * total
            for b in rows {
                for (input, chunk) in zip(inputs, chunks) {
                    y.update(from: input + b * chunk, count: chunk)
                    y += chunk
                }
            }
        }
    }
}

/// Reorders the per-sample axes (`torch.permute` with the batch axis kept first): output axis `i` is input
/// axis `order[i]`. Axes that stay neighbours are merged at load, so a channel shuffle copies whole planes.
struct PermuteLayer: Layer {
    let outputShape: [Int]
    let inputShape: [Int]
    let order: [Int]
    /// Merged output loop dimensions and the input stride along each.
    let dims: [Int]
    let inputStrides: [Int]

    init(node: String, inputShape: [Int], order: [Int]) throws {
        guard order.count == inputShape.count, order.sorted() == Array(inputShape.indices) else {
            throw ModelError.badAttribute(node: node, attribute: "dims", reason: "must reorder the axes of \(inputShape) (with the batch axis 0 first)")
        }
        self.inputShape = inputShape
        self.order = order
        var contiguous = [Int](repeating: 1, count: inputShape.count)
        for d in inputShape.indices.dropLast().reversed() { contiguous[d] = contiguous[d + 1] * inputShape[d + 1] }
        outputShape = order.map { inputShape[$0] }
        var dims: [Int] = [], strides: [Int] = []
        for (size, stride) in zip(outputShape, order.map { contiguous[$0] }) where size > 1 {
            if let last = dims.last, strides[strides.count - 1] == stride * size {
                dims[dims.count - 1] = last * size
                strides[strides.count - 1] = stride
            } else {
                dims.append(size)
                strides.append(stride)
            }
        }
        self.dims = dims.isEmpty ? [1] : dims
        inputStrides = strides.isEmpty ? [1] : strides
    }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        let count = outputShape.elementCount
        let inner = dims[dims.count - 1], innerStride = inputStrides[dims.count - 1]
        var index = [Int](repeating: 0, count: dims.count)
        for n in 0..<batch {
            let x = inputs[0] + n * count
            var y = output + n * count
            var offset = 0
            for i in index.indices { index[i] = 0 }
            for _ in 0..<(count / inner) {
                if innerStride == 1 {
                    y.update(from: x + offset, count: inner)
                } else {
                    for i in 0..<inner { y[i] = x[offset + i * innerStride] }
                }
                y += inner
                stepOuterLoops(&index, dims) { d, steps in offset += inputStrides[d] * steps }
            }
        }
    }
}

/// Every `step`-th index from `start` along one per-sample axis (`slice`: chunk, split, prefix tokens),
/// or a single index with the axis removed (`select`: the class token `x[:, 0]`).
struct SliceLayer: Layer {
    let outer: Int
    let axisSize: Int
    let inner: Int
    let start: Int
    let step: Int
    let count: Int
    let outputShape: [Int]

    /// `axis` counts per-sample axes; `start`/`end` are already clipped to `0...size`.
    init(inputShape: [Int], axis: Int, start: Int, step: Int, count: Int, removesAxis: Bool) {
        outer = inputShape[..<axis].reduce(1, *)
        axisSize = inputShape[axis]
        inner = inputShape[(axis + 1)...].reduce(1, *)
        self.start = start
        self.step = step
        self.count = count
        var shape = inputShape
        if removesAxis { shape.remove(at: axis) } else { shape[axis] = count }
        outputShape = shape
    }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        var y = output
        for o in 0..<(batch * outer) {
            let x = inputs[0] + o * axisSize * inner + start * inner
            if step == 1 {
                y.update(from: x, count: count * inner)
                y += count * inner
            } else {
                for i in 0..<count {
                    y.update(from: x + i * step * inner, count: inner)
                    y += inner
                }
            }
        }
    }
}

/// Mean over a set of per-sample axes (`x.mean(dims, keepdim)`): over tokens, over H and W, or any mix.
struct MeanLayer: Layer {
    let outputShape: [Int]
    let inputShape: [Int]
    let axes: Set<Int>
    let keepDimensions: Bool
    let inputCount: Int
    /// Merged input loop dimensions and the output stride along each (0 along reduced axes).
    let dims: [Int]
    let outputStrides: [Int]
    let reducedCount: Int

    init(inputShape: [Int], axes: Set<Int>, keepDimensions: Bool) {
        self.inputShape = inputShape
        self.axes = axes
        self.keepDimensions = keepDimensions
        inputCount = inputShape.elementCount
        reducedCount = axes.map { inputShape[$0] }.reduce(1, *)
        let kept = inputShape.indices.map { axes.contains($0) ? 1 : inputShape[$0] }
        outputShape = keepDimensions ? kept : inputShape.indices.filter { !axes.contains($0) }.map { inputShape[$0] }
        // The output read as an input of the input's shape broadcasting along the reduced axes.
        let (dims, strides, _) = mergedBroadcastLoops(shape: inputShape, inputs: [kept])
        self.dims = dims
        outputStrides = strides
    }

    func forward(_ inputs: [UnsafePointer<Float>], _ output: UnsafeMutablePointer<Float>, batch: Int, workspace: UnsafeMutablePointer<Float>) {
        let outCount = outputShape.elementCount
        let inner = dims[dims.count - 1], innerStride = outputStrides[dims.count - 1]
        var index = [Int](repeating: 0, count: dims.count)
        let scale = 1 / Float(reducedCount)
        for n in 0..<batch {
            var x = inputs[0] + n * inputCount
            let y = output + n * outCount
            y.update(repeating: 0, count: outCount)
            var offset = 0
            for i in index.indices { index[i] = 0 }
            for _ in 0..<(inputCount / inner) {
                if innerStride == 0 {
                    var sum: Float = 0
                    for i in 0..<inner { sum += x[i] }
                    y[offset] += sum
                } else {
                    for i in 0..<inner { y[offset + i] += x[i] }
                }
                x += inner
                stepOuterLoops(&index, dims) { d, steps in offset += outputStrides[d] * steps }
            }
            for i in 0..<outCount { y[i] *= scale }
        }
    }
}
