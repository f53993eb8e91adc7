import XCTest
import Geometry
@testable import Analysis

/// Analytic trajectories of oscillators of known frequency: the VDOS must peak there and
/// integrate to the degrees of freedom.
final class VDOSOscillatorTests: XCTestCase {
    let dt = 1.0                // fs between frames
    let frames = 8192
    let maxLag = 1000           // frames: T_corr = 1000 fs, resolution 33.4 cm⁻¹
    let temperature = 300.0

    /// Angular frequency (rad/fs) of a wavenumber (cm⁻¹).
    func omega(_ wavenumber: Double) -> Double { 2 * Double.pi * SpectralUnits.speedOfLight * wavenumber }

    /// Amplitude of a normal coordinate of mass m and frequency ω carrying k_BT on average:
    /// ⟨m q̇²⟩ = m A² ω² / 2 = k_BT.
    func amplitude(mass: Double, omega w: Double) -> Double {
        (2 * Units.boltzmann * temperature / Units.energyPerMassVelocitySquared / mass).squareRoot() / w
    }

    /// Local maxima of a curve higher than `fraction` of its largest value.
    func peaks(_ s: Spectrum, _ name: String, fraction: Double = 0.2) -> [Double] {
        guard let v = s.curve(name)?.values, let top = v.max() else { return [] }
        var out: [Double] = []
        for k in 1..<(v.count - 1) {
            let isMaximum = v[k] > v[k - 1] && v[k] >= v[k + 1]
            if isMaximum && v[k] > fraction * top { out.append(s.frequencies[k]) }
        }
        return out
    }

    func testSingleHarmonicOscillatorPeakAndNormalisation() throws {
        let nu = 1234.0, m = 12.011
        let w = omega(nu), a = amplitude(mass: m, omega: w)
        let phases = [0.3, 1.9, 4.0]
        var v = [Double](repeating: 0, count: frames * 3)
        for t in 0..<frames {
            for k in 0..<3 { v[3 * t + k] = -a * w * sin(w * Double(t) * dt + phases[k]) }
        }
        let options = VibrationalDensityOfStates.Options(spectral: SpectralOptions(maxLag: maxLag, window: .hann),
                                                         temperature: temperature)
        let r = try VibrationalDensityOfStates.compute(velocities: v, atomCount: 1, frameSpacing: dt, masses: [m],
                                                       symbols: ["C"], options: options)
        let s = r.spectrum
        XCTAssertEqual(s.resolution, 33.356, accuracy: 0.01)
        let found = peaks(s, "vdos_total")
        XCTAssertEqual(found.count, 1, "one peak: \(found)")
        XCTAssertEqual(found.first ?? 0, nu, accuracy: s.resolution)
        // The grid peak is the nearest grid point to ν: within half a grid spacing.
        XCTAssertEqual(found.first ?? 0, nu, accuracy: 0.5 * s.spacing + 1e-9)
        let integral = s.integral(of: "vdos_total") ?? 0
        XCTAssertEqual(integral, 3, accuracy: 0.03)
        XCTAssertEqual(r.kineticTemperature, temperature, accuracy: 0.01 * temperature)
        print("single oscillator: peak \(found) cm-1 (true \(nu)), integral \(integral) (3 dof), T_kin \(r.kineticTemperature) K")

        // --dof beyond 3N printed "-1 dof" (2⁶³) and an integral of 8·10¹⁸; --temperature-K inf
        // gave an all-zero VDOS. Both are errors now; 1 to 3N dof stay valid.
        for (dof, temperature) in [(4, 300.0), (Int.max, 300), (3, Double.infinity)] {
            XCTAssertThrowsError(try VibrationalDensityOfStates.compute(
                velocities: v, atomCount: 1, frameSpacing: dt, masses: [m], symbols: ["C"],
                options: .init(spectral: SpectralOptions(maxLag: maxLag, window: .hann), temperature: temperature, degreesOfFreedom: dof)))
        }
        XCTAssertNoThrow(try VibrationalDensityOfStates.compute(
            velocities: v, atomCount: 1, frameSpacing: dt, masses: [m], symbols: ["C"],
            options: .init(spectral: SpectralOptions(maxLag: maxLag, window: .hann), degreesOfFreedom: 1)))
    }

