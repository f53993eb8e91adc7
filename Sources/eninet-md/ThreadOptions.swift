import ArgumentParser
import Tensors

/// `--threads N`: the threads of the network's matrix products and element loops.
///
/// The default is 1, as for LAMMPS without `OMP_NUM_THREADS`: molecules and small cells give
/// graphs of a few hundred edges, where splitting a loop costs more than it saves (on this
/// project's 2-core test machine ENINet on aspirin is faster on 1 thread than on 2).
struct ThreadOptions: ParsableArguments {
    @Option(help: "Threads for ENINet's matrix products and element loops.")
    var threads: Int = 1

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    func apply() { TensorThreads.set(threads) }
}
