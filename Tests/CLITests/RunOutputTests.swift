import Foundation
import XCTest
import Geometry
import Trajectory

/// Numbers the binary writes, read back and checked against what they must be: the log's
/// conserved quantity, the trajectory's per-frame energies and temperature, `analyze thermo`'s
/// statistics, and a frame spacing given together with a stride.
final class RunOutputTests: XCTestCase {
    /// Langevin argon, 400 steps of 2 fs, logged and stored every 5 steps with velocities.
    func langevinRun(_ dir: RunDirectory) throws {
        try argonDeck(dynamics: """
            integrator = "langevin"
            timestep_fs = 2.0
            steps = 400
            temperature_K = 150.0
            friction_per_ps = 20.0
            initial_temperature_K = 60
            seed = 13
            """, output: "log = \"log.csv\"\nlog_every = 5\ntrajectory = \"t.nc\"\ntrajectory_every = 5\nvelocities_every = 5")
            .write(toFile: dir.path("deck.toml"), atomically: true, encoding: .utf8)
        let result = try CLI.run(["run", dir.path("deck.toml"), "--quiet"])
        XCTAssertEqual(result.status, 0, result.stderr)
    }

    /// The log's rows as dictionaries of its columns.
    func logRows(_ path: String) throws -> [[String: Double]] {
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        let header = lines.first?.split(separator: ",").map(String.init) ?? []
        return lines.dropFirst().map { line in
            let cells = line.split(separator: ",", omittingEmptySubsequences: false)
            var row: [String: Double] = [:]
            for (name, cell) in zip(header, cells) { row[name] = Double(cell) }
            return row
        }
    }