    func testCoupledOscillatorsShowBothNormalModes() throws {
        // Two equal masses, each tied to a wall by k and to each other by kc, along every axis:
        // ω₁ = √(k/m) (in phase), ω₂ = √((k + 2kc)/m) (out of phase).
        let m = 15.999
        let nu1 = 1000.0, nu2 = 1600.0
        let w1 = omega(nu1), w2 = omega(nu2)
        let a1 = amplitude(mass: m, omega: w1), a2 = amplitude(mass: m, omega: w2)
        var v = [Double](repeating: 0, count: frames * 6)
        let s2 = 0.5.squareRoot()
        for t in 0..<frames {
            let time = Double(t) * dt
            for k in 0..<3 {
                let q1dot = -a1 * w1 * sin(w1 * time + 0.7 * Double(k + 1))
                let q2dot = -a2 * w2 * sin(w2 * time + 2.1 * Double(k) + 0.4)
                v[6 * t + k] = s2 * (q1dot + q2dot)
                v[6 * t + 3 + k] = s2 * (q1dot - q2dot)
            }
        }
        for massWeighted in [true, false] {
            let options = VibrationalDensityOfStates.Options(spectral: SpectralOptions(maxLag: maxLag, window: .hann),
                                                             massWeighted: massWeighted, temperature: temperature)
            let r = try VibrationalDensityOfStates.compute(velocities: v, atomCount: 2, frameSpacing: dt, masses: [m, m],
                                                           symbols: ["O", "O"], options: options)
            let s = r.spectrum
            let found = peaks(s, "vdos_total")
            XCTAssertEqual(found.count, 2, "two peaks: \(found)")
            if found.count == 2 {
                XCTAssertEqual(found[0], nu1, accuracy: s.resolution)
                XCTAssertEqual(found[1], nu2, accuracy: s.resolution)
            }
            let integral = s.integral(of: "vdos_total") ?? 0
            XCTAssertEqual(integral, 6, accuracy: 0.06, "massWeighted \(massWeighted)")
            // Each mode holds half of the states.
            let values = s.curve("vdos_total")?.values ?? []
            let low = Quadrature.trapezoid(Array(values[..<(s.frequencies.firstIndex { $0 >= 1300 } ?? 0)]), spacing: s.spacing)
            XCTAssertEqual(low, 3, accuracy: 0.06, "massWeighted \(massWeighted)")
            print("coupled oscillators (massWeighted \(massWeighted)): peaks \(found) cm-1 (true \(nu1), \(nu2)), integral \(integral) (6 dof), below 1300: \(low)")
        }
    }

    /// Per-element curves add up to the total; the measured kinetic temperature normalises
    /// the integral to the degrees of freedom exactly when no temperature is given.
    func testPartialsSumToTotalAndDefaultNormalisation() throws {
        var rng = SeededGenerator(seed: 11)
        let atoms = 5, n = 600
        let symbols = ["C", "H", "H", "O", "H"]
        let masses = symbols.map { Elements.mass(of: Elements.atomicNumber(of: $0) ?? 1) ?? 1 }
        var v = [Double](repeating: 0, count: n * atoms * 3)
        for i in v.indices { v[i] = 0.01 * rng.gaussian() }
        let options = VibrationalDensityOfStates.Options(spectral: SpectralOptions(maxLag: 100, window: .blackman, blocks: 3),
                                                         degreesOfFreedom: 12)
        let r = try VibrationalDensityOfStates.compute(velocities: v, atomCount: atoms, frameSpacing: 0.5, masses: masses,
                                                       symbols: symbols, options: options)
        let s = r.spectrum
        XCTAssertEqual(s.curves.map(\.name), ["vdos_total", "vdos_C", "vdos_H", "vdos_O"])
        let total = s.curves[0].values
        for k in total.indices {
            let sum = s.curves[1].values[k] + s.curves[2].values[k] + s.curves[3].values[k]
            XCTAssertEqual(total[k], sum, accuracy: 1e-12 * (total.max() ?? 1))
        }
        XCTAssertEqual(s.integral(of: "vdos_total") ?? 0, 12, accuracy: 1e-9)
        XCTAssertNotNil(s.curves[0].errors)
        XCTAssertTrue(s.curves[0].errors?.allSatisfy { $0 > 0 } ?? false)
    }
}
