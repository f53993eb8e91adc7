import XCTest
import Geometry
import Potentials
import Dynamics

/// Langevin (BAOAB) and Bussi sample the canonical ensemble: mean kinetic energy (N_f/2)k_BT,
/// its variance (N_f/2)(k_BT)², and for BAOAB the exact configurational variance k_BT/k of a
/// harmonic oscillator at a large time step. Each estimate's statistical error is printed and
/// the tolerances are several standard errors wide; the seeds are fixed.
final class CanonicalSamplingTests: XCTestCase {
    let temperature = 300.0
    var kT: Double { Units.boltzmann * temperature }
    /// Three distinct frequencies per atom so that a global thermostat can move energy
    /// between modes (isotropic tethers would keep each orbit in its plane).
    let springs = Vec3(0.6, 1.0, 1.7)

    private func oscillators(_ count: Int) throws -> (MDState, HarmonicRestraint) {
        let anchors = (0..<count).map { Vec3(Double($0) * 3, 0, 0) }
        let state = try MDState(positions: anchors, masses: Array(repeating: 10, count: count), cell: nil,
                                atomicNumbers: Array(repeating: 18, count: count))
        let tethers = anchors.enumerated().map { HarmonicRestraint.Tether(atom: $0.offset, anchor: $0.element, springConstants: springs) }
        return (state, try HarmonicRestraint(tethers: tethers))
    }

    /// Runs `steps` steps recording the kinetic energy and the squared displacements per axis.
    private func sample(_ integrator: any Integrator, state: MDState, potential: any Potential, steps: Int, every: Int = 1,
                        degreesOfFreedom: Int? = nil, equilibration: Int = 2000,
                        anchors: [Vec3]? = nil) throws -> (kinetic: [Double], squared: [Vec3]) {
        var integrator = integrator
        var state = state
        var forces = try potential.compute(state.configuration)
        for _ in 0..<equilibration { try integrator.step(&state, forces: &forces, potential: potential) }
        var kinetic: [Double] = [], squared: [Vec3] = []
        kinetic.reserveCapacity(steps / every)
        for s in 0..<steps {
            try integrator.step(&state, forces: &forces, potential: potential)
            if s % every != 0 { continue }
            kinetic.append(state.kineticEnergy)
            if let anchors = anchors {
                var sq = Vec3.zero
                for i in 0..<state.count { let d = state.positions[i] - anchors[i]; sq += d * d }
                squared.append(sq / Double(state.count))
            }
        }
        return (kinetic, squared)
    }

    private func checkKinetic(_ kinetic: [Double], dof: Int, label: String) {
        let target = 0.5 * Double(dof) * kT
        let mean = blockStatistics(kinetic)
        let variance = varianceStatistics(kinetic)
        let targetVariance = 0.5 * Double(dof) * kT * kT
        print(String(format: "%@: <T>/T0 = %.5f ± %.5f, Var(K)/((Nf/2)(kT)^2) = %.4f ± %.4f",
                     label as NSString, mean.mean / target, mean.standardError / target,
                     variance.variance / targetVariance, variance.standardError / targetVariance))
        XCTAssertEqual(mean.mean / target, 1, accuracy: 0.01, label)
        XCTAssertEqual(variance.variance / targetVariance, 1, accuracy: 0.05, label)
        // The run must be long enough for the tolerances to mean something.
        XCTAssertLessThan(mean.standardError / target, 0.0035, label)
        XCTAssertLessThan(variance.standardError / targetVariance, 0.017, label)
    }

    func testLangevinHarmonicOscillators() throws {
        let (state, tethers) = try oscillators(100)
        let langevin = try LangevinBAOAB(timestep: 2, temperature: temperature, friction: 20, seed: 11)
        let run = try sample(langevin, state: state, potential: tethers, steps: 300_000, every: 5)
        checkKinetic(run.kinetic, dof: 300, label: "Langevin, 100 3D oscillators, dt 2 fs")
    }