    /// Eight atoms tethered by harmonic restraints and nothing else, under Bussi's thermostat at
    /// 300 K for 100 ps: restraints break momentum conservation, so all 24 velocity components
    /// are degrees of freedom and the mean kinetic energy is 24 · ½ k_B T = 0.310 eV. Counting
    /// 3N − 3 = 21, as without restraints, held it at 0.271 eV while the log read 300 K.
    func testBussiWithRestraintsThermostatsEveryComponent() throws {
        let dir = try RunDirectory(deck: "")
        defer { dir.remove() }
        let sites = (0..<8).map { Vec3(Double($0) * 3, Double($0 % 2) * 2, 0) }
        let atoms = sites.map { "C \($0.x) \($0.y) \($0.z)" }.joined(separator: "\n")
        try "8\nProperties=species:S:1:pos:R:3 pbc=\"F F F\"\n\(atoms)\n".write(toFile: dir.path("tethered.extxyz"), atomically: true, encoding: .utf8)
        let restraints = sites.enumerated().map { "[\($0.offset), 5.0, \($0.element.x), \($0.element.y), \($0.element.z)]" }.joined(separator: ", ")
        try """
            [system]
            structure = "tethered.extxyz"
            [potential]
            type = "harmonic"
            restraints = [\(restraints)]
            [dynamics]
            integrator = "bussi"
            timestep_fs = 1.0
            steps = 105000
            temperature_K = 300.0
            tau_fs = 100.0
            initial_temperature_K = 300
            seed = 5
            [output]
            log = "log.csv"
            log_every = 10
            """.write(toFile: dir.path("deck.toml"), atomically: true, encoding: .utf8)
        let result = try CLI.run(["run", dir.path("deck.toml"), "--quiet"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let rows = try logRows(dir.path("log.csv")).filter { ($0["step"] ?? 0) >= 5000 }
        XCTAssertEqual(rows.count, 10_001)
        let kinetic = rows.compactMap { $0["kinetic_eV"] }.reduce(0, +) / Double(rows.count)
        let temperature = rows.compactMap { $0["temperature_K"] }.reduce(0, +) / Double(rows.count)
        let canonical = 24 * 0.5 * Units.boltzmann * 300
        // About 1,000 independent samples of a kinetic energy whose relative spread is
        // sqrt(2/24) = 0.29: 1 % statistical error.
        XCTAssertEqual(kinetic, canonical, accuracy: 0.04 * canonical, "mean kinetic energy over 100 ps")
        XCTAssertEqual(temperature, 300, accuracy: 0.04 * 300, "mean logged temperature over 100 ps")
    }

    /// Heated from 60 K to 150 K, the total energy climbs while the thermostat's heat balances
    /// it: the conserved column stays put where the total does not. Writing the total in its
    /// place would pass every NVE test.
    func testTheLogsConservedQuantityBalancesTheThermostatsHeat() throws {
        let dir = try RunDirectory(deck: "")
        defer { dir.remove() }
        try langevinRun(dir)
        let rows = try logRows(dir.path("log.csv"))
        XCTAssertEqual(rows.count, 81)
        let total = rows.compactMap { $0["total_eV"] }, conserved = rows.compactMap { $0["conserved_eV"] }
        XCTAssertEqual(total.count, 81)
        XCTAssertEqual(conserved.count, 81)
        func spread(_ x: [Double]) -> Double { (x.max() ?? 0) - (x.min() ?? 0) }
        XCTAssertGreaterThan(spread(total), 0.5, "the run must heat up for this check")
        XCTAssertLessThan(spread(conserved), 0.01 * spread(total))
    }

    /// The trajectory's `kinetic_energy` is ½ Σ m v² of its own stored velocities; its
    /// `potential_energy` and `temperature` are the log's at the same step (3N degrees of freedom
    /// for Langevin).
    func testTrajectoryEnergiesAndTemperatureAreTheFramesOwn() throws {
        let dir = try RunDirectory(deck: "")
        defer { dir.remove() }
        try langevinRun(dir)
        let rows = try logRows(dir.path("log.csv"))
        let reader = try AmberTrajectoryReader(path: dir.path("t.nc"))
        XCTAssertEqual(reader.frameCount, rows.count)
        let mass = 39.948, kB = 8.617333262e-5
        for k in [0, 17, 80] {
            let frame = try reader.frame(k)
            let v = try XCTUnwrap(frame.velocities)
            // amu Å²/fs² to eV: 1 / 9.6485332e-3.
            let kinetic = 0.5 * mass * v.map { dot($0, $0) }.reduce(0, +) / 9.6485332e-3
            let stored = try XCTUnwrap(frame.extras["kinetic_energy"]?.first)
            XCTAssertEqual(stored, kinetic, accuracy: 1e-5 * kinetic, "frame \(k): kinetic energy")
            XCTAssertEqual(try XCTUnwrap(frame.extras["potential_energy"]?.first), try XCTUnwrap(rows[k]["potential_eV"]),
                           accuracy: 1e-8, "frame \(k): potential energy")
            XCTAssertEqual(try XCTUnwrap(frame.extras["temperature"]?.first), 2 * kinetic / (3 * 108 * kB),
                           accuracy: 1e-4 * kinetic / kB, "frame \(k): temperature")
        }
    }

    /// `analyze thermo` on a log of known values: rows from 500 fs on are 50, 51, … 99; their
    /// mean, sample standard deviation, and the standard error from 5 block means of 10.
    func testThermoStatisticsOfAKnownSeries() throws {
        let dir = try RunDirectory(deck: "")
        defer { dir.remove() }
        var log = "step,time_fs,potential_eV,kinetic_eV\n"
        for i in 0..<100 { log += "\(i),\(10 * i).0,\(i),1\n" }
        try log.write(toFile: dir.path("log.csv"), atomically: true, encoding: .utf8)
        let result = try CLI.run(["analyze", "thermo", dir.path("log.csv"), "--discard-fs", "500", "--blocks", "5",
                                  "--csv", dir.path("out.csv")])
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = try String(contentsOfFile: dir.path("out.csv"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.first, "quantity,count,mean,stderr,std,inefficiency,min,max")
        let cells = try XCTUnwrap(lines.first { $0.hasPrefix("potential_eV,") }).split(separator: ",").map(String.init)
        XCTAssertEqual(cells[1], "50")
        XCTAssertEqual(try XCTUnwrap(Double(cells[2])), 74.5, accuracy: 1e-9)
        // Block means 54.5 … 94.5: sample standard deviation √250, over √5.
        XCTAssertEqual(try XCTUnwrap(Double(cells[3])), (250.0 / 5).squareRoot(), accuracy: 1e-9)
        // Values 50 … 99: sample variance (50² − 1)/12 · 50/49.
        XCTAssertEqual(try XCTUnwrap(Double(cells[4])), (2499.0 / 12 * 50 / 49).squareRoot(), accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(Double(cells[6])), 50)
        XCTAssertEqual(try XCTUnwrap(Double(cells[7])), 99)
    }

    /// `--frame-dt-fs` is the spacing of the stored frames, so with `--stride 2` the frames
    /// used are twice as far apart: the same D as from the file's own times.
    func testAGivenFrameSpacingIsScaledByTheStride() throws {
        let dir = try RunDirectory(deck: "")
        defer { dir.remove() }
        try argonDeck(dynamics: "integrator = \"verlet\"\ntimestep_fs = 2\nsteps = 400\ninitial_temperature_K = 120\nseed = 4",
                      output: "log_every = 0\ntrajectory = \"t.nc\"\ntrajectory_every = 5")
            .write(toFile: dir.path("deck.toml"), atomically: true, encoding: .utf8)
        let run = try CLI.run(["run", dir.path("deck.toml"), "--quiet"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let trajectory = dir.path("t.nc")
        func msd(_ options: [String]) throws -> String {
            let r = try CLI.run(["analyze", "msd", trajectory, "--elements", "Ar*108", "--csv", dir.path("m.csv"), "--stride", "2"] + options)
            XCTAssertEqual(r.status, 0, r.stderr)
            return r.stdout.split(separator: "\n").first { $0.hasPrefix("D_total") }.map(String.init) ?? ""
        }
        let fromFile = try msd([]), given = try msd(["--frame-dt-fs", "10"])
        XCTAssertFalse(fromFile.isEmpty)
        XCTAssertEqual(given, fromFile)
        // The two agree also if both ignored the stride: the lags must step by 2 × 10 fs, and a
        // spacing given twice as long must halve D.
        let lags = try String(contentsOfFile: dir.path("m.csv"), encoding: .utf8).split(separator: "\n").dropFirst().prefix(3)
            .map { Double($0.split(separator: ",")[0]) }
        XCTAssertEqual(lags, [0, 20, 40])
        func coefficient(_ line: String) -> Double? { line.split(separator: " ").dropFirst(2).first.flatMap { Double($0) } }
        let d = try XCTUnwrap(coefficient(fromFile)), halved = try XCTUnwrap(coefficient(try msd(["--frame-dt-fs", "20"])))
        XCTAssertEqual(halved, d / 2, accuracy: 1e-4 * d)
    }

    /// Velocities given in the structure file lose their centre-of-mass drift, weighted by
    /// mass: an H moving at 0.01 Å/fs beside a resting O keeps its velocity relative to the O,
    /// and the pair's momentum becomes zero (an average unweighted by mass would leave −0.08).
    func testTheStructuresVelocitiesLoseTheirMassWeightedDrift() throws {
        let dir = try RunDirectory(deck: "")
        defer { dir.remove() }
        try "2\nProperties=species:S:1:pos:R:3:vel:R:3\nH 0 0 0 0.01 0 0\nO 3 0 0 0 0 0\n"
            .write(toFile: dir.path("pair.extxyz"), atomically: true, encoding: .utf8)
        try """
            [system]
            structure = "pair.extxyz"
            [potential]
            type = "harmonic"
            bonds = [[0, 1, 0.1, 3.0]]
            [dynamics]
            integrator = "verlet"
            timestep_fs = 1.0
            steps = 0
            remove_com_motion = true
            [output]
            log_every = 0
            trajectory = "t.nc"
            trajectory_every = 1
            velocities_every = 1
            """.write(toFile: dir.path("deck.toml"), atomically: true, encoding: .utf8)
        let result = try CLI.run(["run", dir.path("deck.toml"), "--quiet"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let v = try XCTUnwrap(try AmberTrajectoryReader(path: dir.path("t.nc")).frame(0).velocities)
        let momentum = 1.008 * v[0] + 15.999 * v[1]
        XCTAssertEqual(norm(momentum), 0, accuracy: 1e-8)
        XCTAssertEqual(v[0].x - v[1].x, 0.01, accuracy: 1e-8)
    }
}
