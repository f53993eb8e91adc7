import Foundation
import XCTest
import Geometry
import ENINet
import Potentials
import Dynamics

/// Energy conservation with ENINet where neighbours come and go all the time (issue 5,
/// point 4): 64 atoms of a hot fluid in a periodic box, a seeded random smooth-variant
/// network plus a purely repulsive Lennard-Jones wall (WCA) that keeps atoms apart, NVE.
/// The smooth variant conserves energy; the reference options, whose energy jumps when a
/// bond crosses the cutoff, do not.
final class ENINetConservationTests: XCTestCase {
    static let atoms = 64

    /// A small network with random weights; `scaleStd` sets its per-atom energy scale (eV),
    /// so its forces are comparable to the wall's. In Float, the precision MD runs in by
    /// default and the one the fused triplet kernel serves, so its forces are checked here
    /// as minus the gradient of its energy.
    static func network(reference: Bool) throws -> ENINetModel {
        var configuration = ENINetConfiguration(featureCount: 16, tripletFeatureCount: 4, radialBasisCount: 8,
                                                cutoff: 4.0, interactionCount: 2, scaleStd: 0.05, averageNeighborCount: 7)
        if reference { configuration = configuration.withReferenceOptions }
        var random = RandomStream(seed: 2024)
        let model = try ENINetDifferentiableModel<Double>(configuration: configuration, using: &random)
        return try ENINetModel(file: try model.modelFile(dtype: .float64), precision: .float)
    }

    /// 4×4×4 simple-cubic argon at 3.4 Å (box 13.6 Å, over three times the network's
    /// cutoff), each atom displaced by up to 0.3 Å, velocities at 600 K: the lattice melts
    /// within the first picosecond. The displacements matter: on the perfect lattice every
    /// vector feature vanishes by symmetry, where the RMS vector norm v/√(⟨v²⟩ + ε) has its
    /// steepest point (slope 1/√ε), and the random network's forces there reach hundreds of eV/Å.
    static func fluid() throws -> MDState {
        var random = RandomStream(seed: 7)
        var positions: [Vec3] = []
        for x in 0..<4 { for y in 0..<4 { for z in 0..<4 {
            let jitter = Vec3(Double.random(in: -0.3...0.3, using: &random), Double.random(in: -0.3...0.3, using: &random),
                              Double.random(in: -0.3...0.3, using: &random))
            positions.append(Vec3(Double(x), Double(y), Double(z)) * 3.4 + Vec3(0.2, 0.1, 0.3) + jitter)
        } } }
        let masses = Array(repeating: 39.948, count: positions.count)
        let v = InitialVelocities.maxwellBoltzmann(masses: masses, temperature: 600, random: &random)
        return try MDState(positions: positions, velocities: v, masses: masses,
                           cell: try Cell.orthorhombic(Vec3(repeating: 13.6)), atomicNumbers: Array(repeating: 18, count: positions.count))
    }

    struct Run {
        /// eV/atom/ps: least-squares slope of the total energy.
        var drift: Double
        /// eV: largest |E(n+1) − E(n)| of the total energy.
        var largestStepChange: Double
        /// eV: largest |ΔU + ½ Σ (F(n) + F(n+1))·Δr| over a step of the network's own energy
        /// and forces, the change of its energy that the work of its forces does not account
        /// for. The trapezoid rule makes it O(Δt³) for a smooth potential; a jump in U shows up
        /// in it at full size. (The stiff wall is left out: its O(Δt³) term would hide small jumps.)
        var largestUnaccountedChange: Double
        /// Pair crossings of the network's cutoff seen over the run (sampled every 10 steps).
        var neighbourChanges: Int
    }

    static func run(reference: Bool, timestep: Double, picoseconds: Double) throws -> Run {
        let network = try network(reference: reference)
        let wall = try LennardJones(sigma: 3.0, epsilon: 0.0104, cutoff: 3.0 * pow(2, 1.0 / 6), scheme: .shifted, skin: 1.0)
        let eninet = ENINetPotential(model: network, skin: 1.0)
        let potential = PotentialSum([eninet, wall])
        let simulation = try Simulation(state: try fluid(), integrator: try VelocityVerlet(timestep: timestep), potential: potential)
        let steps = Int((picoseconds * 1000 / timestep).rounded())
        var energies = [simulation.thermo.totalEnergy]
        var pairs = bondedPairs(simulation.state, cutoff: network.configuration.cutoff)
        var crossings = 0
        var unaccounted = 0.0
        for step in 1...steps {
            let before = simulation.state.positions
            let networkBefore = try XCTUnwrap(eninet.lastOutput)
            try simulation.run(steps: 1)
            energies.append(simulation.thermo.totalEnergy)
            let networkAfter = try XCTUnwrap(eninet.lastOutput)
            var work = 0.0
            for i in before.indices {
                work += 0.5 * dot(networkBefore.forces[i] + networkAfter.forces[i], simulation.state.positions[i] - before[i])
            }
            unaccounted = max(unaccounted, abs(networkAfter.energy - networkBefore.energy + work))
            if step % 10 == 0 {
                let now = bondedPairs(simulation.state, cutoff: network.configuration.cutoff)
                crossings += now.symmetricDifference(pairs).count
                pairs = now
            }
        }
        let times = energies.indices.map { Double($0) * timestep / 1000 }
        let slope = leastSquaresSlope(x: times, y: energies) / Double(atoms)
        let largest = zip(energies.dropFirst(), energies).map { abs($0 - $1) }.max() ?? 0
        return Run(drift: slope, largestStepChange: largest, largestUnaccountedChange: unaccounted, neighbourChanges: crossings)
    }

