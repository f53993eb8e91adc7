import Foundation
import XCTest
import Geometry
@testable import Analysis

final class InfraredTests: XCTestCase {
    /// A dipole oscillating at two known frequencies: the IR line shape peaks at both, and
    /// its integral is ⟨Ṁ²⟩/2 (Ṁ from the same central differences).
    func testDipolePeaksAndIntegral() throws {
        let dt = 0.5, frames = 10000
        let nu1 = 1700.0, nu2 = 3000.0
        let w1 = 2 * Double.pi * SpectralUnits.speedOfLight * nu1, w2 = 2 * Double.pi * SpectralUnits.speedOfLight * nu2
        var m = [Double](repeating: 0, count: 3 * frames)
        for t in 0..<frames {
            let time = Double(t) * dt
            m[3 * t] = 0.5 + 0.02 * cos(w1 * time)
            m[3 * t + 1] = -0.1 + 0.01 * sin(w2 * time + 0.3)
            m[3 * t + 2] = 0.2
        }
        let options = InfraredSpectrum.Options(spectral: SpectralOptions(maxLag: 2000, window: .hann), correction: .harmonic,
                                               temperature: 300)
        let s = try InfraredSpectrum.compute(dipoles: m, frameSpacing: dt, options: options)
        XCTAssertEqual(s.curves.map(\.name), ["ir_harmonic", "ir_classical"])
        let p1 = s.peak(of: "ir_classical", in: 1000...2300) ?? 0
        let p2 = s.peak(of: "ir_classical", in: 2300...4000) ?? 0
        XCTAssertEqual(p1, nu1, accuracy: s.resolution)
        XCTAssertEqual(p2, nu2, accuracy: s.resolution)
        let mdot = InfraredSpectrum.dipoleDerivative(m, frameSpacing: dt)
        var sumSquares = 0.0
        for x in mdot { sumSquares += x * x }
        let meanSquare = sumSquares / Double(mdot.count / 3)
        // Ṁ from outside the code: central differences of A cos(ωt + φ) have the mean square
        // A² sin²(ω Δt) / (2 Δt²) over many periods.
        let analytic = (pow(0.02 * sin(w1 * dt), 2) + pow(0.01 * sin(w2 * dt), 2)) / (2 * dt * dt)
        XCTAssertEqual(meanSquare, analytic, accuracy: 2e-3 * analytic)
        XCTAssertEqual(s.integral(of: "ir_classical") ?? 0, meanSquare / 2, accuracy: 1e-9 * meanSquare)
        // The corrected curve is the classical one times Q(ν̃).
        let classical = s.curve("ir_classical")?.values ?? [], corrected = s.curve("ir_harmonic")?.values ?? []
        for k in [10, 500, 2000] {
            let q = InfraredSpectrum.Correction.harmonic.factor(wavenumber: s.frequencies[k], temperature: 300)
            XCTAssertEqual(corrected[k], classical[k] * q, accuracy: 1e-12 * abs(classical[k]) + 1e-300)
        }
        print("IR: peaks \(p1), \(p2) cm-1 (true \(nu1), \(nu2)); resolution \(s.resolution) cm-1")

        // Schofield's e^(βħω/2) at 1 K passes Double's range below 1,000 cm⁻¹: it wrote
        // columns of inf with exit 0. An infinite temperature made the correction 1.
        for (correction, temperature, fragment) in [(InfraredSpectrum.Correction.schofield, 1.0, "overflows from"),
                                                    (.harmonic, Double.infinity, "must be positive and finite; got inf K"),
                                                    // Given but not positive, it was "needs a temperature; pass --temperature-K".
                                                    (.standard, -300, "must be positive and finite; got -300.0 K"),
                                                    (.standard, 0, "must be positive and finite; got 0.0 K")] {
            XCTAssertThrowsError(try InfraredSpectrum.compute(dipoles: m, frameSpacing: dt, options: .init(
                spectral: SpectralOptions(maxLag: 2000, window: .hann), correction: correction, temperature: temperature))) {
                XCTAssertTrue("\($0)".contains(fragment), "\($0)")
            }
        }
        XCTAssertNoThrow(try InfraredSpectrum.compute(dipoles: m, frameSpacing: dt, options: .init(
            spectral: SpectralOptions(maxLag: 2000, window: .hann), correction: .harmonic, temperature: 1)))
    }

    /// At ħω = k_BT (208.5 cm⁻¹ at 300 K) the factors have closed forms.
    func testQuantumCorrectionFactors() {
        let t = 300.0
        let nu = Units.boltzmann * t / (Units.hbarEVfs * 2 * Double.pi * SpectralUnits.speedOfLight)
        XCTAssertEqual(nu, 208.5, accuracy: 0.1)
        XCTAssertEqual(InfraredSpectrum.Correction.none.factor(wavenumber: nu, temperature: t), 1)
        XCTAssertEqual(InfraredSpectrum.Correction.standard.factor(wavenumber: nu, temperature: t), 2 / (1 + exp(-1)), accuracy: 1e-12)
        XCTAssertEqual(InfraredSpectrum.Correction.harmonic.factor(wavenumber: nu, temperature: t), 1 / (1 - exp(-1)), accuracy: 1e-12)
        XCTAssertEqual(InfraredSpectrum.Correction.schofield.factor(wavenumber: nu, temperature: t), exp(0.5), accuracy: 1e-12)
        // Every factor tends to 1 in the classical limit ω → 0.
        for c in InfraredSpectrum.Correction.allCases {
            XCTAssertEqual(c.factor(wavenumber: 0, temperature: t), 1, accuracy: 1e-15)
            XCTAssertEqual(c.factor(wavenumber: 1e-3, temperature: t), 1, accuracy: 1e-5)
        }
    }
}
