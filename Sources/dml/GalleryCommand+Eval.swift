import ArgumentParser
import DMLKit
import Foundation

/// `dml gallery eval`: leave-one-out graded metrics of the image space, with the pose distance as the label distance.
struct GalleryEvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Graded metrics of the image space against pose distance (leave-one-out).")

    @Argument(help: "Gallery directory.") var directory: String
    @Option(help: "Query items, drawn at random without replacement.") var queries = 200
    @Option(help: "Random seed for the query draw.") var seed: UInt64 = 0
    @Option(help: "Embedding space to evaluate.") var space = "image"
    @Flag(help: "Print as JSON.") var json = false

    func run() throws {
        let report = try GalleryEvaluation(reader: try openReader(directory)).evaluate(space: space, queries: queries, seed: seed)
        if json { return try printJSON(report) }
        print(report.table(title: space))
        print(report.idealRow("ideal (ranked by pose distance)"))
    }
}

