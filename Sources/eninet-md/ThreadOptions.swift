import ArgumentParser
import Tensors

/// `--threads N`: the threads of the network's matrix products and element loops.
///
/// The default is 1, as for LAMMPS without `OMP_NUM_THREADS`, so that a run takes no more of a
/// shared machine than asked. More threads pay even for one molecule, since the workers stay
/// awake between loops (`Tensors`' thread team): on this project's 2-core test machine (Zen 4,
/// 2026-12-06, a quiet host), `small` takes 0.96–1.00 ms for aspirin on 2 threads against
/// 1.23–1.29 on 1, and 8.5–9.4 against 13.6–14.5 ms for ten aspirins; a `small` training step
/// at batch 8, 35–44 against about 56 ms.
struct ThreadOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Threads for ENINet's matrix products and element loops.")
    var threads: Int = 1

    func validate() throws { try Self.check(threads) }

    /// More threads than any machine runs only cost memory and start-up: 300,000 took 8.7 s and
    /// 2.3 GB before the first loop. 1,024 is past the cores of common compute nodes.
    static let maximum = 1024

    static func check(_ count: Int, option: String = "--threads") throws {
        guard (1...maximum).contains(count) else { throw ValidationError("\(option) \(count) must be from 1 to \(maximum)") }
    }

    func apply() { TensorThreads.set(threads) }
}
