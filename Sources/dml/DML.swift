import ArgumentParser

/// The `dml` command-line tool. Subcommands live in one file each.
@main
struct DML: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dml",
        abstract: "DMLKit: embeddings, FAISS indexes and galleries for deep-metric-learning retrieval.",
        subcommands: [IndexCommand.self, DemoCommand.self]
    )
}
