import ArgumentParser

/// `eninet-md bench ...`: performance benchmarks. Each prints its figures, the thread count,
/// and ends with `RESULT <name> <value> <unit>` lines.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a benchmark and print RESULT lines.",
        subcommands: [BenchLJ.self, BenchTensors.self, BenchEninet.self, BenchTrain.self, BenchAnalysis.self])
}
