import XCTest
import Geometry
import Potentials
import Dynamics

/// Velocity Verlet against ASE 3.29 on 108 Ar atoms (../shared/data/ase-lj/README.md).
final class ASEReferenceTests: XCTestCase {
    func testVelocityVerletReproducesASETrajectory() throws {
        let fixture = try ASEFixture.load()
        let lj = try LennardJones(sigma: fixture.sigma, epsilon: fixture.epsilon, cutoff: fixture.cutoff,
                                  scheme: .shifted, skin: 1.0)
        let simulation = try Simulation(state: try fixture.state(), integrator: try VelocityVerlet(timestep: fixture.timestep),
                                        potential: lj)
        // Frame 0: the all-image energy (the README's −8.381842570865864 eV) and ASE's forces.
        XCTAssertEqual(simulation.forces.energy, -8.381842570865864, accuracy: 1e-12)
        var worstForce = 0.0
        for i in 0..<fixture.forces.count { worstForce = max(worstForce, norm(simulation.forces.forces[i] - fixture.forces[i])) }
        XCTAssertLessThan(worstForce, 1e-12)

        var worstPosition = 0.0, worstEnergy = 0.0, worstStress = 0.0
        for frame in fixture.frames {
            try simulation.run(steps: frame.step - simulation.state.step)
            XCTAssertEqual(simulation.state.step, frame.step)
            for i in 0..<frame.positions.count {
                worstPosition = max(worstPosition, norm(simulation.state.positions[i] - frame.positions[i]))
            }
            let t = simulation.thermo
            worstEnergy = max(worstEnergy, abs(t.potentialEnergy - frame.epot), abs(t.kineticEnergy - frame.ekin),
                              abs(t.totalEnergy - frame.etot))
            // Configurational stress −W/V in ASE's Voigt order xx yy zz yz xz xy.
            let w = simulation.forces.virial, v = fixture.cell.volume
            let voigt = [w[0, 0], w[1, 1], w[2, 2], w[1, 2], w[0, 2], w[0, 1]].map { -$0 / v }
            for k in 0..<6 { worstStress = max(worstStress, abs(voigt[k] - frame.stress[k])) }
        }
        print("ASE VV, 200 steps: max |Δr| = \(worstPosition) Å, max |ΔE| = \(worstEnergy) eV, max |Δσ| = \(worstStress) eV/Å³")
        XCTAssertLessThan(worstPosition, 1e-6)
        XCTAssertLessThan(worstEnergy, 1e-6)
        XCTAssertLessThan(worstStress, 1e-9)  // stresses are ~1e-4 eV/Å³
    }
}
