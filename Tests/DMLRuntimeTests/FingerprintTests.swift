import Foundation
import Testing
@testable import DMLRuntime

/// `dml.fingerprint` recomputed in Swift equals what the Python exporter wrote, and changes with the weights.
@Suite("Model fingerprint")
struct FingerprintTests {
    @Test("SHA-256 matches the FIPS 180-4 test vectors")
    func sha256Vectors() {
        func digest(_ text: String) -> String {
            var hash = SHA256()
            hash.update(Array(text.utf8))
            return hash.hexDigest()
        }
        #expect(digest("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(digest("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(digest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // Fed in uneven pieces across block boundaries.
        var pieces = SHA256()
        let message = Array(String(repeating: "a", count: 1000).utf8)
        for chunk in stride(from: 0, to: message.count, by: 37) { pieces.update(Array(message[chunk..<min(chunk + 37, message.count)])) }
        #expect(pieces.hexDigest() == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
        // FIPS 180-4's million "a", in 1000-byte pieces: runs of whole blocks go to the C block function at once.
        var million = SHA256()
        let thousand = [UInt8](repeating: UInt8(ascii: "a"), count: 1000)
        for _ in 0..<1000 { million.update(thousand) }
        #expect(million.hexDigest() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test("every committed model's fingerprint verifies",
          arguments: ["mlp", "cnn", "resnet", "multihead"].flatMap { m in ["f32", "f16", "int8"].map { "\(m)-\($0)" } } + ["ops-f32", "cnn-unfolded-f32"] + OpParityTests.cases.map { "op-\($0)" })
    func fixturesVerify(_ name: String) throws {
        let file = try SafetensorsFile(contentsOf: Fixtures.url("\(name).safetensors"))
        let stored = try #require(file.metadata["dml.fingerprint"])
        #expect(try file.computeFingerprint() == stored)
    }

    @Test("a changed weight no longer matches")
    func tamperedWeight() throws {
        let source = try SafetensorsFile(contentsOf: Fixtures.url("mlp-f32.safetensors"))
        let tensors = try source.tensors.keys.sorted().map { name -> (String, String, [Int], [UInt8]) in
            var bytes = Array(try source.rawBytes(name))
            if name == "fc2.bias" { bytes[0] ^= 1 }
            return (name, try source.info(name).dtype.rawValue, try source.info(name).shape, bytes)
        }
        let file = try SafetensorsFile(bytes: SafetensorsBytes(tensors: tensors, metadata: source.metadata).bytes())
        #expect(try file.computeFingerprint() != source.metadata["dml.fingerprint"])
    }
}
