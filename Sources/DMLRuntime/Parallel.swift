import CDMLDnnl

/// Runs `body` over disjoint pieces of `0..<count` (each at least `grain` long) on the OpenMP threads oneDNN
/// uses, or on this thread when there is one. `body` must only write what its own piece owns.
func parallelFor(_ count: Int, grain: Int, _ body: (Range<Int>) -> Void) {
    guard count > 0 else { return }
    withoutActuallyEscaping(body) { body in
        var piece = body
        withUnsafeMutablePointer(to: &piece) { context in
            dml_parallel_for(count, grain, { context, begin, end in
                context!.assumingMemoryBound(to: ((Range<Int>) -> Void).self).pointee(Int(begin)..<Int(end))
            }, context)
        }
    }
}
