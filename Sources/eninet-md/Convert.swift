import ArgumentParser

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "convert", abstract: "Convert between NetCDF trajectories, restarts and extended XYZ.")
    func run() throws { throw NotImplemented(what: "convert") }
}
