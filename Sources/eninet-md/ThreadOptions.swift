import ArgumentParser
import Tensors

/// `--threads N`: the threads of the network's matrix products and element loops.
///
/// The default is 1, as for LAMMPS without `OMP_NUM_THREADS`: molecules and small cells give
/// graphs of a few hundred edges, where splitting a loop costs about what it saves (on this
/// project's 2-core test machine the `small` configuration takes the same time for aspirin on
/// 1 thread as on 2, and 18 % less on 2 for ten aspirins).
struct ThreadOptions: ParsableArguments {
    @Option(help: "Threads for ENINet's matrix products and element loops.")
    var threads: Int = 1

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    func apply() { TensorThreads.set(threads) }
}
