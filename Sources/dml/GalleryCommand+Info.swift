import ArgumentParser
import DMLKit
import Foundation

/// `dml gallery info`: what a gallery holds, and whether its derived indexes are current.
struct GalleryInfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Show a gallery's items, spaces and index files.")

    @Argument(help: "Gallery directory.") var directory: String
    @Flag(help: "Print as JSON.") var json = false
    @Flag(help: "Check every page of the store (SQLite quick_check); a damaged store fails with its first problem.")
    var verify = false

    struct Space: Encodable {
        var name: String, dimension: Int, metric: String, factory: String, fingerprint: String
    }

    struct IndexFile: Encodable {
        var name: String, file: String, bytes: Int?, generation: Int64?, current: Bool
    }

    struct Info: Encodable {
        var directory: String, count: Int, generation: Int64, spaces: [Space], indexes: [IndexFile]
        var calibrations: [String: CalibrationSummary]
        /// "ok" after --verify (a failed check exits 1 instead).
        var integrity: String?
    }

    func run() throws {
        let reader = try openReader(directory)
        if verify { try reader.verify() }
        let generation = try reader.generation()
        let recorded = try reader.indexGenerations()
        let spaces = try reader.spaces()
        let indexes = try reader.indexNames().map { name throws -> IndexFile in
            let file = reader.directory.appendingPathComponent("\(name).faiss")
            let bytes = (try? FileManager.default.attributesOfItem(atPath: file.path))?[.size] as? Int
            return IndexFile(name: name, file: file.lastPathComponent, bytes: bytes, generation: recorded[name],
                             current: try reader.indexIsCurrent(name))
        }
        let info = Info(
            directory: directory, count: try reader.count(), generation: generation,
            spaces: spaces.map { Space(name: $0.name, dimension: $0.dimension, metric: $0.metric.rawValue, factory: $0.factory, fingerprint: $0.fingerprint) },
            indexes: indexes, calibrations: try reader.calibrations().mapValues { CalibrationSummary($0, current: generation) },
            integrity: verify ? "ok" : nil)
        if json { return try printJSON(info) }
        print("gallery     \(directory)")
        print("items       \(info.count)")
        print("generation  \(generation)")
        if verify { print("integrity   ok (every page read)") }
        for s in info.spaces {
            print("space       \(s.name): \(s.dimension)-d \(s.metric) \(s.factory), embedder \(s.fingerprint)")
        }
        for i in indexes {
            // Searches rebuild such an index in memory for themselves; the next add, remove or calibrate saves it.
            let later = "rebuilt by every search until the next add, remove or calibrate saves it"
            let state = i.bytes == nil ? "missing (\(later))" : (i.current ? "current" : "stale or damaged (\(later))")
            print("index       \(i.file): \(i.bytes.map { "\($0) bytes" } ?? "-"), \(state)")
        }
        for s in info.spaces {
            print("calibration \(s.name): " + (info.calibrations[s.name]?.line ?? "none (`dml gallery calibrate`; needs 20 items with poses)"))
        }
    }
}
