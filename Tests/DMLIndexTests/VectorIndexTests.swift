import Testing
import DMLIndex
@Test func placeholderIndex() { #expect(Bool(true)) }
