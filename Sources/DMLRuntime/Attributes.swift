/// Typed access to a node's attributes, with errors that name the node and the attribute.
struct Attributes {
    let node: NodeSpec

    private func fail(_ key: String, _ reason: String) -> ModelError {
        .badAttribute(node: node.name, attribute: key, reason: reason)
    }

    /// An integer attribute.
    func int(_ key: String, default fallback: Int? = nil) throws -> Int {
        guard let value = node.attributes[key], value != .null else {
            if let fallback { return fallback }
            throw fail(key, "is missing")
        }
        guard let number = value.intValue, abs(number) <= RuntimeLimits.maxAttribute else { throw fail(key, "must be an integer of moderate size") }
        return number
    }

    /// A pair such as stride or padding: one integer (used twice) or a list of two.
    func pair(_ key: String, default fallback: Int? = nil) throws -> [Int] {
        guard let value = node.attributes[key], value != .null else {
            if let fallback { return [fallback, fallback] }
            throw fail(key, "is missing")
        }
        let pair: [Int]
        if let number = value.intValue {
            pair = [number, number]
        } else if let array = value.arrayValue, array.count == 2, let a = array[0].intValue, let b = array[1].intValue {
            pair = [a, b]
        } else {
            throw fail(key, "must be an integer or a list of two integers")
        }
        guard pair.allSatisfy({ abs($0) <= RuntimeLimits.maxAttribute }) else { throw fail(key, "is out of range") }
        return pair
    }

    /// A list of integers.
    func ints(_ key: String) throws -> [Int] {
        guard let array = node.attributes[key]?.arrayValue else { throw fail(key, "must be a list of integers") }
        return try array.map {
            guard let number = $0.intValue, abs(number) <= RuntimeLimits.maxAttribute else { throw fail(key, "must be a list of integers of moderate size") }
            return number
        }
    }

    /// A floating-point attribute.
    func float(_ key: String, default fallback: Float? = nil) throws -> Float {
        guard let value = node.attributes[key], value != .null else {
            if let fallback { return fallback }
            throw fail(key, "is missing")
        }
        guard let number = value.doubleValue, Float(number).isFinite else { throw fail(key, "must be a finite number within float range") }
        return Float(number)
    }

    /// A boolean attribute.
    func bool(_ key: String, default fallback: Bool) throws -> Bool {
        guard let value = node.attributes[key], value != .null else { return fallback }
        guard let flag = value.boolValue else { throw fail(key, "must be true or false") }
        return flag
    }

    /// A string attribute.
    func string(_ key: String, default fallback: String) throws -> String {
        guard let value = node.attributes[key], value != .null else { return fallback }
        guard let text = value.stringValue else { throw fail(key, "must be a string") }
        return text
    }

    /// A floating-point attribute that may be absent or null (an open clamp bound).
    func optionalFloat(_ key: String) throws -> Float? {
        guard let value = node.attributes[key], value != .null else { return nil }
        return try float(key)
    }

    /// Checks that a present, non-null attribute has the declared kind.
    func check(_ key: String, is kind: AttributeKind) throws {
        guard let value = node.attributes[key], value != .null else { return }
        switch kind {
        case .int: _ = try int(key)
        case .float: _ = try float(key)
        case .bool: _ = try bool(key, default: false)
        case .string: _ = try string(key, default: "")
        case .pair: _ = try pair(key)
        case .ints: _ = try ints(key)
        }
    }
}
