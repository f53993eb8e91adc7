import ArgumentParser

struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "analyze", abstract: "Analyse a trajectory: vdos, ir, rdf, msd.")
    func run() throws { throw NotImplemented(what: "analyze") }
}
