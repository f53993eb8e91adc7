import ArgumentParser
import Dispatch

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
    let values = try text.split(separator: ",").map { entry in
        guard let n = Int(entry), allowed.contains(n) else { throw ValidationError("\(option): '\(entry)' is not \(what)") }
        return n
    }
    // An empty list timed nothing and printed no RESULT line, with exit 0.
    guard !values.isEmpty else { throw ValidationError("\(option) lists nothing; give \(what), or several comma-separated") }
    return values
}

/// Runs `body` once, then again until `seconds` have passed since it started: a case is timed
/// only after its warm-up. Besides first-touch pages and caches, this waits out OpenBLAS's
/// start: its pthread build starts a worker thread when the library loads, whatever thread
/// count is set later, and that worker calls `sched_yield` in a loop for 2²⁸ processor cycles
/// (about 0.1 s) before it sleeps. On two cores it takes time slices from the thread team's
/// worker, so the first case timed on two threads measured the spin (small/aspirin 1.7–2.1 ms
/// against 1.2–1.4 ms a moment later, Docs/model-files.md).
func warmUp(seconds: Double = 0.25, _ body: () throws -> Void) rethrows {
    let start = DispatchTime.now().uptimeNanoseconds
    repeat { try body() } while Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 < seconds
}
