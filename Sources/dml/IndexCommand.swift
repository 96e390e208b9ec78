import ArgumentParser

struct IndexCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "index", abstract: "Create, fill and search FAISS index files.")
}
