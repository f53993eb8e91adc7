import ArgumentParser

struct BenchEninet: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "eninet", abstract: "ENINet energy+forces timing.")
    func run() throws { throw NotImplemented(what: "eninet") }
}
