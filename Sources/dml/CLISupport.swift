import ArgumentParser
import DMLIndex
import DMLNpy
import Foundation

/// A bad-input failure with a one-line message (exit code 1).
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Thread settings shared by commands that compute: FAISS (OpenMP) threads.
struct ThreadOptions: ParsableArguments {
    @Option(name: .long, help: "Threads for FAISS (OpenMP). Default: OMP_NUM_THREADS or all cores.")
    var threads: Int?

    func apply() throws {
        if let threads {
            guard threads >= 1 else { throw CLIError("--threads must be at least 1") }
            VectorIndex.setThreadCount(threads)
        }
    }
}

func fileURL(_ path: String) -> URL { URL(fileURLWithPath: path) }

/// Reads a 2-D float matrix, checking its width against the index.
func readVectors(_ path: String, dimension: Int?) throws -> FloatMatrix {
    let matrix = try Npy.readMatrix(contentsOf: fileURL(path))
    if let dimension, matrix.columns != dimension {
        throw CLIError("\(path): vectors have dimension \(matrix.columns) but the index has dimension \(dimension)")
    }
    return matrix
}

func loadIndex(_ path: String) throws -> VectorIndex {
    do {
        return try VectorIndex.load(contentsOf: fileURL(path))
    } catch let error as VectorIndexError {
        if case .invalidIndexFile = error { throw CLIError("\(path): \(error)") }
        throw error
    }
}

/// Writes JSON to stdout, keys sorted.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}