    /// BAOAB's configurational distribution of a harmonic oscillator is exact at any stable
    /// step: here ω_max Δt ≈ 1.2 (the stiffest axis).
    func testLangevinConfigurationalVarianceAtLargeTimestep() throws {
        let (state, tethers) = try oscillators(100)
        let langevin = try LangevinBAOAB(timestep: 30, temperature: temperature, friction: 20, seed: 12)
        let omegaDt = (springs.max() / 10 * Units.accelerationPerForceOverMass).squareRoot() * 30
        let run = try sample(langevin, state: state, potential: tethers, steps: 40_000, equilibration: 200,
                             anchors: state.positions)
        for axis in 0..<3 {
            let s = blockStatistics(run.squared.map { $0[axis] })
            let target = kT / springs[axis]
            print(String(format: "BAOAB ω·dt = %.2f, axis %d: <x²>/(kT/k) = %.5f ± %.5f", omegaDt, axis, s.mean / target, s.standardError / target))
            XCTAssertEqual(s.mean / target, 1, accuracy: 0.01)
            XCTAssertLessThan(s.standardError / target, 0.0035)
        }
    }

    func testBussiHarmonicOscillator() throws {
        let (state, tethers) = try oscillators(1)
        var start = state
        start.velocities = [Vec3(0.003, -0.002, 0.001)]
        let bussi = try BussiThermostat(timestep: 2, temperature: temperature, relaxationTime: 20, seed: 13, degreesOfFreedom: 3)
        let run = try sample(bussi, state: start, potential: tethers, steps: 1_500_000, every: 5)
        checkKinetic(run.kinetic, dof: 3, label: "Bussi, one anisotropic 3D oscillator, dt 2 fs")
    }

    private func argon() throws -> (MDState, LennardJones) {
        let state = try argonCrystal(cells: 2, temperature: temperature, seed: 5)
        // A shorter cutoff than the NVE test's keeps these long runs cheap; the ensemble
        // checks do not depend on it.
        return (state, try LennardJones(sigma: 3.4, epsilon: 0.0104, cutoff: 7.0, scheme: .switched(onset: 6.0), skin: 0.5))
    }

    func testLangevinArgon() throws {
        let (state, lj) = try argon()
        let langevin = try LangevinBAOAB(timestep: 2, temperature: temperature, friction: 20, seed: 21)
        let run = try sample(langevin, state: state, potential: lj, steps: 200_000, every: 5)
        checkKinetic(run.kinetic, dof: 3 * state.count, label: "Langevin, 32 Ar (LJ), dt 2 fs")
    }

    func testBussiArgon() throws {
        let (state, lj) = try argon()
        let bussi = try BussiThermostat(timestep: 2, temperature: temperature, relaxationTime: 20, seed: 22)
        let run = try sample(bussi, state: state, potential: lj, steps: 200_000, every: 5)
        checkKinetic(run.kinetic, dof: 3 * state.count - 3, label: "Bussi, 32 Ar (LJ), dt 2 fs")
    }

    /// Conserved quantity of a thermostatted run: total energy plus thermostat heat drifts
    /// only by integration error, while the total energy itself wanders by much more.
    func testConservedQuantityOfThermostats() throws {
        for (label, integrator) in [("bussi", try BussiThermostat(timestep: 2, temperature: 600, relaxationTime: 100, seed: 3) as any Integrator),
                                    ("langevin", try LangevinBAOAB(timestep: 2, temperature: 600, friction: 5, seed: 4))] {
            let (state, lj) = try argon()
            let simulation = try Simulation(state: state, integrator: integrator, potential: lj)
            let first = simulation.thermo
            try simulation.run(steps: 5000)
            let last = simulation.thermo
            print("\(label): ΔE_total = \(last.totalEnergy - first.totalEnergy) eV, Δconserved = \(last.conservedEnergy - first.conservedEnergy) eV")
            XCTAssertGreaterThan(abs(last.totalEnergy - first.totalEnergy), 0.1)
            XCTAssertLessThan(abs(last.conservedEnergy - first.conservedEnergy), 0.01 * abs(last.totalEnergy - first.totalEnergy))
        }
    }
}
