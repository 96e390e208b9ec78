import Foundation
import Testing

/// `docs/FORMATS.md` documents exactly the op set of `ops.json` (which the runtime's op table matches).
@Suite("docs/FORMATS.md against ops.json")
struct FormatsDocTests {
    /// Op names in the first column of the ops table (rows such as "| `conv2d` | 1 | ...").
    static func documentedOps() throws -> Set<String> {
        let text = try String(contentsOf: OpTableTests.repository.appendingPathComponent("docs/FORMATS.md"), encoding: .utf8)
        guard let start = text.range(of: "### Ops") else { return [] }
        let section = text[start.upperBound...]
        let end = section.range(of: "\n### ")?.lowerBound ?? section.endIndex
        var names = Set<String>()
        for line in section[..<end].split(separator: "\n") where line.hasPrefix("| `") {
            let cell = line.dropFirst(3).prefix { $0 != "`" }
            names.insert(String(cell))
        }
        return names
    }

    @Test("every op of ops.json has a row in the ops table, and no row names another op")
    func opTableMatches() throws {
        let documented = try Self.documentedOps()
        let declared = Set(try OpTableTests.declared().keys)
        #expect(!declared.isEmpty)
        #expect(declared.subtracting(documented).isEmpty, "missing from FORMATS.md: \(declared.subtracting(documented).sorted())")
        #expect(documented.subtracting(declared).isEmpty, "not in ops.json: \(documented.subtracting(declared).sorted())")
    }

    @Test("the placeholder for the gallery section is there")
    func gallerySection() throws {
        let text = try String(contentsOf: OpTableTests.repository.appendingPathComponent("docs/FORMATS.md"), encoding: .utf8)
        #expect(text.contains("\n## Gallery directory\n"))
    }
}
