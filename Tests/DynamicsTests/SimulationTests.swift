import Foundation
import XCTest
import Geometry
import ENINet
import Potentials
import Dynamics

/// A potential that abandons its `call`-th evaluation as an external program stopped by a
/// signal does (``EvaluationStopped``), after its inner potential has computed, and so may have
/// rebuilt its list, as the first term of a sum would have.
private final class StopsAtCall: Potential {
    let inner: any Potential, call: Int
    var calls = 0
    init(_ inner: any Potential, call: Int) { self.inner = inner; self.call = call }
    var name: String { "stops at call \(call)" }
    func compute(_ c: Configuration) throws -> ForceResult {
        calls += 1
        let result = try inner.compute(c)
        if calls == call { throw EvaluationStopped("stopped on request") }
        return result
    }
    var listAnchorCount: Int { inner.listAnchorCount }
    var listAnchors: [[Vec3]] { inner.listAnchors }
    func restoreListAnchors(_ anchors: [[Vec3]], atomCount: Int, cell: Cell?) throws -> Bool {
        try inner.restoreListAnchors(anchors, atomCount: atomCount, cell: cell)
    }
    func invalidateCaches() { inner.invalidateCaches() }
}

final class SimulationTests: XCTestCase {
    private func lj() throws -> LennardJones {
        try LennardJones(sigma: 3.4, epsilon: 0.0104, cutoff: 8.5, scheme: .switched(onset: 7.0), skin: 1.0)
    }

