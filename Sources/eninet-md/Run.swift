import ArgumentParser

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run molecular dynamics from an input deck.")
    func run() throws { throw NotImplemented(what: "run") }
}
