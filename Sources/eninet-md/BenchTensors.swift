import ArgumentParser

struct BenchTensors: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tensors", abstract: "GEMM throughput and autodiff overhead.")
    func run() throws { throw NotImplemented(what: "tensors") }
}
