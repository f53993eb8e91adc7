import ArgumentParser

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "evaluate", abstract: "Evaluate a model on structures or a dataset.")
    func run() throws { throw NotImplemented(what: "evaluate") }
}
