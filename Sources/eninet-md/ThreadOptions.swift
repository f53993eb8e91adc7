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

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    func apply() { TensorThreads.set(threads) }
}
