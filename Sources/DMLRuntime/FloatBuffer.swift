/// An immutable run of `Float`s: either owned, or borrowed from a memory-mapped file kept alive by `owner`.
public final class FloatBuffer: @unchecked Sendable {
    // Never mutated after init, so it can be shared freely across threads.
    /// First element.
    public let pointer: UnsafePointer<Float>
    /// Number of elements.
    public let count: Int
    private let owner: AnyObject?
    private let owned: UnsafeMutablePointer<Float>?

    /// Borrows `count` floats at `pointer`, keeping `owner` (the mapping) alive.
    init(borrowing pointer: UnsafePointer<Float>, count: Int, owner: AnyObject) {
        self.pointer = pointer
        self.count = count
        self.owner = owner
        self.owned = nil
    }

    /// Allocates `count` floats and lets `fill` write them.
    init(count: Int, fill: (UnsafeMutablePointer<Float>) throws -> Void) rethrows {
        let memory = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        memory.initialize(repeating: 0, count: max(count, 1))
        try fill(memory)
        self.pointer = UnsafePointer(memory)
        self.count = count
        self.owner = nil
        self.owned = memory
    }

    /// Copies an array.
    public convenience init(_ values: [Float]) {
        self.init(count: values.count) { out in
            values.withUnsafeBufferPointer { source in
                if let base = source.baseAddress { out.update(from: base, count: values.count) }
            }
        }
    }

    /// Whether the values live in the mapped file (no copy was made).
    public var isBorrowed: Bool { owned == nil }

    /// The values as an array (a copy).
    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    subscript(index: Int) -> Float { pointer[index] }

    deinit { owned?.deallocate() }
}
