import ArgumentParser

/// The `eninet-md` command: molecular dynamics with ENINet and classic potentials.
@main
struct EninetMD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eninet-md",
        abstract: "Molecular dynamics with the ENINet learned force field and classic potentials.",
        version: "0.1.0",
        subcommands: [Run.self, Minimize.self, Convert.self, Evaluate.self, Train.self, Dipoles.self, Analyze.self, Bench.self])

    static func main() {
        MemoryTuning.keepLargeBuffersInTheHeap()
        do {
            var command = try parseAsRoot()
            try command.run()
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
