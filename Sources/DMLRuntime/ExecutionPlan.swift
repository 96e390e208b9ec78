import Dispatch

/// Buffers for running a `CompiledGraph` on up to `capacity` samples, allocated once and reused.
///
/// Values share buffers when their lifetimes do not overlap (a value's buffer returns to the pool after
/// its last reader), and elementwise ops write over their input when nothing else reads it, so peak
/// memory is a few activation maps rather than one per layer. Not thread-safe: one plan per caller.
final class ExecutionPlan {
    let graph: CompiledGraph
    let capacity: Int
    private let slots: [UnsafeMutablePointer<Float>]
    private let slotOfValue: [Int]
    private let workspace: UnsafeMutablePointer<Float>
    /// Prebuilt per-step pointer lists, so `run` allocates nothing.
    private let stepInputs: [[UnsafePointer<Float>]]
    private let stepOutputs: [UnsafeMutablePointer<Float>]
    /// Floats held by the plan (activations + scratch).
    let allocatedFloats: Int

    init(graph: CompiledGraph, capacity: Int) {
        self.graph = graph
        self.capacity = capacity
        let sizes = graph.valueShapes.map(\.elementCount)
        var lastRead = Array(repeating: -1, count: sizes.count)
        for (index, step) in graph.steps.enumerated() { for input in step.inputs { lastRead[input] = index } }
        for output in graph.outputs { lastRead[output] = Int.max }

        var slotSizes: [Int] = []
        var free: [Int] = []
        var slotOf = Array(repeating: -1, count: sizes.count)
        func take(_ size: Int) -> Int {
            // Smallest free slot that fits; else grow the largest free one; else a new slot.
            if let best = free.filter({ slotSizes[$0] >= size }).min(by: { slotSizes[$0] < slotSizes[$1] }) {
                free.removeAll { $0 == best }
                return best
            }
            if let largest = free.max(by: { slotSizes[$0] < slotSizes[$1] }) {
                free.removeAll { $0 == largest }
                slotSizes[largest] = size
                return largest
            }
            slotSizes.append(size)
            return slotSizes.count - 1
        }
        slotOf[0] = take(sizes[0])
        for (index, step) in graph.steps.enumerated() {
            let first = step.inputs.first
            if step.layer.canRunInPlace, let first, lastRead[first] == index, sizes[first] == sizes[step.output],
               step.inputs.dropFirst().allSatisfy({ $0 != first })
            {
                slotOf[step.output] = slotOf[first]
            } else {
                slotOf[step.output] = take(sizes[step.output])
            }
            for input in Set(step.inputs) where lastRead[input] == index && slotOf[input] != slotOf[step.output] {
                free.append(slotOf[input])
            }
            // A value nobody reads (a dead branch) frees its slot at once.
            if lastRead[step.output] == -1 { free.append(slotOf[step.output]) }
        }
        slots = slotSizes.map { size in
            let memory = UnsafeMutablePointer<Float>.allocate(capacity: max(1, size * capacity))
            memory.initialize(repeating: 0, count: max(1, size * capacity))
            return memory
        }
        let workspaceCount = max(1, graph.steps.map { $0.layer.workspaceCount(maxBatch: capacity) }.max() ?? 0)
        workspace = .allocate(capacity: workspaceCount)
        workspace.initialize(repeating: 0, count: workspaceCount)
        slotOfValue = slotOf
        let slotPointers = slots
        stepInputs = graph.steps.map { step in step.inputs.map { UnsafePointer(slotPointers[slotOf[$0]]) } }
        stepOutputs = graph.steps.map { slotPointers[slotOf[$0.output]] }
        allocatedFloats = slotSizes.reduce(0, +) * capacity + workspaceCount
    }

    deinit {
        slots.forEach { $0.deallocate() }
        workspace.deallocate()
    }

    /// The buffer the model input is copied into.
    var input: UnsafeMutablePointer<Float> { slots[slotOfValue[0]] }

    /// The buffer holding value `value` after `run`.
    func buffer(of value: Int) -> UnsafePointer<Float> { UnsafePointer(slots[slotOfValue[value]]) }

    /// Runs every step on the first `batch` samples in `input`; with `timings`, adds each step's seconds to it.
    func run(batch: Int, timings: UnsafeMutablePointer<Double>? = nil) {
        for index in graph.steps.indices {
            let start = timings == nil ? 0 : DispatchTime.now().uptimeNanoseconds
            graph.steps[index].layer.forward(stepInputs[index], stepOutputs[index], batch: batch, workspace: workspace)
            if let timings { timings[index] += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 }
        }
    }
}
