import ArgumentParser

/// `dml gallery`: build, search, inspect and evaluate a gallery directory (SQLite store + derived FAISS indexes).
struct GalleryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gallery", abstract: "Build, search, inspect and evaluate a gallery of people.",
        subcommands: [GalleryBuildCommand.self, GallerySearchCommand.self, GalleryInfoCommand.self, GalleryEvalCommand.self])
}
