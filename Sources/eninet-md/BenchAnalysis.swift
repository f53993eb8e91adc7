import ArgumentParser

struct BenchAnalysis: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "analysis", abstract: "VDOS time against trajectory read time.")
    func run() throws { throw NotImplemented(what: "analysis") }
}
