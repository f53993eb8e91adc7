import ArgumentParser

struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "ENINet training-step timing.")
    func run() throws { throw NotImplemented(what: "train") }
}
