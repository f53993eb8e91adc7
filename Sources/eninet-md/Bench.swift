import ArgumentParser

/// `eninet-md bench ...`: performance benchmarks. Each prints its figures, the thread count,
/// and ends with `RESULT <name> <value> <unit>` lines.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a benchmark and print RESULT lines.",
        subcommands: [BenchLJ.self, BenchTensors.self, BenchEninet.self, BenchTrain.self, BenchAnalysis.self])
}

/// A comma-separated list of integers given to `option` (`--threads 1,2`), each within
/// `allowed`; otherwise an error naming the option and the entry.
func commaSeparatedIntegers(_ text: String, option: String, what: String, allowed: ClosedRange<Int>) throws -> [Int] {
    try text.split(separator: ",").map { entry in
        guard let n = Int(entry), allowed.contains(n) else { throw ValidationError("\(option): '\(entry)' is not \(what)") }
        return n
    }
}
