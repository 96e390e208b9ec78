import ArgumentParser

/// `dml gallery`: build, search, inspect and evaluate a gallery directory (SQLite store + derived FAISS indexes).
struct GalleryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gallery", abstract: "Build, change, search, inspect and evaluate a gallery of people.",
        subcommands: [GalleryBuildCommand.self, GalleryAddCommand.self, GalleryRemoveCommand.self, GallerySearchCommand.self, GalleryCalibrateCommand.self, GalleryInfoCommand.self, GalleryEvalCommand.self])
}
