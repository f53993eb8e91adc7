import XCTest
@testable import Analysis

final class ThermoTests: XCTestCase {
    func testReadsCSVAndColumnLogs() throws {
        let csv = """
        step,time_fs,potential_eV,temperature_K,pressure_bar
        0,0.0,-10.5,300,
        10,5.0,-10.4,301.5,
        """
        let a = try ThermoLog.parse(csv)
        XCTAssertEqual(a.names, ["step", "time_fs", "potential_eV", "temperature_K", "pressure_bar"])
        XCTAssertEqual(try a.column("temperature_K"), [300, 301.5])
        XCTAssertTrue(try a.column("pressure_bar").allSatisfy { $0.isNaN })
        let columns = """
        #           step        time_fs   potential_eV  pressure_bar
                       0         0.0000          -10.5             -
                      10         5.0000          -10.4             -
        """
        let b = try ThermoLog.parse(columns)
        XCTAssertEqual(b.names, ["step", "time_fs", "potential_eV", "pressure_bar"])
        XCTAssertEqual(try b.column("potential_eV"), [-10.5, -10.4])
        XCTAssertThrowsError(try ThermoLog.parse("a,b\n1,2\n3\n", path: "x.log")) {
            XCTAssertTrue("\($0)".contains("x.log:3"), "\($0)")
        }
        XCTAssertThrowsError(try ThermoLog.parse("a,b\n1,zz\n", path: "x.log")) {
            XCTAssertTrue("\($0)".contains("'zz'"), "\($0)")
        }
        // Two runs' logs joined: the second restarts at an earlier time. Block averages and
        // --discard-fs took the rows in file order.
        let joined = "step,time_fs,potential_eV\n0,0.0,-1\n10,5.0,-2\n20,10.0,-3\n10,5.0,-2\n"
        XCTAssertThrowsError(try ThermoLog.parse(joined, path: "x.log")) {
            XCTAssertTrue("\($0)".contains("x.log:5") && "\($0)".contains("line 4"), "\($0)")
        }
        XCTAssertEqual(try ThermoLog.parse("step,potential_eV\n10,-1\n0,-2\n").rowCount, 2, "without time_fs, any order")
        // What `run` prints (kept with `run deck > run.out`): the title and setup lines came
        // first and the title was taken for the header.
        let console = """
        # title: Argon, Lennard-Jones, NVE
        # deck: /tmp/argon-lj.toml (toml), task: md

        #           step        time_fs   potential_eV  temperature_K
                       0         0.0000     -9.1000000        120.000
                      10        20.0000     -9.0500000        118.500
        """
        let c = try ThermoLog.parse(console, path: "run.out")
        XCTAssertEqual(c.names, ["step", "time_fs", "potential_eV", "temperature_K"])
        XCTAssertEqual(try c.column("temperature_K"), [120, 118.5])
        // A column named twice would be averaged as the first; a non-finite value would be left
        // out of the averages with only the count to show it.
        XCTAssertThrowsError(try ThermoLog.parse("step,energy,temp,energy\n0,1,2,3\n", path: "x.log")) {
            XCTAssertTrue("\($0)".contains("x.log:1: column 'energy' is named twice (columns 2 and 4)"), "\($0)")
        }
        for bad in ["nan", "inf", "-inf", "NaN"] {
            XCTAssertThrowsError(try ThermoLog.parse("step,energy\n0,1\n10,\(bad)\n", path: "x.log")) {
                XCTAssertTrue("\($0)".contains("x.log:3: column 'energy': '\(bad)' is not finite"), "\($0)")
            }
        }
    }

    /// An AR(1) series x(n) = φ x(n−1) + ε has var(mean) = σ²/N · (1+φ)/(1−φ) for large N:
    /// the block error must find that (uncorrelated data would give an error 4.4× too small).
    func testBlockErrorOfCorrelatedSeries() {
        var rng = SeededGenerator(seed: 9)
        let phi = 0.9, n = 200_000
        var x = [Double](repeating: 0, count: n)
        for i in 1..<n { x[i] = phi * x[i - 1] + rng.gaussian() }
        let sigma2 = 1 / (1 - phi * phi)
        let expectedError = (sigma2 / Double(n) * (1 + phi) / (1 - phi)).squareRoot()
        let a = ThermoAverage.compute(name: "x", values: x, blocks: 100)
        let error = a?.standardError ?? 0
        XCTAssertEqual(a?.standardDeviation ?? 0, sigma2.squareRoot(), accuracy: 0.03 * sigma2.squareRoot())
        // 100 blocks of 2000 (≫ the correlation time 19) estimate the error to about ±7 %.
        XCTAssertEqual(error, expectedError, accuracy: 0.2 * expectedError)
        XCTAssertEqual(a?.inefficiency ?? 0, (1 + phi) / (1 - phi), accuracy: 0.4 * (1 + phi) / (1 - phi))
        print("AR(1): block error \(error), expected \(expectedError); inefficiency \(a?.inefficiency ?? 0) (expected \((1 + phi) / (1 - phi)))")
    }
}
