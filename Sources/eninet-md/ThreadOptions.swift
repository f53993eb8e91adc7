import ArgumentParser
import Tensors

/// `--threads N`: the threads of the network's matrix products and element loops.
///
/// The default is 1, as for LAMMPS without `OMP_NUM_THREADS`, so that a run takes no more of a
/// shared machine than asked. More threads pay even for one molecule, since the workers stay
/// awake between loops (`Tensors`' thread team): on this project's 2-core test machine, `small`
/// takes 1.4 ms for aspirin on 2 threads against 1.7 on 1 (when the host is quiet), and 12.5–13
/// against 17.8 ms for ten aspirins; a `small` training step at batch 8, 56 against 71 ms.
struct ThreadOptions: ParsableArguments {
    @Option(help: "Threads for ENINet's matrix products and element loops.")
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
