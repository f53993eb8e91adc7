import ArgumentParser

struct BenchLJ: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "lj", abstract: "Lennard-Jones melt benchmark (32,000 atoms).")
    func run() throws { throw NotImplemented(what: "lj") }
}
