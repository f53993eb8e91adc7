import ArgumentParser

struct Minimize: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "minimize", abstract: "Minimise the energy of the structure in an input deck (FIRE).")
    func run() throws { throw NotImplemented(what: "minimize") }
}
