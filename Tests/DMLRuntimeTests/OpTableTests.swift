import Foundation
import Testing
@testable import DMLRuntime

/// The Swift op table and `training/dmlkit/export/ops.json` (what the exporter emits) declare the same op set.
@Suite("Op table against ops.json")
struct OpTableTests {
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func declared() throws -> [String: [String: Any]] {
        let data = try Data(contentsOf: repository.appendingPathComponent("training/dmlkit/export/ops.json"))
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return try #require(root["ops"] as? [String: [String: Any]])
    }

    @Test("same op names")
    func sameOps() throws {
        #expect(Set(try Self.declared().keys) == Set(OpTable.ops.keys))
    }

    @Test("same input counts, attributes (with kinds) and tensor roles for every op")
    func sameSignatures() throws {
        for (name, entry) in try Self.declared() {
            guard let op = OpTable.ops[name] else { continue }  // reported by sameOps
            let inputs: (Int, Int?)
            switch entry["inputs"] {
            case let count as Int: inputs = (count, count)
            case let text as String where text.hasSuffix("+"): inputs = (Int(text.dropLast()) ?? -1, nil)
            case let text as String:
                let parts = text.split(separator: "-").compactMap { Int($0) }
                inputs = (parts.first ?? -1, parts.count == 2 ? parts[1] : -1)
            default: inputs = (-1, -1)
            }
            #expect(op.inputs.min == inputs.0 && op.inputs.max == inputs.1, "\(name): inputs \(op.inputs) vs ops.json \(entry["inputs"] ?? "none")")
            let attributes = try #require(entry["attrs"] as? [String: String], "\(name): attrs")
            #expect(op.attributes.mapValues(\.rawValue) == attributes, "\(name): attributes")
            let tensors = try #require(entry["tensors"] as? [String: String], "\(name): tensors")
            #expect(op.tensors.mapValues(\.rawValue) == tensors, "\(name): tensor roles")
        }
    }

    @Test("every attribute kind in ops.json is one the runtime knows")
    func kindsAreKnown() throws {
        let kinds = Set(try Self.declared().values.flatMap { ($0["attrs"] as? [String: String] ?? [:]).values })
        #expect(kinds.isSubset(of: Set(AttributeKind.allCases.map(\.rawValue))))
    }
}
