import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Buffers for running a `CompiledGraph` on up to `capacity` samples, allocated once and reused.
///
/// Every value lives in one arena laid out by `ArenaPlanner`: values whose lifetimes do not overlap share memory
/// (a value is alive from the step that writes it to its last reader), and elementwise ops write over their input
/// when nothing else reads it, so peak memory is what is alive at once rather than one buffer per layer.
/// Not thread-safe: one plan per caller.
final class ExecutionPlan {
    let graph: CompiledGraph
    let capacity: Int
    private let arena: UnsafeMutablePointer<Float>
    /// Each value's first element in the arena.
    private let valuePointers: [UnsafeMutablePointer<Float>]
    private let workspace: UnsafeMutablePointer<Float>
    /// Prebuilt per-step pointer lists, so `run` allocates nothing.
    private let stepInputs: [[UnsafePointer<Float>]]
    private let stepOutputs: [UnsafeMutablePointer<Float>]
    /// Floats held by the plan (activations + scratch).
    let allocatedFloats: Int

    /// Where each value lives: its storage group's offset in the arena, per sample, and the arena's floats per
    /// sample.
    struct Layout {
        let offsetOfValue: [Int]
        let floatsPerSample: Int
    }

    static func layout(of graph: CompiledGraph) -> Layout {
        let sizes = graph.valueShapes.map(\.elementCount)
        var lastRead = Array(repeating: -1, count: sizes.count)
        for (index, step) in graph.steps.enumerated() { for input in step.inputs { lastRead[input] = index } }
        for output in graph.outputs { lastRead[output] = Int.max }

        // Storage groups: an in-place step's output joins its first input's group.
        var group = Array(sizes.indices)
        var written = Array(repeating: -1, count: sizes.count)  // the step writing each value; -1: the model input
        for (index, step) in graph.steps.enumerated() {
            written[step.output] = index
            if step.layer.canRunInPlace, let first = step.inputs.first, lastRead[first] == index,
               sizes[first] == sizes[step.output], step.inputs.dropFirst().allSatisfy({ $0 != first })
            {
                group[step.output] = group[first]
            }
        }
        var buffers: [Int: ArenaPlanner.Buffer] = [:]
        // Values no step writes (nodes fused away at load) hold nothing.
        for value in sizes.indices where value == 0 || written[value] >= 0 {
            // A value nobody reads (a dead branch) is alive only while its step writes it.
            let last = lastRead[value] == -1 ? written[value] : lastRead[value]
            let root = group[value]
            var buffer = buffers[root] ?? ArenaPlanner.Buffer(size: 0, first: written[value], last: last)
            buffer.size = max(buffer.size, sizes[value])
            buffer.first = min(buffer.first, written[value])
            buffer.last = max(buffer.last, last)
            buffers[root] = buffer
        }
        let roots = buffers.keys.sorted()
        let (offsets, total) = ArenaPlanner.place(roots.map { buffers[$0]! })
        let offsetOfRoot = Dictionary(uniqueKeysWithValues: zip(roots, offsets))
        return Layout(offsetOfValue: sizes.indices.map { offsetOfRoot[group[$0]] ?? 0 }, floatsPerSample: total)
    }

    convenience init(graph: CompiledGraph, capacity: Int) {
        self.init(graph: graph, layout: Self.layout(of: graph), capacity: capacity)
    }

    /// `layout`: `ExecutionPlan.layout(of: graph)`, computed once per model (a plan is remade when a larger batch
    /// arrives).
    init(graph: CompiledGraph, layout: Layout, capacity: Int) {
        self.graph = graph
        self.capacity = capacity
        let total = layout.floatsPerSample
        let arenaCount = max(1, total * capacity)
        arena = Self.allocateArena(arenaCount)
        let base = arena
        let pointers = layout.offsetOfValue.map { base + $0 * capacity }
        valuePointers = pointers
        let workspaceCount = max(1, graph.steps.map { $0.layer.workspaceCount(maxBatch: capacity) }.max() ?? 0)
        workspace = .allocate(capacity: workspaceCount)
        workspace.initialize(repeating: 0, count: workspaceCount)
        stepInputs = graph.steps.map { step in step.inputs.map { UnsafePointer(pointers[$0]) } }
        stepOutputs = graph.steps.map { pointers[$0.output] }
        allocatedFloats = arenaCount + workspaceCount
    }

    deinit {
        free(arena)
        workspace.deallocate()
    }

    /// Zeroed floats, 2 MiB aligned; on Linux the kernel is asked to back them with huge pages (activations at
    /// batch 16 span 100+ MiB: 4 KiB pages cost TLB misses and make the speed vary with where pages land).
    private static func allocateArena(_ count: Int) -> UnsafeMutablePointer<Float> {
        let bytes = count * MemoryLayout<Float>.stride, alignment = 2 << 20
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, alignment, bytes) == 0, let memory = raw else {
            fatalError("cannot allocate \(bytes) bytes for activations")
        }
        #if os(Linux)
        if bytes >= alignment { _ = madvise(memory, bytes, Int32(MADV_HUGEPAGE)) }
        #endif
        memset(memory, 0, bytes)
        return memory.bindMemory(to: Float.self, capacity: count)
    }

    /// The buffer the model input is copied into.
    var input: UnsafeMutablePointer<Float> { valuePointers[0] }

    /// The buffer holding value `value` after `run`.
    func buffer(of value: Int) -> UnsafePointer<Float> { UnsafePointer(valuePointers[value]) }

    /// Runs every step on the first `batch` samples in `input`; with `timings`, adds each step's seconds to it.
    func run(batch: Int, timings: UnsafeMutablePointer<Double>? = nil) {
        for index in graph.steps.indices {
            let start = timings == nil ? 0 : DispatchTime.now().uptimeNanoseconds
            graph.steps[index].layer.forward(stepInputs[index], stepOutputs[index], batch: batch, workspace: workspace)
            if let timings { timings[index] += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 }
        }
    }
}
