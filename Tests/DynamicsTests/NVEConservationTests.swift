import XCTest
import Geometry
import Potentials
import Dynamics

/// Energy conservation of velocity Verlet with the C²-switched Lennard-Jones argon.
///
/// 108 atoms (3³ fcc cells of 5.26 Å, the ASE fixture's crystal) at 98 K: small enough that
/// 100 ps (50,000 steps) take about a second in release builds.
final class NVEConservationTests: XCTestCase {
    private func argon() throws -> (MDState, LennardJones) {
        let state = try ASEFixture.load().state()
        let lj = try LennardJones(sigma: 3.4, epsilon: 0.0104, cutoff: 8.5, scheme: .switched(onset: 7.0), skin: 1.0)
        return (state, lj)
    }

    /// Total energy sampled every `every` steps.
    private func energies(timestep: Double, steps: Int, every: Int) throws -> [Double] {
        let (state, lj) = try argon()
        let simulation = try Simulation(state: state, integrator: try VelocityVerlet(timestep: timestep), potential: lj)
        var out = [simulation.thermo.totalEnergy]
        for _ in 0..<(steps / every) {
            try simulation.run(steps: every)
            out.append(simulation.thermo.totalEnergy)
        }
        return out
    }

    /// Least-squares slope of y against its index times `dx`.
    private func slope(_ y: [Double], dx: Double) -> Double {
        let n = Double(y.count)
        let mx = (n - 1) / 2, my = y.reduce(0, +) / n
        var sxy = 0.0, sxx = 0.0
        for (i, v) in y.enumerated() { sxy += (Double(i) - mx) * (v - my); sxx += (Double(i) - mx) * (Double(i) - mx) }
        return sxy / sxx / dx
    }

    func testDriftOver100PicosecondsAt2Femtoseconds() throws {
        let e = try energies(timestep: 2, steps: 50_000, every: 50)
        let atoms = 108.0
        let drift = slope(e, dx: 0.1) / atoms  // samples every 0.1 ps
        let span = (e.max()! - e.min()!) / atoms
        print("NVE LJ argon 108 atoms, dt 2 fs, 100 ps: drift \(drift) eV/atom/ps, max-min \(span) eV/atom")
        XCTAssertLessThan(abs(drift), 1e-5)
        XCTAssertTrue(e.allSatisfy { $0.isFinite })
    }

    /// Velocity Verlet's energy fluctuation is O(Δt²): halving Δt divides it by about 4.
    func testFluctuationScalesAsTimestepSquared() throws {
        func fluctuation(_ dt: Double) throws -> Double {
            let e = try energies(timestep: dt, steps: Int(4000 / dt), every: 1)
            let mean = e.reduce(0, +) / Double(e.count)
            return (e.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(e.count)).squareRoot()
        }
        let coarse = try fluctuation(2), fine = try fluctuation(1)
        print("NVE energy std over 4 ps: dt 2 fs \(coarse) eV, dt 1 fs \(fine) eV, ratio \(coarse / fine)")
        XCTAssertEqual(coarse / fine, 4, accuracy: 0.6)
    }
}
