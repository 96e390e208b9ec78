import DMLNpy
import Foundation
import Testing

/// Fixtures written by NumPy itself (Tests/Fixtures/npy/make_fixtures.py).
private func fixture(_ name: String) -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/npy/\(name)")
}

private let expected: [Float] = (0..<6).map { Float($0) / 4 - 0.5 }

@Suite struct NpyReadingNumPyFiles {
    @Test(arguments: ["f4_2x3.npy", "f8_2x3.npy", "v2_f4_2x3.npy"])
    func readsFloatMatricesWrittenByNumPy(name: String) throws {
        let matrix = try Npy.readMatrix(contentsOf: fixture(name))
        #expect(matrix.rows == 2 && matrix.columns == 3)
        #expect(matrix.values == expected)
    }

    @Test func readsInt64AndInt32Vectors() throws {
        #expect(try Npy.readInt64Vector(contentsOf: fixture("i8_4.npy")) == [7, -1, 1 << 40, 0])
        #expect(try Npy.readInt64Vector(contentsOf: fixture("i4_3.npy")) == [3, -2, 9])
    }

    @Test func readsUInt8ImagesWithThreeDimensions() throws {
        let array = try Npy.read(contentsOf: fixture("u1_2x2x3.npy"))
        #expect(array.shape == [2, 2, 3])
        #expect(try array.uint8s() == Array(0..<12))
    }

    @Test func readsAnEmptyMatrix() throws {
        let matrix = try Npy.readMatrix(contentsOf: fixture("empty_0x4.npy"))
        #expect(matrix.rows == 0 && matrix.columns == 4 && matrix.values.isEmpty)
    }
}

@Suite struct NpyRejectingBadFiles {
    @Test func fortranOrderIsRefused() {
        #expect(throws: NpyError.fortranOrder) { try Npy.readMatrix(contentsOf: fixture("fortran_2x3.npy")) }
    }

    @Test func bigEndianAndComplexAreUnsupportedDTypes() {
        #expect(throws: NpyError.unsupportedDType(">f4")) { try Npy.read(contentsOf: fixture("bigendian_2x3.npy")) }
        #expect(throws: NpyError.unsupportedDType("<c8")) { try Npy.read(contentsOf: fixture("c8_2.npy")) }
    }

    @Test func truncatedDataIsReportedWithSizes() {
        #expect(throws: NpyError.truncated(expectedBytes: 24, actualBytes: 19)) {
            try Npy.read(contentsOf: fixture("truncated_f4_2x3.npy"))
        }
    }

    @Test func randomBytesAreNotNpy() {
        var generator = SystemRandomNumberGenerator()
        let junk = Data((0..<200).map { _ in UInt8.random(in: 0...255, using: &generator) })
        #expect(throws: NpyError.self) { try Npy.read(data: junk) }
    }

    @Test func headerLengthBeyondTheFileIsReported() {
        var bytes = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, 0xFF, 0x7F])
        bytes.append(Data("{'descr': '<f4'".utf8))
        #expect(throws: NpyError.self) { try Npy.read(data: bytes) }
    }

    @Test func wrongRankAndWrongTypeAreReported() {
        #expect(throws: NpyError.wrongRank(expected: 2, actual: [4])) { try Npy.readMatrix(contentsOf: fixture("i8_4.npy")) }
        #expect(throws: NpyError.self) { try Npy.readMatrix(contentsOf: fixture("u1_2x2x3.npy")) }
        #expect(throws: NpyError.self) { try Npy.readInt64Vector(contentsOf: fixture("f4_2x3.npy")) }
    }

    @Test func missingFileIsAnIOError() {
        #expect(throws: NpyError.io("cannot read /nonexistent/x.npy: no such file")) {
            try Npy.read(contentsOf: URL(fileURLWithPath: "/nonexistent/x.npy"))
        }
    }

    @Test func aDirectoryIsNamedAsADirectory() {
        let dir = FileManager.default.temporaryDirectory
        #expect(throws: NpyError.io("cannot read \(dir.path): it is a directory, not a .npy file")) { try Npy.read(contentsOf: dir) }
    }

    @Test func versionTwoHeadersAreBoundedBeforeTheyAreRead() {
        // A v2 header may declare up to 4 GiB; anything over 64 KiB is refused from the preamble alone,
        // here with only the first bytes of the header present.
        for (length, refused) in [(Npy.maxHeaderLength + 1, true), (200_000_000, true), (Npy.maxHeaderLength, false)] {
            var bytes = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 2, 0])
            withUnsafeBytes(of: UInt32(length).littleEndian) { bytes.append(contentsOf: $0) }
            bytes.append(Data("{'descr': '<f4'".utf8))
            let expected = refused
                ? NpyError.badHeader("header length \(length) bytes is over the limit of 65536 bytes")
                : NpyError.badHeader("header length \(length) runs past the end of the file (\(bytes.count) bytes)")
            #expect(throws: expected) { try Npy.read(data: bytes) }
        }
    }
}

@Suite struct NpyWriting {
    private func temporaryURL(_ name: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("dmlnpy-\(UUID().uuidString)-\(name)")
    }

    @Test func floatRoundTripKeepsShapeAndValues() throws {
        let url = temporaryURL("f.npy")
        defer { try? FileManager.default.removeItem(at: url) }
        let values: [Float] = [1.5, -2, .pi, 0, 1e-30, 7]
        try Npy.write(values, shape: [3, 2], to: url)
        let read = try Npy.readMatrix(contentsOf: url)
        #expect(read == FloatMatrix(rows: 3, columns: 2, values: values))
        // NumPy requires the data to start on a 64-byte boundary for version 1.0 files written by it; we match.
        let bytes = try Data(contentsOf: url)
        #expect((bytes.count - values.count * 4) % 64 == 0)
    }

    @Test func int64AndUInt8RoundTrip() throws {
        let ids = temporaryURL("i.npy"), pixels = temporaryURL("u.npy")
        defer { try? FileManager.default.removeItem(at: ids); try? FileManager.default.removeItem(at: pixels) }
        try Npy.write([Int64.min, -1, 0, Int64.max], shape: [4], to: ids)
        #expect(try Npy.readInt64Vector(contentsOf: ids) == [Int64.min, -1, 0, Int64.max])
        try Npy.write([UInt8](0..<24), shape: [2, 3, 4], to: pixels)
        let array = try Npy.read(contentsOf: pixels)
        #expect(array.shape == [2, 3, 4])
        #expect(try array.uint8s() == [UInt8](0..<24))
    }

    @Test func shapeThatDoesNotMatchTheValuesIsRefusedAndWritesNothing() {
        let url = temporaryURL("bad.npy")
        #expect(throws: NpyError.self) { try Npy.write([1, 2, 3] as [Float], shape: [2, 2], to: url) }
        #expect(!FileManager.default.fileExists(atPath: url.path))
    }

    @Test func writingIntoAMissingDirectoryFailsCleanly() {
        let url = URL(fileURLWithPath: "/nonexistent-dir-\(UUID().uuidString)/x.npy")
        #expect(throws: NpyError.self) { try Npy.write([1] as [Float], shape: [1, 1], to: url) }
    }
}
