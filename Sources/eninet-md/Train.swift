import ArgumentParser

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Train an ENINet model from a TOML config.")
    func run() throws { throw NotImplemented(what: "train") }
}
