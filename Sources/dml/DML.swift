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
            var command = try parseAsRoot(attachingNegativeNumbers(Array(CommandLine.arguments.dropFirst())))
            try command.run()
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)  // the command already said why
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

/// `--batch -1` reaches the parser as `--batch=-1`: ArgumentParser reads a value that starts with `-` as the next
/// option and would report "Missing value for '--batch'"; attached, the command's own range check explains
/// what is wrong ("--batch must be at least 1"). Arguments after `--` are left alone.
func attachingNegativeNumbers(_ arguments: [String]) -> [String] {
    var out: [String] = []
    var index = 0
    while index < arguments.count {
        let argument = arguments[index]
        if argument == "--" {
            out.append(contentsOf: arguments[index...])
            break
        }
        let isOption = argument.hasPrefix("-") && !argument.contains("=") && !isNegativeNumber(argument)
        if isOption, index + 1 < arguments.count, isNegativeNumber(arguments[index + 1]) {
            out.append(argument + "=" + arguments[index + 1])
            index += 2
        } else {
            out.append(argument)
            index += 1
        }
    }
    return out
}

/// "-1", "-0.5", "-1e3": a number, not an option name.
func isNegativeNumber(_ text: String) -> Bool {
    text.count > 1 && text.hasPrefix("-") && Double(text) != nil
}
