import ArgumentParser
import Foundation

/// The `eninet-md` command: molecular dynamics with ENINet and classic potentials.
@main
struct EninetMD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eninet-md",
        abstract: "Molecular dynamics with the ENINet learned force field and classic potentials.",
        version: "0.1.0",
        subcommands: [Run.self, Minimize.self, Convert.self, Evaluate.self, IPIClient.self, Train.self, Dipoles.self, Analyze.self, Bench.self])

    static func main() {
        MemoryTuning.keepLargeBuffersInTheHeap()
        var command: ParsableCommand
        do { command = try parseAsRoot() } catch { exit(withError: error) }
        do {
            try command.run()
        } catch let error as ValidationError {
            // An option found wrong by the command's own work (against the data it read): the
            // message alone. The usage line printed here would be the top-level one
            // ("Usage: eninet-md <subcommand>"), not the subcommand's.
            fputs("Error: \(message(for: error))\n", stderr)
            Foundation.exit(exitCode(for: error).rawValue)
        } catch {
            exit(withError: error)
        }
    }
}

/// Thrown by commands whose implementation has not landed yet.
struct NotImplemented: Error, CustomStringConvertible {
    let what: String
    var description: String { "\(what) is not implemented yet" }
}
