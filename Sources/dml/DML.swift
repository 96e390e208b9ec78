import ArgumentParser
import Foundation

/// The `dml` command-line tool. Subcommands live in one file each.
@main
struct DML: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dml",
        abstract: "DMLKit: embeddings, FAISS indexes and galleries for deep-metric-learning retrieval.",
        subcommands: [IndexCommand.self, EmbedCommand.self, EmbedTextCommand.self, ModelCommand.self, EvalCommand.self, GalleryCommand.self, DemoCommand.self]
    )

    /// Every failure, usage errors included, exits 1 with one line on stderr (help still prints in full).
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if exitCode(for: error) == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            let message = DML.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            FileHandle.standardError.write(Data("dml: \(message.replacingOccurrences(of: "Error: ", with: ""))\n".utf8))
            Foundation.exit(1)
        }
    }
}
