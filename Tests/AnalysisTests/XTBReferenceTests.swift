import XCTest
import Geometry
@testable import Analysis

/// VDOS and IR of the GFN2-xTB NVE references (../shared/data/xtb/*.nc, read with the
/// Trajectory NetCDF reader) against an independent numpy computation of the same
/// definitions (Scripts/reference_spectra.py, from the .npz, committed as Fixtures/*.csv).
final class XTBReferenceTests: XCTestCase {
    struct Case {
        let name: String
        let symbols: [String]
        let frameSpacing: Double
    }

    let cases = [
        Case(name: "ethanol", symbols: ["C", "C", "O"] + [String](repeating: "H", count: 6), frameSpacing: 1),
        Case(name: "water8", symbols: (0..<8).flatMap { _ in ["O", "H", "H"] }, frameSpacing: 2),
    ]

    /// Reads a fixture CSV: header names and columns.
    func readCSV(_ url: URL) throws -> [String: [Double]] {
        let text = try String(contentsOf: url, encoding: .utf8)
        var lines = text.split(separator: "\n")
        let header = lines.removeFirst().split(separator: ",").map(String.init)
        var columns = [String: [Double]]()
        for line in lines {
            let cells = line.split(separator: ",")
            XCTAssertEqual(cells.count, header.count)
            for (h, c) in zip(header, cells) { columns[h, default: []].append(Double(c) ?? .nan) }
        }
        return columns
    }

    /// Pointwise agreement: |s − r| ≤ tolerance·|r| wherever the reference is above 1e-4 of
    /// its maximum, and |s − r| ≤ tolerance·max|r| everywhere (the far tail of a windowed
    /// spectrum crosses zero, where a relative difference means nothing).
    func assertAgree(_ swift: [Double], _ reference: [Double], _ label: String, tolerance: Double = 1e-6) -> (Double, Double) {
        let top = reference.map(abs).max() ?? 1
        var worstRelative = 0.0, worstAbsolute = 0.0
        for k in reference.indices {
            let d = abs(swift[k] - reference[k])
            worstAbsolute = max(worstAbsolute, d / top)
            if abs(reference[k]) > 1e-4 * top { worstRelative = max(worstRelative, d / abs(reference[k])) }
        }
        XCTAssertLessThanOrEqual(worstRelative, tolerance, "\(label): worst relative difference")
        XCTAssertLessThanOrEqual(worstAbsolute, tolerance, "\(label): worst difference relative to the maximum")
        return (worstRelative, worstAbsolute)
    }

    func testSpectraAgreeWithIndependentNumpyComputation() throws {
        for c in cases {
            guard let path = SharedData.file("data/xtb/\(c.name)-gfn2-nve-300K.nc") else {
                throw XCTSkip("../shared/data/xtb absent")
            }
            let reference = try readCSV(TestFolder.url.appendingPathComponent("Fixtures/\(c.name)-nve-reference-spectra.csv"))
            let frequencies = try XCTUnwrap(reference["frequency_cm-1"])
            let data = try TrajectoryFile.load(path: path, request: LoadRequest(velocities: true, dipoles: true))
            let dt = try data.frameSpacing()
            XCTAssertEqual(dt, c.frameSpacing, accuracy: 1e-9)
            let maxLag = Int((1000 / dt).rounded())
            let spectral = SpectralOptions(maxLag: maxLag, window: .hann, zeroPadding: 4)
            let masses = try data.masses(symbols: c.symbols)
            let (velocities, frames) = try data.velocitySeries(fromPositions: false, frameSpacing: dt)
            let weighted = try VibrationalDensityOfStates.compute(velocities: velocities, atomCount: data.atomCount, frameSpacing: dt,
                                                                  masses: masses, symbols: c.symbols,
                                                                  options: .init(spectral: spectral)).spectrum
            let unweighted = try VibrationalDensityOfStates.compute(velocities: velocities, atomCount: data.atomCount, frameSpacing: dt,
                                                                    masses: masses, symbols: c.symbols,
                                                                    options: .init(spectral: spectral, massWeighted: false)).spectrum
            let ir = try InfraredSpectrum.compute(dipoles: try data.dipoleSeries(), frameSpacing: dt,
                                                  options: .init(spectral: spectral, correction: .harmonic, temperature: 300))
            XCTAssertEqual(frames, c.name == "ethanol" ? 20001 : 10001)
            let n = frequencies.count
            for k in [0, 1, n - 1] { XCTAssertEqual(weighted.frequencies[k], frequencies[k], accuracy: 1e-9 * frequencies[n - 1]) }
            var report: [String] = []
            func compare(_ s: Spectrum, _ curve: String, _ column: String) throws {
                let values = Array(try XCTUnwrap(s.curve(curve)?.values).prefix(n))
                let ref = try XCTUnwrap(reference[column], "column \(column)")
                let (rel, abs) = assertAgree(values, ref, "\(c.name) \(curve)")
                // Peaks on the same grid point (the checks of spectra.md ask for one bin).
                let top = values.indices.max { values[$0] < values[$1] } ?? 0
                let refTop = ref.indices.max { ref[$0] < ref[$1] } ?? 0
                XCTAssertEqual(top, refTop, "\(c.name) \(curve) highest peak")
                report.append(String(format: "%@: rel %.1e, abs/max %.1e, peak %.1f cm-1", curve, rel, abs, frequencies[top]))
            }
            try compare(weighted, "vdos_total", "vdos_total_per_cm-1")
            for e in Set(c.symbols) { try compare(weighted, "vdos_\(e)", "vdos_\(e)_per_cm-1") }
            try compare(unweighted, "vdos_total", "vdos_unweighted_total_per_cm-1")
            try compare(ir, "ir_classical", "ir_classical_e2A2fs-2_per_cm-1")
            try compare(ir, "ir_harmonic", "ir_harmonic_e2A2fs-2_per_cm-1")
            print("\(c.name): " + report.joined(separator: "; "))
        }
    }
}
