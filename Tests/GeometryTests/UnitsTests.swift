import XCTest
import Geometry

/// Every conversion constant against its definition from SI values, written out here
/// independently of `Units.swift`: the NetCDF tests compare with `Units.kcalPerMolPerEV` itself,
/// so a wrong constant would pass them while every stored force is off by its error.
final class UnitsTests: XCTestCase {
    let electronVolt = 1.602176634e-19   // J, exact
    let avogadro = 6.02214076e23         // 1/mol, exact
    let calorie = 4.184                  // J (thermochemical)

    func testConstantsAgreeWithTheirSIDefinitions() {
        func relative(_ a: Double, _ b: Double) -> Double { abs(a - b) / abs(b) }
        // ASE's value, from CODATA 2014's e and N_A: 8e-9 from the exact 2019 SI ones.
        XCTAssertLessThan(relative(Units.kcalPerMolPerEV, electronVolt * avogadro / (1000 * calorie)), 1e-8)
        XCTAssertLessThan(relative(Units.boltzmann, 1.380649e-23 / electronVolt), 1e-9)
        XCTAssertLessThan(relative(Units.hbarEVfs, 1.054571817e-34 / electronVolt * 1e15), 1e-9)
        XCTAssertLessThan(relative(Units.speedOfLightCmPerFs, 299_792_458 * 100 * 1e-15), 1e-15)
        XCTAssertLessThan(relative(Units.barPerEVPerCubicAngstrom, electronVolt / 1e-30 / 1e5), 1e-15)
        // 1 eV/(Å·amu) = 9.6485332e17 m/s² = 9.6485332e-3 Å/fs².
        XCTAssertLessThan(relative(Units.accelerationPerForceOverMass, 9.6485332e-3), 1e-7)
        XCTAssertEqual(Units.accelerationPerForceOverMass * Units.energyPerMassVelocitySquared, 1, accuracy: 1e-15)
        XCTAssertEqual(Units.femtosecondsPerPicosecond, 1000)
    }
}