    /// Minimum-image pairs closer than `cutoff` (the cubic box is wider than twice the cutoff).
    static func bondedPairs(_ state: MDState, cutoff: Double) -> Set<Int> {
        var out = Set<Int>()
        let box = state.cell?.matrix.rows.0.x ?? .infinity
        for i in 0..<state.count { for j in (i + 1)..<state.count {
            var d = state.positions[j] - state.positions[i]
            d = Vec3(d.x - box * (d.x / box).rounded(), d.y - box * (d.y / box).rounded(), d.z - box * (d.z / box).rounded())
            if norm(d) < cutoff { out.insert(i * state.count + j) }
        } }
        return out
    }

    static func leastSquaresSlope(x: [Double], y: [Double]) -> Double {
        let mx = x.reduce(0, +) / Double(x.count), my = y.reduce(0, +) / Double(y.count)
        var sxy = 0.0, sxx = 0.0
        for (a, b) in zip(x, y) { sxy += (a - mx) * (b - my); sxx += (a - mx) * (a - mx) }
        return sxy / sxx
    }

    /// `body` of each of `items`, all at once: the runs of a test are independent and each
    /// keeps one core busy, and run one after another they were the suite's longest test.
    static func concurrently<Item, Value>(_ items: [Item], _ body: (Item) throws -> Value) throws -> [Value] {
        var results = [Result<Value, Error>](repeating: .failure(CancellationError()), count: items.count)
        results.withUnsafeMutableBufferPointer { results in
            DispatchQueue.concurrentPerform(iterations: items.count) { k in results[k] = Result { try body(items[k]) } }
        }
        return try results.map { try $0.get() }
    }

    func testSmoothVariantConservesEnergyAtThreeTimesteps() throws {
        var largest: [Double] = []
        let timesteps = [4.0, 2.0, 1.0]
        let runs = try Self.concurrently(timesteps) { try Self.run(reference: false, timestep: $0, picoseconds: 10) }
        for (dt, r) in zip(timesteps, runs) {
            print(String(format: "ENINet smooth + WCA, 64 atoms, NVE %.1f fs, 10 ps: drift %.3e eV/atom/ps, largest step change %.3e eV, %d cutoff crossings",
                         dt, r.drift, r.largestStepChange, r.neighbourChanges))
            XCTAssertLessThan(abs(r.drift), 1e-4, "drift at \(dt) fs")
            XCTAssertGreaterThan(r.neighbourChanges, 1000, "neighbours must come and go")
            largest.append(r.largestStepChange)
        }
        // Verlet's step-to-step error falls with the timestep: no hidden jump sets a floor.
        XCTAssertLessThan(largest[2], largest[0] / 4)
    }

    /// A smooth potential's unaccounted energy change falls as Δt³ (8× from 1 fs to 0.5 fs); a
    /// jump does not shrink with the timestep.
    func testReferenceOptionsJumpWhereTheSmoothVariantDoesNot() throws {
        var ratios: [Bool: Double] = [:]
        let cases = [(false, 1.0), (false, 0.5), (true, 1.0), (true, 0.5)]
        let runs = try Self.concurrently(cases) { try Self.run(reference: $0.0, timestep: $0.1, picoseconds: 0.5) }
        for (k, reference) in [false, true].enumerated() {
            let coarse = runs[2 * k], fine = runs[2 * k + 1]
            ratios[reference] = fine.largestUnaccountedChange / coarse.largestUnaccountedChange
            print(String(format: "%@, NVE 0.5 ps: largest unaccounted ΔU of the network %.3e eV at 1 fs, %.3e eV at 0.5 fs (ratio %.3f); drift %.3e and %.3e eV/atom/ps",
                         reference ? "reference options" : "smooth variant", coarse.largestUnaccountedChange, fine.largestUnaccountedChange,
                         fine.largestUnaccountedChange / coarse.largestUnaccountedChange, coarse.drift, fine.drift))
        }
        XCTAssertLessThan(ratios[false] ?? 1, 0.4, "smooth: the residual falls with the timestep (as Δt³ once the step resolves every feature)")
        XCTAssertGreaterThan(ratios[true] ?? 0, 0.7, "reference: jumps independent of the timestep")
    }
}