    /// A run restored from a checkpoint (through JSON, as a restart file would hold it)
    /// continues with exactly the same bits as the uninterrupted run, for each integrator.
    func testRestartIsBitwiseIdentical() throws {
        let makers: [() throws -> any Integrator] = [
            { try VelocityVerlet(timestep: 2) },
            { try LangevinBAOAB(timestep: 2, temperature: 200, friction: 5, seed: 99) },
            { try BussiThermostat(timestep: 2, temperature: 200, relaxationTime: 50, seed: 98) },
            { try MonteCarloBarostat(thermostat: try LangevinBAOAB(timestep: 2, temperature: 200, friction: 5, seed: 97),
                                     pressure: 500, temperature: 200, interval: 3, seed: 96) },
            { try MonteCarloBarostat(thermostat: try BussiThermostat(timestep: 2, temperature: 200, relaxationTime: 50, seed: 95),
                                     pressure: 500, temperature: 200, interval: 2, seed: 94, coupling: .anisotropic) },
        ]
        for make in makers {
            let start = try argonCrystal(cells: 2, temperature: 150, seed: 7)
            let whole = try Simulation(state: start, integrator: try make(), potential: try lj())
            try whole.run(steps: 150)
            let saved = whole.checkpoint()
            try whole.run(steps: 250)

            let json = try JSONEncoder().encode(saved)
            let decoded = try JSONDecoder().decode(Checkpoint.self, from: json)
            XCTAssertEqual(decoded, saved)
            // Restart files take keys of letters, digits and '_' only.
            for key in saved.integrator.keys {
                XCTAssertTrue(key.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }, key)
            }
            let resumed = try Simulation(restoring: decoded, integrator: try make(), potential: try lj())
            try resumed.run(steps: 250)
            let name = whole.integrator.name
            XCTAssertEqual(resumed.state, whole.state, name)
            XCTAssertEqual(resumed.forces.forces, whole.forces.forces, name)
            XCTAssertEqual(resumed.integrator.exportState(), whole.integrator.exportState(), name)
            XCTAssertEqual(resumed.thermo.conservedEnergy.bitPattern, whole.thermo.conservedEnergy.bitPattern, name)
            XCTAssertEqual(resumed.state.step, 400)
            if let barostat = whole.integrator as? MonteCarloBarostat {
                // The volume moved, so the continuation had a changed cell to carry.
                XCTAssertGreaterThan(barostat.acceptances, 10)
                XCTAssertNotEqual(whole.state.cell, start.cell)
            }
        }
    }

    /// A checkpoint taken while the neighbour lists are mid-life (built at earlier steps, two
    /// lists of a sum built at different steps) continues bitwise when restored, and only
    /// because it carries the lists' build positions: restored without them, the lists are
    /// built from the checkpoint's positions, the pair sums add in another order, and the run
    /// parts from the uninterrupted one.
    func testACheckpointBetweenListBuildsContinuesBitwiseThroughItsListAnchors() throws {
        func potential() throws -> PotentialSum {
            PotentialSum([try lj(), try LennardJones(sigma: 3.0, epsilon: 0.002, cutoff: 6.0, skin: 0.6)])
        }
        func lists(_ sum: PotentialSum) -> [NeighborList] { sum.terms.compactMap { ($0 as? LennardJones)?.neighborList } }
        func integrator() throws -> LangevinBAOAB { try LangevinBAOAB(timestep: 2, temperature: 200, friction: 5, seed: 7) }

        let wholePotential = try potential()
        let whole = try Simulation(state: try argonCrystal(cells: 2, temperature: 200, seed: 3), integrator: try integrator(),
                                   potential: wholePotential)
        try whole.run(steps: 120)
        // Step on until neither list was built at the current step.
        while lists(wholePotential).contains(where: { $0.anchorPositions == whole.state.positions }) { try whole.run(steps: 1) }
        let saved = whole.checkpoint()
        XCTAssertEqual(saved.listAnchors.count, 2)
        XCTAssertNotEqual(saved.listAnchors[0], saved.listAnchors[1], "the two lists should have been built at different steps")
        let decoded = try JSONDecoder().decode(Checkpoint.self, from: try JSONEncoder().encode(saved))
        try whole.run(steps: 200)

        let resumed = try Simulation(restoring: decoded, integrator: try integrator(), potential: try potential())
        try resumed.run(steps: 200)
        XCTAssertEqual(resumed.state, whole.state)
        XCTAssertEqual(resumed.forces.forces, whole.forces.forces)

        var withoutAnchors = decoded
        withoutAnchors.listAnchors = []
        let rebuilt = try Simulation(restoring: withoutAnchors, integrator: try integrator(), potential: try potential())
        try rebuilt.run(steps: 200)
        XCTAssertNotEqual(rebuilt.state.positions, whole.state.positions,
                          "lists rebuilt at the checkpoint gave the same bits: this test would not notice lost anchors")
        // Still the same physics, to round-off grown over 200 steps.
        let drift = zip(rebuilt.state.positions, whole.state.positions).map { norm($0 - $1) }.max() ?? 0
        XCTAssertLessThan(drift, 1e-6)
    }

    /// ENINet saves no list anchors: its graph orders the edges by atom and length, not by the
    /// list, so a list rebuilt from the checkpoint's positions gives the same sums. The 64-atom
    /// fluid of the conservation test (random smooth network plus the repulsive wall), under
    /// Langevin, checkpointed while the network's list was built at an earlier step, continues
    /// bitwise through a JSON round trip.
    func testAnENINetRunContinuesBitwiseFromACheckpoint() throws {
        func potential() throws -> (sum: PotentialSum, network: ENINetPotential) {
            let network = ENINetPotential(model: try ENINetConservationTests.network(reference: false), skin: 1.0)
            let wall = try LennardJones(sigma: 3.0, epsilon: 0.0104, cutoff: 3.0 * pow(2, 1.0 / 6), scheme: .shifted, skin: 1.0)
            return (PotentialSum([network, wall]), network)
        }
        func integrator() throws -> LangevinBAOAB { try LangevinBAOAB(timestep: 2, temperature: 600, friction: 5, seed: 13) }

        let (wholePotential, network) = try potential()
        let whole = try Simulation(state: try ENINetConservationTests.fluid(), integrator: try integrator(), potential: wholePotential)
        try whole.run(steps: 100)
        // Step on until the network's list was not built at the current step.
        var builds = network.neighborListBuilds
        repeat {
            builds = network.neighborListBuilds
            try whole.run(steps: 1)
        } while network.neighborListBuilds != builds
        XCTAssertGreaterThan(builds, 1, "the list should have been rebuilt during the run")
        let saved = whole.checkpoint()
        let decoded = try JSONDecoder().decode(Checkpoint.self, from: try JSONEncoder().encode(saved))
        try whole.run(steps: 60)

        let resumed = try Simulation(restoring: decoded, integrator: try integrator(), potential: try potential().sum)
        try resumed.run(steps: 60)
        XCTAssertEqual(resumed.state, whole.state)
        XCTAssertEqual(resumed.forces.forces, whole.forces.forces)
        XCTAssertEqual(resumed.integrator.exportState(), whole.integrator.exportState())
        XCTAssertEqual(resumed.thermo.conservedEnergy.bitPattern, whole.thermo.conservedEnergy.bitPattern)
    }

    /// A potential that abandons an evaluation on a stop request (an external program stopped
    /// by SIGINT) ends the run after the step before, as a stop between steps would: the state,
    /// forces and integrator are that step's, and the checkpoint carries the lists that step
    /// used, although the abandoned evaluation had rebuilt one, so the continuation is the
    /// uninterrupted run, bit for bit.
    func testAnEvaluationStoppedMidStepEndsTheRunAfterTheStepBefore() throws {
        func integrator() throws -> LangevinBAOAB { try LangevinBAOAB(timestep: 2, temperature: 200, friction: 5, seed: 21) }
        let start = try argonCrystal(cells: 2, temperature: 200, seed: 5)

        // The uninterrupted run, step by step, to find a step that rebuilds the list.
        let wholePotential = try lj()
        let whole = try Simulation(state: start, integrator: try integrator(), potential: wholePotential)
        var states: [Checkpoint] = [whole.checkpoint()]
        var rebuildStep: Int? = nil
        for step in 1...200 {
            let before = wholePotential.listAnchors
            try whole.run(steps: 1)
            states.append(whole.checkpoint())
            if step > 20, rebuildStep == nil, wholePotential.listAnchors != before { rebuildStep = step }
        }
        let rebuild = try XCTUnwrap(rebuildStep, "the list should have been rebuilt within 200 steps")

        // Call 1 is the first forces; call s + 1 those of step s.
        let interruptedPotential = StopsAtCall(try lj(), call: rebuild + 1)
        let stopped = try Simulation(state: start, integrator: try integrator(), potential: interruptedPotential)
        XCTAssertEqual(try stopped.run(steps: 200), .stopped(atStep: rebuild - 1))
        XCTAssertEqual(stopped.state, states[rebuild - 1].state)
        let saved = stopped.checkpoint()
        XCTAssertEqual(saved, states[rebuild - 1], "the checkpoint should be that of the step before, list anchors included")
        XCTAssertNotEqual(saved.listAnchors, states[rebuild].listAnchors)

        let decoded = try JSONDecoder().decode(Checkpoint.self, from: try JSONEncoder().encode(saved))
        let resumed = try Simulation(restoring: decoded, integrator: try integrator(), potential: try lj())
        try resumed.run(steps: 200 - (rebuild - 1))
        XCTAssertEqual(resumed.state, whole.state)
        XCTAssertEqual(resumed.forces.forces, whole.forces.forces)
        XCTAssertEqual(resumed.integrator.exportState(), whole.integrator.exportState())
    }

    /// Langevin's logged temperature averages to its target. Every atom here is tethered by
    /// a harmonic spring and the thermostat acts on all 3N velocities, so equipartition gives
    /// ⟨K⟩ = (3N/2) k_B T exactly; a temperature counted over 3N − 3 degrees of freedom would
    /// read 24/21 of the target for these 8 atoms. (Step 0's temperature cannot tell: the
    /// initial velocities are scaled over the same count as the log.)
    func testLangevinTemperatureAveragesToItsTarget() throws {
        let n = 8, target = 300.0
        let anchors = (0..<n).map { Vec3(Double($0) * 3, Double($0 % 2) * 2, 0) }
        let restraints = try HarmonicRestraint(tethers: anchors.enumerated().map { .init(atom: $0, anchor: $1, springConstant: 5) })
        let state = try MDState(positions: anchors, masses: Array(repeating: 12, count: n), cell: nil, atomicNumbers: Array(repeating: 6, count: n))
        let simulation = try Simulation(state: state, integrator: try LangevinBAOAB(timestep: 1, temperature: target, friction: 20, seed: 21),
                                        potential: restraints)
        try simulation.run(steps: 5_000)
        var sum = 0.0, samples = 0
        for _ in 0..<20_000 {
            try simulation.run(steps: 5)
            sum += simulation.thermo.temperature
            samples += 1
        }
        let mean = sum / Double(samples)
        // About 2,000 independent samples (velocity memory 50 fs) of a temperature whose
        // relative spread is sqrt(2/3N) = 0.29: 0.7 % statistical error.
        XCTAssertEqual(mean, target, accuracy: 0.03 * target, "mean logged temperature over 100 ps")
    }

    func testRandomStreamStateRoundTrip() throws {
        var a = RandomStream(seed: 2024)
        _ = a.normal()  // leaves a spare normal in the state
        var b = try RandomStream(restoring: a.exported())
        for _ in 0..<1000 { XCTAssertEqual(a.normal().bitPattern, b.normal().bitPattern) }
        XCTAssertEqual(a.gamma(shape: 3.5), b.gamma(shape: 3.5))
        XCTAssertThrowsError(try RandomStream(restoring: ["rng_s0": "zz"]))
    }

    /// Gamma and normal samplers have the right first two moments (χ² with ν dof: mean ν, variance 2ν).
    func testSamplerMoments() {
        var r = RandomStream(seed: 1)
        let n = 200_000
        for nu in [1, 2, 7, 320] {
            var s = 0.0, s2 = 0.0
            for _ in 0..<n { let x = r.chiSquared(degrees: nu); s += x; s2 += x * x }
            let mean = s / Double(n), variance = s2 / Double(n) - mean * mean
            XCTAssertEqual(mean / Double(nu), 1, accuracy: 4 * (2 / Double(nu) / Double(n)).squareRoot() + 1e-9)
            XCTAssertEqual(variance / Double(2 * nu), 1, accuracy: 0.03)
        }
    }

    /// Maxwell–Boltzmann draw: zero total momentum, exact temperature with 3N − 3 dof when asked;
    /// without rescaling, the draw's temperature scatters around the target; same seed, same bits.
    func testMaxwellBoltzmann() throws {
        let masses = (0..<3000).map { 1 + Double($0 % 7) * 10 }
        var r1 = RandomStream(seed: 5), r2 = RandomStream(seed: 5)
        let v = InitialVelocities.maxwellBoltzmann(masses: masses, temperature: 250, random: &r1)
        let w = InitialVelocities.maxwellBoltzmann(masses: masses, temperature: 250, random: &r2)
        XCTAssertEqual(v, w)
        let state = try MDState(positions: Array(repeating: .zero, count: masses.count), velocities: v, masses: masses,
                                cell: nil, atomicNumbers: Array(repeating: 1, count: masses.count))
        XCTAssertLessThan(norm(state.totalMomentum), 1e-12)
        XCTAssertEqual(state.temperature(degreesOfFreedom: 3 * masses.count - 3), 250, accuracy: 1e-9)
        var r3 = RandomStream(seed: 6)
        let raw = InitialVelocities.maxwellBoltzmann(masses: masses, temperature: 250, random: &r3,
                                                     removeDrift: false, exactTemperature: false)
        let rawState = try MDState(positions: state.positions, velocities: raw, masses: masses, cell: nil, atomicNumbers: state.atomicNumbers)
        let t = rawState.temperature(degreesOfFreedom: 3 * masses.count)
        XCTAssertNotEqual(t, 250)
        XCTAssertEqual(t, 250, accuracy: 250 * 4 * (2.0 / 9000).squareRoot())
    }

    /// A step that produces NaN stops the run with an error naming the step and the atom, and
    /// the simulation keeps the last good state.
    func testNonFiniteForcesStopTheRun() throws {
        final class Poisoned: Potential {
            let inner: any Potential
            var calls = 0
            init(_ inner: any Potential) { self.inner = inner }
            var name: String { "poisoned" }
            func compute(_ c: Configuration) throws -> ForceResult {
                calls += 1
                var r = try inner.compute(c)
                if calls > 11 { r.forces[17].y = .nan }
                return r
            }
        }
        let start = try argonCrystal(cells: 2, temperature: 100, seed: 8)
        let simulation = try Simulation(state: start, integrator: try VelocityVerlet(timestep: 2), potential: Poisoned(try lj()))
        XCTAssertThrowsError(try simulation.run(steps: 100)) { error in
            XCTAssertEqual(error as? DynamicsError, .nonFinite(step: 11, atom: 17, quantity: "force"))
            XCTAssertTrue("\(error)".contains("atom 17") && "\(error)".contains("step 11"))
        }
        XCTAssertEqual(simulation.state.step, 10)
        XCTAssertTrue(simulation.forces.forces.allSatisfy { $0.y.isFinite })
        // At step 0 there is no earlier state: the message said "the last good state (step -1) is kept".
        let atStart = "\(DynamicsError.nonFinite(step: 0, atom: 3, quantity: "force"))"
        XCTAssertTrue(atStart.contains("starting structure") && !atStart.contains("step -1"), atStart)
        // Cells print as numbers, not as SIMD3<Double>(…).
        XCTAssertEqual("\(Mat3(Vec3(1, 0, 0), Vec3(0, 2, 0), Vec3(0, 0, 0)))", "[(1.0, 0.0, 0.0), (0.0, 2.0, 0.0), (0.0, 0.0, 0.0)]")
    }

    /// Reporters see step 0 and every stride; the stop hook ends the run between steps; the
    /// CSV log has the documented columns and a pressure equal to (2K + tr W)/(3V).
    func testReportersStopHookAndLog() throws {
        final class Recorder: Reporter {
            let stride: Int
            var steps: [Int] = []
            var finished = 0
            init(stride: Int) { self.stride = stride }
            func report(_ simulation: Simulation) throws { steps.append(simulation.state.step) }
            func runFinished(_ simulation: Simulation) throws { finished += 1 }
        }
        let simulation = try Simulation(state: try argonCrystal(cells: 2, temperature: 100, seed: 9),
                                        integrator: try VelocityVerlet(timestep: 2), potential: try lj())
        let recorder = Recorder(stride: 4)
        var log = ""
        simulation.addReporter(recorder)
        simulation.addReporter(ThermoLogReporter(stride: 5) { log += $0 })
        XCTAssertEqual(try simulation.run(steps: 10), .completed)
        XCTAssertEqual(recorder.steps, [0, 4, 8])
        simulation.stopRequested = { simulation.state.step >= 13 }
        XCTAssertEqual(try simulation.run(steps: 10), .stopped(atStep: 13))
        XCTAssertEqual(recorder.steps, [0, 4, 8, 12])
        XCTAssertEqual(recorder.finished, 2)
        let lines = log.split(separator: "\n")
        XCTAssertEqual(lines.first.map(String.init), ThermoLogReporter.columns.joined(separator: ","))
        XCTAssertEqual(lines.count, 4)  // header, steps 0, 5, 10
        let t = simulation.thermo
        let cell = try XCTUnwrap(simulation.state.cell)
        let expected = (2 * t.kineticEnergy + simulation.forces.virial.trace) / (3 * cell.volume) * 1.602176634e6
        XCTAssertEqual(try XCTUnwrap(t.pressure), expected, accuracy: 1e-9 * abs(expected))
        XCTAssertEqual(t.temperature, 2 * t.kineticEnergy / (93 * Units.boltzmann), accuracy: 1e-9)
    }

    /// FIRE finds the Lennard-Jones 13-atom icosahedron's energy, −44.326801 ε.
    func testFIREFindsLJ13Minimum() throws {
        let sigma = 3.4, epsilon = 0.0104
        let phi = (1 + 5.0.squareRoot()) / 2
        var vertices: [Vec3] = [.zero]
        for (a, b) in [(1.0, phi), (-1.0, phi), (1.0, -phi), (-1.0, -phi)] {
            vertices += [Vec3(0, a, b), Vec3(a, b, 0), Vec3(b, 0, a)]
        }
        var noise = RandomStream(seed: 3)
        let radius = 1.09 * sigma / (1 + phi * phi).squareRoot()
        let positions = vertices.map { $0 * radius + 0.1 * Vec3(noise.normal(), noise.normal(), noise.normal()) }
        var state = try MDState(positions: positions, masses: Array(repeating: 39.948, count: 13), cell: nil,
                                atomicNumbers: Array(repeating: 18, count: 13))
        let lj = try LennardJones(sigma: sigma, epsilon: epsilon, cutoff: 100, scheme: .truncated, skin: 1)
        let result = try FIRE().minimize(&state, potential: lj, forceTolerance: 1e-5, maxSteps: 5000)
        print("FIRE LJ13: \(result.steps) steps, E = \(result.energy / epsilon) ε")
        XCTAssertTrue(result.converged)
        XCTAssertEqual(result.energy / epsilon, -44.326801, accuracy: 1e-5)

        // A stop request (what `minimize` makes of SIGINT) ends it after that step, with the
        // positions the reported energy belongs to: `minimize` died with nothing written.
        var stopped = try MDState(positions: positions, masses: Array(repeating: 39.948, count: 13), cell: nil,
                                  atomicNumbers: Array(repeating: 18, count: 13))
        var polls = 0
        let early = try FIRE().minimize(&stopped, potential: lj, forceTolerance: 1e-5, maxSteps: 5000,
                                        stopRequested: { polls += 1; return polls == 4 })
        XCTAssertTrue(early.stopped)
        XCTAssertFalse(early.converged)
        XCTAssertEqual(early.steps, 3)
        XCTAssertEqual(try lj.compute(stopped.configuration).energy, early.energy, accuracy: 1e-12)
        XCTAssertGreaterThan(early.energy, result.energy)

        // An evaluation abandoned on a stop request (an external program stopped by SIGINT)
        // ends it too, with the positions of the step before, whose forces are known.
        var abandoned = try MDState(positions: positions, masses: Array(repeating: 39.948, count: 13), cell: nil,
                                    atomicNumbers: Array(repeating: 18, count: 13))
        let midway = try FIRE().minimize(&abandoned, potential: StopsAtCall(lj, call: 4), forceTolerance: 1e-5, maxSteps: 5000)
        XCTAssertTrue(midway.stopped)
        XCTAssertEqual(midway.steps, 2)
        var twoSteps = try MDState(positions: positions, masses: Array(repeating: 39.948, count: 13), cell: nil,
                                   atomicNumbers: Array(repeating: 18, count: 13))
        let reference = try FIRE().minimize(&twoSteps, potential: lj, forceTolerance: 1e-5, maxSteps: 2)
        XCTAssertEqual(abandoned.positions, twoSteps.positions)
        XCTAssertEqual(midway.energy, reference.energy)
        XCTAssertEqual(midway.forces, reference.forces)
        // Abandoned at the first evaluation, there are no positions with forces to return.
        var first = try MDState(positions: positions, masses: Array(repeating: 39.948, count: 13), cell: nil,
                                atomicNumbers: Array(repeating: 18, count: 13))
        XCTAssertThrowsError(try FIRE().minimize(&first, potential: StopsAtCall(lj, call: 1))) { error in
            XCTAssertTrue(error is EvaluationStopped, "\(error)")
        }
    }
}
