import ArgumentParser
import Foundation
import Geometry
import Potentials
import Dynamics

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

    func run() throws {
        guard cells > 0, !steps.isEmpty, steps.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--cells and --steps must be positive")
        }
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
        return try MDState(positions: positions, velocities: velocities, masses: masses,
                           cell: try Cell.orthorhombic(Vec3(repeating: lattice * Double(cells))),
                           atomicNumbers: [Int](repeating: 18, count: positions.count))
    }
}
