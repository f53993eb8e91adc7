import ArgumentParser
import Foundation
import Geometry
import Potentials
import Dynamics
import Trajectory

/// `eninet-md bench lj`: the Lennard-Jones melt of LAMMPS' bench/in.lj on one thread.
///
/// 32,000 atoms on an fcc lattice at reduced density 0.8442, T* = 1.44, r_c = 2.5σ (plain
/// truncation, LAMMPS `pair_style lj/cut` without shift), skin 0.3σ, NVE with Δt = 0.005τ.
/// Argon units: σ = 3.405 Å, ε = 0.0103 eV, m = 39.948 amu, so τ = σ√(m/ε) ≈ 2159 fs.
/// Timing covers the steps only (as LAMMPS' "Loop time"), not the setup. Our list is rebuilt
/// when an atom moved more than half the skin; LAMMPS' input rebuilds every 20 steps unchecked.
struct BenchLJ: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "lj", abstract: "Lennard-Jones melt benchmark (32,000 atoms).")

    @Option(help: "Lattice cells per side (20 gives 32,000 atoms).")
    var cells = 20

    @Option(parsing: .upToNextOption, help: "Run lengths to time, in steps.")
    var steps: [Int] = [100, 1000]

    @Option(help: "Velocity seed.")
    var seed: UInt64 = 87287

    @Option(help: "Also time each run writing an AMBER NetCDF frame every N steps (0: off).")
    var trajectoryEvery = 0

    @Option(help: "Move every atom by a random whole number of box lengths, up to N along each axis, as a long run's unwrapped coordinates leave a diffusing system (0: off). The physics is unchanged.")
    var unwrappedBoxes = 0

    func run() throws {
        guard cells > 0, !steps.isEmpty, steps.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--cells and --steps must be positive")
        }
        // 4·cells³ atoms: 1000 aborted allocating, 10¹¹ overflowed.
        guard cells <= 200 else { throw ValidationError("--cells must be at most 200 (32 million atoms); got \(cells)") }
        guard (0...1_000_000).contains(unwrappedBoxes) else { throw ValidationError("--unwrapped-boxes must be from 0 to 1000000") }
        // A negative stride skipped the trajectory timing without a word.
        guard trajectoryEvery >= 0 else { throw ValidationError("--trajectory-every must be 0 (off) or a positive number of steps; got \(trajectoryEvery)") }
        let sigma = 3.405, epsilon = 0.0103, mass = 39.948
        let tau = sigma / (epsilon / mass * Units.accelerationPerForceOverMass).squareRoot()
        let timestep = 0.005 * tau
        let temperature = 1.44 * epsilon / Units.boltzmann
        let lattice = pow(4 / 0.8442, 1.0 / 3.0) * sigma

        print("Lennard-Jones melt (LAMMPS bench/in.lj): \(4 * cells * cells * cells) atoms, threads used: 1 (machine has \(ProcessInfo.processInfo.activeProcessorCount))")
        print(String(format: "σ = %.3f Å, ε = %.4f eV, m = %.3f amu, τ = %.2f fs, Δt = %.3f fs, T = %.2f K, a = %.4f Å",
                     sigma, epsilon, mass, tau, timestep, temperature, lattice))
        var lastRate = 0.0
        for n in steps {
            let state = try meltState(cells: cells, lattice: lattice, mass: mass, temperature: temperature)
            let lj = try LennardJones(sigma: sigma, epsilon: epsilon, cutoff: 2.5 * sigma, scheme: .truncated, skin: 0.3 * sigma)
            let simulation = try Simulation(state: state, integrator: try VelocityVerlet(timestep: timestep), potential: lj)
            let first = simulation.thermo
            let builds = lj.neighborList.buildCount
            let clock = ContinuousClock()
            let cpuBefore = Self.threadCPUSeconds()
            let elapsed = try clock.measure { try simulation.run(steps: n) }
            let cpu = Self.threadCPUSeconds() - cpuBefore
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            let last = simulation.thermo
            let atoms = Double(state.count)
            lastRate = atoms * Double(n) / seconds
            let perAtom = { (e: Double) in e / atoms / epsilon }
            print(String(format: "%5d steps: %.3f s wall, %.4g atom-steps/s (CPU time %.3f s: %.4g atom-steps/s), %d neighbour builds",
                         n, seconds, lastRate, cpu, atoms * Double(n) / cpu, lj.neighborList.buildCount - builds))
            print(String(format: "       T* %.4f -> %.4f, E_pair/Nε %.7f -> %.7f, E_tot/Nε %.7f -> %.7f",
                         first.temperature * Units.boltzmann / epsilon, last.temperature * Units.boltzmann / epsilon,
                         perAtom(first.potentialEnergy), perAtom(last.potentialEnergy),
                         perAtom(first.totalEnergy), perAtom(last.totalEnergy)))
        }
        print(String(format: "RESULT lj_atom_steps_per_s %.6g atom-steps/s", lastRate))
        if trajectoryEvery > 0 {
            try timeTrajectoryWriting(lattice: lattice, mass: mass, temperature: temperature, timestep: timestep,
                                      sigma: sigma, epsilon: epsilon)
        }
    }

    /// Issue 3's cost of output: the same run with and without a NetCDF frame (coordinates,
    /// velocities, cell, energies) every `trajectoryEvery` steps, and the time spent inside the
    /// writer itself, which other processes on the machine cannot inflate.
    private func timeTrajectoryWriting(lattice: Double, mass: Double, temperature: Double, timestep: Double,
                                       sigma: Double, epsilon: Double) throws {
        let n = steps.max() ?? 1000
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bench-lj-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var seconds: [Double] = []
        var writing = 0.0, frames = 0
        for withOutput in [false, true] {
            let state = try meltState(cells: cells, lattice: lattice, mass: mass, temperature: temperature)
            let lj = try LennardJones(sigma: sigma, epsilon: epsilon, cutoff: 2.5 * sigma, scheme: .truncated, skin: 0.3 * sigma)
            let simulation = try Simulation(state: state, integrator: try VelocityVerlet(timestep: timestep), potential: lj)
            var timed: TimedReporter? = nil
            if withOutput {
                let writer = try AmberTrajectoryWriter(path: directory.appendingPathComponent("melt.nc").path, atomCount: state.count,
                                                       velocities: true, periodic: true,
                                                       extras: [.potentialEnergy, .kineticEnergy, .temperature])
                let reporter = TimedReporter(TrajectoryReporter(writer: writer, stride: trajectoryEvery))
                timed = reporter
                simulation.addReporter(reporter)
            }
            let elapsed = try ContinuousClock().measure { try simulation.run(steps: n) }
            try timed?.close()
            seconds.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
            if let timed { writing = timed.seconds; frames = timed.frames }
        }
        print(String(format: "%d steps without output: %.3f s; with a NetCDF frame every %d steps: %.3f s (%d frames, %.3f s inside the writer, %.2f ms/frame)",
                     n, seconds[0], trajectoryEvery, seconds[1], frames, writing, 1000 * writing / Double(max(frames, 1))))
        print(String(format: "RESULT lj_run_seconds_no_output %.4f s", seconds[0]))
        print(String(format: "RESULT lj_run_seconds_with_trajectory %.4f s", seconds[1]))
        print(String(format: "RESULT trajectory_write_percent %.3f percent", 100 * writing / seconds[1]))
    }

    /// CPU time of this thread: shows how much of the wall time other processes took.
    static func threadCPUSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    private func meltState(cells: Int, lattice: Double, mass: Double, temperature: Double) throws -> MDState {
        let basis = [Vec3(0, 0, 0), Vec3(0.5, 0.5, 0), Vec3(0.5, 0, 0.5), Vec3(0, 0.5, 0.5)]
        var positions: [Vec3] = []
        positions.reserveCapacity(4 * cells * cells * cells)
        // z fastest, like LAMMPS' lattice loop, so neighbours in space are close in memory.
        for x in 0..<cells { for y in 0..<cells { for z in 0..<cells { for b in basis {
            positions.append((Vec3(Double(x), Double(y), Double(z)) + b) * lattice)
        }}}}
        let masses = [Double](repeating: mass, count: positions.count)
        var random = RandomStream(seed: seed)
        let velocities = InitialVelocities.maxwellBoltzmann(masses: masses, temperature: temperature, random: &random)
        let box = lattice * Double(cells)
        if unwrappedBoxes > 0 {
            // A generator of its own, so that the velocities are those of the wrapped run.
            var boxes = BenchRandom(state: seed &+ 1)
            let n = unwrappedBoxes
            for i in positions.indices {
                positions[i] += Vec3(Double(Int.random(in: -n...n, using: &boxes)), Double(Int.random(in: -n...n, using: &boxes)),
                                     Double(Int.random(in: -n...n, using: &boxes))) * box
            }
        }
        return try MDState(positions: positions, velocities: velocities, masses: masses,
                           cell: try Cell.orthorhombic(Vec3(repeating: box)),
                           atomicNumbers: [Int](repeating: 18, count: positions.count))
    }
}

/// Measures the wall time a trajectory reporter spends writing.
private final class TimedReporter: Reporter {
    let inner: TrajectoryReporter
    private(set) var seconds = 0.0
    private(set) var frames = 0
    var stride: Int { inner.stride }

    init(_ inner: TrajectoryReporter) { self.inner = inner }

    func report(_ simulation: Simulation) throws {
        let elapsed = try ContinuousClock().measure { try inner.report(simulation) }
        seconds += Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        frames += 1
    }

    func close() throws { try inner.close() }
}
