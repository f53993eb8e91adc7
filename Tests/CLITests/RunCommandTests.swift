import Foundation
import XCTest
import Geometry
import Trajectory

/// A scratch directory holding the argon structure and a deck written by the test.
struct RunDirectory {
    let url: URL

    init(deck: String) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: CLI.repositoryRoot.appendingPathComponent("Examples/argon/argon108.extxyz"),
                                         to: url.appendingPathComponent("argon108.extxyz"))
        try deck.write(to: url.appendingPathComponent("deck.toml"), atomically: true, encoding: .utf8)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// A deck for 108 Ar atoms with the given dynamics table.
func argonDeck(dynamics: String, output: String) -> String {
    """
    title = "argon test"
    [system]
    structure = "argon108.extxyz"
    [potential]
    type = "lj"
    epsilon_eV = 0.0104
    sigma_A = 3.4
    cutoff_A = 8.5
    skin_A = 0.5
    [dynamics]
    \(dynamics)
    [output]
    \(output)
    """
}

final class ExactRestartTests: XCTestCase {
    /// Issue 3, point 3: N steps in one go, and N/2 steps then a continuation from the
    /// restart, end in bitwise-identical positions and velocities (and trajectories).
    static func checkExactContinuation(dynamics: String) throws {
        let output = """
        log_every = 0
        trajectory = "out/t.nc"
        trajectory_every = 25
        velocities_every = 25
        restart = "out/r.ncrst"
        restart_every = 200
        """
        let dir = try RunDirectory(deck: argonDeck(dynamics: dynamics, output: output))
        defer { dir.remove() }
        let deck = dir.path("deck.toml")

        var result = try CLI.run(["run", deck, "--quiet"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let full = try AmberRestart.read(path: dir.path("out/r.ncrst"))
        let fullTrajectory = try Data(contentsOf: URL(fileURLWithPath: dir.path("out/t.nc")))

        try FileManager.default.removeItem(atPath: dir.path("out"))
        result = try CLI.run(["run", deck, "--quiet", "--steps", "200"])
        XCTAssertEqual(result.status, 0, result.stderr)
        try FileManager.default.copyItem(atPath: dir.path("out/r.ncrst"), toPath: dir.path("half.ncrst"))
        XCTAssertEqual(try AmberRestart.read(path: dir.path("half.ncrst")).step, 200)
        result = try CLI.run(["run", deck, "--quiet", "--restart", dir.path("half.ncrst")])
        XCTAssertEqual(result.status, 0, result.stderr)
        let continued = try AmberRestart.read(path: dir.path("out/r.ncrst"))

        XCTAssertEqual(full.step, 400)
        XCTAssertEqual(continued.step, 400)
        XCTAssertEqual(full.time, continued.time)
        XCTAssertEqual(full.positions, continued.positions, "positions differ after the continuation")
        XCTAssertEqual(full.velocities, continued.velocities, "velocities differ after the continuation")
        XCTAssertEqual(full.state, continued.state, "random generator or thermostat state differ")
        // The continuation kept frames up to step 200 and appended the rest.
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.path("out/t.nc"))), fullTrajectory)
        // The run really moved: a trivially identical pair of runs would prove nothing.
        let start = try StructureFile.readFirst(path: dir.path("argon108.extxyz"))
        XCTAssertGreaterThan(zip(full.positions, start.positions).map { norm($0 - $1) }.max() ?? 0, 0.05)

        // Writing restarts changes nothing in the run: every 7 steps instead of every 200.
        try FileManager.default.removeItem(atPath: dir.path("out"))
        try String(contentsOfFile: deck, encoding: .utf8).replacingOccurrences(of: "restart_every = 200", with: "restart_every = 7")
            .write(toFile: deck, atomically: true, encoding: .utf8)
        result = try CLI.run(["run", deck, "--quiet"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let often = try AmberRestart.read(path: dir.path("out/r.ncrst"))
        XCTAssertEqual(often.step, 400)
        XCTAssertEqual(often.positions, full.positions, "restart_every moved the trajectory")
        XCTAssertEqual(often.velocities, full.velocities, "restart_every moved the trajectory")
    }

    func testLangevinContinuesBitForBit() throws {
        try Self.checkExactContinuation(dynamics: """
        integrator = "langevin"
        timestep_fs = 2.0
        steps = 400
        temperature_K = 150.0
        friction_per_ps = 5.0
        initial_temperature_K = 120
        seed = 11
        """)
    }

    /// `seed = -1` under `--quiet` printed nothing: the seed, the only way to repeat the run,
    /// was lost. It goes to standard error, and a run with it gives the same log.
    func testASeedFromTheClockIsPrintedUnderQuietAndRepeatsTheRun() throws {
        let dir = try RunDirectory(deck: argonDeck(dynamics: """
        integrator = "langevin"
        timestep_fs = 2.0
        steps = 40
        temperature_K = 150.0
        friction_per_ps = 5.0
        initial_temperature_K = 120
        seed = -1
        """, output: "log = \"a.csv\"\nlog_every = 10"))
        defer { dir.remove() }
        let drawn = try CLI.run(["run", dir.path("deck.toml"), "--quiet"])
        XCTAssertEqual(drawn.status, 0, drawn.stderr)
        XCTAssertTrue(drawn.stdout.isEmpty, drawn.stdout)
        let prefix = "# seed drawn from the clock: "
        let line = try XCTUnwrap(drawn.stderr.split(separator: "\n").first { $0.hasPrefix(prefix) }, drawn.stderr)
        let seed = try XCTUnwrap(UInt64(line.dropFirst(prefix.count)), String(line))
        let again = try CLI.run(["run", dir.path("deck.toml"), "--quiet", "--set", "dynamics.seed=\(seed)",
                                 "--set", "output.log=\"\(dir.path("b.csv"))\""])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertFalse(again.stderr.contains(prefix), again.stderr)
        let first = try String(contentsOfFile: dir.path("a.csv"), encoding: .utf8)
        XCTAssertEqual(first.split(separator: "\n").count, 6)
        XCTAssertEqual(try String(contentsOfFile: dir.path("b.csv"), encoding: .utf8), first)
    }

    func testBussiContinuesBitForBit() throws {
        try Self.checkExactContinuation(dynamics: """
        integrator = "bussi"
        timestep_fs = 2.0
        steps = 400
        temperature_K = 150.0
        tau_fs = 100
        initial_temperature_K = 120
        seed = 12
        """)
    }
}

/// `[dynamics] barostat = "montecarlo"` through `eninet-md run`: exact continuation, the log's
/// volume and density, the trajectory's cell per frame, and a structure it cannot apply to.
final class BarostatRunTests: XCTestCase {
    private let npt = """
    integrator = "langevin"
    timestep_fs = 4.0
    steps = 400
    temperature_K = 60.0
    friction_per_ps = 5.0
    initial_temperature_K = 60
    seed = 13
    barostat = "montecarlo"
    pressure_bar = 3000
    barostat_every = 4
    """

    func testAMonteCarloBarostatContinuesBitForBit() throws {
        try ExactRestartTests.checkExactContinuation(dynamics: npt)
        try ExactRestartTests.checkExactContinuation(dynamics: npt + "\nbarostat_coupling = \"anisotropic\"")
    }

    /// The log gains volume_A3 and density_g_cm3; each trajectory frame carries the cell of its
    /// step (the log's volume), and a log continued from a restart reads as the uninterrupted one.
    func testTheLogAndTrajectoryFollowTheCell() throws {
        let output = """
        log = "out/npt.csv"
        log_every = 20
        trajectory = "out/npt.nc"
        trajectory_every = 20
        restart = "out/npt.ncrst"
        """
        let dir = try RunDirectory(deck: argonDeck(dynamics: npt, output: output))
        defer { dir.remove() }
        let deck = dir.path("deck.toml")
        var result = try CLI.run(["run", deck])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("# barostat: "), result.stdout)
        let log = try String(contentsOfFile: dir.path("out/npt.csv"), encoding: .utf8)
        let rows = log.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        XCTAssertEqual(rows[0], ["step", "time_fs", "potential_eV", "kinetic_eV", "total_eV", "temperature_K",
                                 "pressure_bar", "conserved_eV", "volume_A3", "density_g_cm3"])
        XCTAssertEqual(rows.count, 22)
        let volumes = rows.dropFirst().compactMap { Double($0[8]) }
        let densities = rows.dropFirst().compactMap { Double($0[9]) }
        XCTAssertEqual(volumes.count, 21)
        // 108 argon atoms: 108 · 39.948 amu · 1.66054 g/cm3 per amu/A3.
        for (v, d) in zip(volumes, densities) { XCTAssertEqual(d * v, 108 * 39.948 * 1.66053906660, accuracy: 1e-4 * d * v) }
        XCTAssertLessThan(volumes.last ?? 0, (volumes.first ?? 0) - 30, "3 kbar should compress the crystal: \(volumes)")

        let reader = try AmberTrajectoryReader(path: dir.path("out/npt.nc"))
        defer { try? reader.close() }
        for (index, volume) in volumes.enumerated() {
            let cell = try XCTUnwrap(try reader.cellOfFrame(index))
            XCTAssertEqual(cell.volume, volume, accuracy: 1e-6 * volume, "frame \(index)")
        }

        // A continuation from step 200 rewrites the rows after it exactly.
        try FileManager.default.copyItem(atPath: dir.path("out/npt.csv"), toPath: dir.path("whole.csv"))
        try FileManager.default.removeItem(atPath: dir.path("out"))
        result = try CLI.run(["run", deck, "--quiet", "--steps", "200"])
        XCTAssertEqual(result.status, 0, result.stderr)
        result = try CLI.run(["run", deck, "--quiet", "--restart", dir.path("out/npt.ncrst")])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(try String(contentsOfFile: dir.path("out/npt.csv"), encoding: .utf8), log)
    }

    /// A run at constant volume continues a barostat run's restart and log: the log keeps its
    /// volume columns, and the volume stays where the barostat left it.
    func testAConstantVolumeRunContinuesABarostatRunsLog() throws {
        let output = "log = \"out/npt.csv\"\nlog_every = 50\nrestart = \"out/npt.ncrst\""
        let dir = try RunDirectory(deck: argonDeck(dynamics: npt, output: output))
        defer { dir.remove() }
        var result = try CLI.run(["run", dir.path("deck.toml"), "--quiet", "--steps", "200"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let nvt = npt.split(separator: "\n").filter { !$0.hasPrefix("barostat") && !$0.hasPrefix("pressure_bar") }.joined(separator: "\n")
        try argonDeck(dynamics: nvt, output: output).write(toFile: dir.path("nvt.toml"), atomically: true, encoding: .utf8)
        result = try CLI.run(["run", dir.path("nvt.toml"), "--quiet", "--restart", dir.path("out/npt.ncrst")])
        XCTAssertEqual(result.status, 0, result.stderr)
        let rows = try String(contentsOfFile: dir.path("out/npt.csv"), encoding: .utf8).split(separator: "\n")
            .map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        XCTAssertEqual(rows.count, 10)
        XCTAssertTrue(rows.allSatisfy { $0.count == 10 }, "\(rows)")
        let volumes = rows.dropFirst().compactMap { Double($0[8]) }
        XCTAssertEqual(volumes.count, 9)
        XCTAssertEqual(Set(volumes[4...]).count, 1, "constant volume after step 200: \(volumes)")
        XCTAssertNotEqual(volumes[0], volumes[4])
    }

    /// Tethers' anchors do not move with the cell, while their virial counts them as moving:
    /// the logged pressure would miss the target.
    func testHarmonicRestraintsAreRefusedWithABarostat() throws {
        let potential = """
        [potential]
        type = "sum"
        terms = [{ type = "lj", epsilon_eV = 0.0104, sigma_A = 3.4, cutoff_A = 8.5 },
                 { type = "harmonic", restraints = [[0, 0.05, 0.0, 0.0, 0.0]] }]
        """
        let deck = argonDeck(dynamics: npt, output: "log_every = 0")
        let start = try XCTUnwrap(deck.range(of: "[potential]")), end = try XCTUnwrap(deck.range(of: "[dynamics]"))
        let dir = try RunDirectory(deck: deck.replacingCharacters(in: start.lowerBound..<end.lowerBound, with: potential + "\n"))
        defer { dir.remove() }
        let result = try CLI.run(["run", dir.path("deck.toml")])
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("deck.toml: dynamics.barostat cannot be combined with harmonic restraints"), result.stderr)
    }

    func testAStructureWithoutAFullyPeriodicCellIsRefused() throws {
        let dir = try RunDirectory(deck: argonDeck(dynamics: npt, output: "log_every = 0").replacingOccurrences(of: "argon108.extxyz", with: "pair.xyz"))
        defer { dir.remove() }
        try "2\npair\nAr 0 0 0\nAr 0 0 3.8\n".write(toFile: dir.path("pair.xyz"), atomically: true, encoding: .utf8)
        let result = try CLI.run(["run", dir.path("deck.toml")])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("pair.xyz: dynamics.barostat needs a cell periodic along a, b and c"), result.stderr)

        // Anisotropic coupling wants a along x and b in the xy plane, as OpenMM and AMBER do.
        try "2\nLattice=\"9 3 0 0 10 0 0 0 10\" Properties=species:S:1:pos:R:3 pbc=\"T T T\"\nAr 0 0 0\nAr 0 0 3.8\n"
            .write(toFile: dir.path("pair.xyz"), atomically: true, encoding: .utf8)
        let turned = try CLI.run(["run", dir.path("deck.toml"), "--set", "dynamics.barostat_coupling=\"anisotropic\""])
        XCTAssertEqual(turned.status, 1)
        XCTAssertTrue(turned.stderr.contains("pair.xyz: dynamics.barostat_coupling = \"anisotropic\" needs the cell in the standard orientation"), turned.stderr)
    }
}

final class RestartListPositionTests: XCTestCase {
    /// Argon under velocity Verlet (2 fs, from 100 K, seed 1) for `steps` steps with `output`,
    /// run once: the directory holds the outputs a continuation starts from.
    private func verletArgonRun(steps: Int, output: String) throws -> RunDirectory {
        let dir = try RunDirectory(deck: argonDeck(dynamics: """
        integrator = "verlet"
        timestep_fs = 2.0
        steps = \(steps)
        initial_temperature_K = 100
        seed = 1
        """, output: output))
        let result = try CLI.run(["run", dir.path("deck.toml"), "--quiet"])
        XCTAssertEqual(result.status, 0, result.stderr)
        return dir
    }

    /// Unusable neighbour-list positions in a restart (here one a thousand orders of magnitude
    /// away) are a one-line error naming the restart file and what in it is wrong.
    func testUnusableListPositionsAreANamedError() throws {
        let dir = try verletArgonRun(steps: 20, output: "log_every = 0\nrestart = \"r.ncrst\"")
        defer { dir.remove() }
        var restart = try AmberRestart.read(path: dir.path("r.ncrst"))
        XCTAssertEqual(restart.listAnchors.count, 1)
        restart.listAnchors[0][0].x = 1e300
        try restart.write(to: dir.path("bad.ncrst"))
        let result = try CLI.run(["run", dir.path("deck.toml"), "--quiet", "--restart", dir.path("bad.ncrst"), "--steps", "30"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains(dir.path("bad.ncrst") + ": cannot restore checkpoint: its neighbour-list positions:"), result.stderr)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
    }

    /// Restarts a run cannot honestly continue from, found by fuzzing: each ran on with status 0
    /// (NaN times in every output; zero velocities; the periodic argon continued as a molecule).
    /// Each is refused before an output is touched.
    func testRestartsWithoutATimeVelocitiesOrTheRunsPeriodicityAreRefused() throws {
        let dir = try verletArgonRun(steps: 20, output: "log = \"log.csv\"\nlog_every = 10\nrestart = \"r.ncrst\"")
        defer { dir.remove() }
        var result: CLI.Result
        let good = try AmberRestart.read(path: dir.path("r.ncrst"))
        let log = try String(contentsOfFile: dir.path("log.csv"), encoding: .utf8)
        var noTime = good, noVelocities = good, molecule = good
        noTime.time = .nan
        noVelocities.velocities = nil
        molecule.cell = nil
        let cases: [(String, AmberRestart, String)] = [
            ("nan-time.ncrst", noTime, "restart time is nan fs"),
            ("no-velocities.ncrst", noVelocities, "restart holds no velocities"),
            ("molecule.ncrst", molecule, "restart is periodic along \"F F F\" (x y z), the deck's structure along \"T T T\""),
        ]
        for (name, restart, message) in cases {
            try restart.write(to: dir.path(name))
            result = try CLI.run(["run", dir.path("deck.toml"), "--quiet", "--restart", dir.path(name), "--steps", "30"])
            XCTAssertEqual(result.status, 1, "\(name): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(dir.path(name) + ": " + message), "\(name): \(result.stderr)")
            XCTAssertEqual(try String(contentsOfFile: dir.path("log.csv"), encoding: .utf8), log, "\(name) changed the log")
        }
        result = try CLI.run(["run", dir.path("deck.toml"), "--quiet", "--restart", dir.path("r.ncrst"), "--steps", "30"])
        XCTAssertEqual(result.status, 0, result.stderr)
    }

    /// Outputs a continuation cannot honestly extend, found by fuzzing, each appended to with
    /// status 0: a trajectory that ends before the restart's step (a gap that analyses then
    /// refused as uneven spacing), a log of another program or an empty one. Each is refused
    /// before either output is changed.
    func testOutputsThatDoNotLeadUpToTheRestartAreRefusedBeforeAnyChanges() throws {
        let dir = try verletArgonRun(steps: 10, output: """
        log = "log.csv"
        log_every = 5
        trajectory = "t.nc"
        trajectory_every = 5
        restart = "r.ncrst"
        """)
        defer { dir.remove() }
        let early = try Data(contentsOf: URL(fileURLWithPath: dir.path("t.nc")))
        var result = try CLI.run(["run", dir.path("deck.toml"), "--quiet", "--steps", "20"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let log = try Data(contentsOf: URL(fileURLWithPath: dir.path("log.csv")))
        let trajectory = try Data(contentsOf: URL(fileURLWithPath: dir.path("t.nc")))
        func refuses(_ message: String, _ extra: [String] = [], line: UInt = #line) throws {
            let result = try CLI.run(["run", dir.path("deck.toml"), "--quiet", "--restart", dir.path("r.ncrst"), "--steps", "30"] + extra)
            XCTAssertEqual(result.status, 1, result.stderr, line: line)
            XCTAssertTrue(result.stderr.contains(message), result.stderr, line: line)
        }
        // The trajectory of the 10-step run beside the restart of the 20-step one.
        try early.write(to: URL(fileURLWithPath: dir.path("t.nc")))
        try refuses(dir.path("t.nc") + ": its frames end at 20.0 fs, but the restart is at step 20 (40.0 fs): the frames between are missing")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.path("t.nc"))), early)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.path("log.csv"))), log)
        try trajectory.write(to: URL(fileURLWithPath: dir.path("t.nc")))
        // Another stride than the trajectory's: refused for its spacing. It was refused as
        // "its frames end at 16.0 fs", the end counted at the new spacing (they end at 40 fs).
        try refuses(dir.path("t.nc") + ": its frames are not 4.0 fs apart as this run writes them (output.trajectory_every; frame 1 is at 10.0 fs)",
                    ["--set", "output.trajectory_every=2"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.path("t.nc"))), trajectory)
        for (content, found) in [("a,b\n1,2\n", "'a,b'"), ("", "nothing (an empty file)")] {
            try content.write(toFile: dir.path("log.csv"), atomically: true, encoding: .utf8)
            try refuses(dir.path("log.csv") + ": the log to continue starts with \(found), not the header this run writes")
            XCTAssertEqual(try String(contentsOfFile: dir.path("log.csv"), encoding: .utf8), content)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.path("t.nc"))), trajectory, "the trajectory was cut before the log was refused")
        }
        try log.write(to: URL(fileURLWithPath: dir.path("log.csv")))
        result = try CLI.run(["run", dir.path("deck.toml"), "--quiet", "--restart", dir.path("r.ncrst"), "--steps", "30"])
        XCTAssertEqual(result.status, 0, result.stderr)
    }
}

final class InterruptedRunTests: XCTestCase {
    let longRun = """
    integrator = "langevin"
    timestep_fs = 2.0
    steps = 100000000
    temperature_K = 120.0
    friction_per_ps = 1.0
    initial_temperature_K = 120
    seed = 5
    """
    let output = """
    log_every = 0
    trajectory = "out/t.nc"
    trajectory_every = 20
    velocities_every = 20
    restart = "out/r.ncrst"
    restart_every = 100000
    """

    func waitForFrames(_ path: String, atLeast frames: Int, process: Process) throws {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && process.isRunning {
            if let reader = try? AmberTrajectoryReader(path: path), reader.frameCount >= frames { return }
            usleep(20_000)
        }
        XCTFail("the run wrote fewer than \(frames) frames within 60 s")
    }

    /// Issue 3, point 4: SIGKILL leaves a trajectory that opens with every frame written so
    /// far, equal to the same frames of an uninterrupted run.
    func testSigkillLeavesReadableTrajectory() throws {
        let dir = try RunDirectory(deck: argonDeck(dynamics: longRun, output: output))
        defer { dir.remove() }
        let process = try CLI.start(["run", dir.path("deck.toml"), "--quiet"])
        try waitForFrames(dir.path("out/t.nc"), atLeast: 5, process: process)
        kill(process.processIdentifier, SIGKILL)
        CLI.wait(for: process)
        XCTAssertEqual(process.terminationReason, .uncaughtSignal)

        let killed = try AmberTrajectoryReader(path: dir.path("out/t.nc"))
        let frames = killed.frameCount
        XCTAssertGreaterThanOrEqual(frames, 5)
        // The same run, stopped cleanly after those frames, must agree frame by frame.
        try FileManager.default.moveItem(atPath: dir.path("out/t.nc"), toPath: dir.path("killed.nc"))
        let result = try CLI.run(["run", dir.path("deck.toml"), "--quiet", "--steps", String((frames - 1) * 20)])
        XCTAssertEqual(result.status, 0, result.stderr)
        let reference = try AmberTrajectoryReader(path: dir.path("out/t.nc"))
        let reread = try AmberTrajectoryReader(path: dir.path("killed.nc"))
        XCTAssertEqual(reference.frameCount, frames)
        for i in 0..<frames {
            let a = try reread.frame(i), b = try reference.frame(i)
            XCTAssertEqual(a.positions, b.positions, "frame \(i)")
            XCTAssertEqual(a.velocities, b.velocities, "frame \(i)")
        }
    }

    /// SIGTERM stops at the end of a step with a non-zero exit and a restart that continues.
    func testSigtermWritesRestartThatContinues() throws {
        let dir = try RunDirectory(deck: argonDeck(dynamics: longRun, output: output))
        defer { dir.remove() }
        let errURL = dir.url.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let err = try FileHandle(forWritingTo: errURL)
        let process = try CLI.start(["run", dir.path("deck.toml"), "--quiet"], stderr: err)
        try waitForFrames(dir.path("out/t.nc"), atLeast: 3, process: process)
        kill(process.processIdentifier, SIGTERM)
        CLI.wait(for: process)
        try err.close()
        XCTAssertEqual(process.terminationReason, .exit, "the run must exit, not die of the signal")
        XCTAssertNotEqual(process.terminationStatus, 0)
        let message = try String(contentsOf: errURL, encoding: .utf8)
        XCTAssertTrue(message.contains("SIGTERM"), message)

        let restart = try AmberRestart.read(path: dir.path("out/r.ncrst"))
        let stoppedAt = try XCTUnwrap(restart.step)
        XCTAssertGreaterThan(stoppedAt, 0)
        let trajectory = try AmberTrajectoryReader(path: dir.path("out/t.nc"))
        let last = try trajectory.frame(trajectory.frameCount - 1)
        XCTAssertEqual(last.positions, restart.positions.map { Vec3(Double(Float($0.x)), Double(Float($0.y)), Double(Float($0.z))) },
                       "the trajectory's last frame is the stopped state")

        XCTAssertEqual(restart.listAnchors.count, 1, "the Lennard-Jones list's build positions")
        var result = try CLI.run(["run", dir.path("deck.toml"), "--quiet", "--restart", dir.path("out/r.ncrst"),
                                  "--steps", String(stoppedAt + 50)])
        XCTAssertEqual(result.status, 0, result.stderr)
        let continued = try AmberRestart.read(path: dir.path("out/r.ncrst"))
        XCTAssertEqual(continued.step, stoppedAt + 50)

        // The signal came at a step of its own choosing, not where the run rebuilt its list:
        // the continuation is still the uninterrupted run, bit for bit.
        try FileManager.default.removeItem(atPath: dir.path("out"))
        result = try CLI.run(["run", dir.path("deck.toml"), "--quiet", "--steps", String(stoppedAt + 50)])
        XCTAssertEqual(result.status, 0, result.stderr)
        let uninterrupted = try AmberRestart.read(path: dir.path("out/r.ncrst"))
        XCTAssertEqual(uninterrupted.step, stoppedAt + 50)
        XCTAssertEqual(continued.positions, uninterrupted.positions)
        XCTAssertEqual(continued.velocities, uninterrupted.velocities)
        XCTAssertEqual(continued.state, uninterrupted.state)
    }
}

final class DeckErrorTests: XCTestCase {
    /// Issue 2, point 6: every broken deck of the corpus gives a one-line error naming the
    /// problem and a non-zero exit through the real binary; never a crash.
    func testBadDeckCorpusThroughTheCLI() throws {
        let corpus = CLI.repositoryRoot.appendingPathComponent("Tests/DeckTests/Fixtures/bad")
        let manifest = try String(contentsOf: corpus.appendingPathComponent("expected.tsv"), encoding: .utf8)
        var checked = 0
        for line in manifest.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: "\t", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            let result = try CLI.run(["run", corpus.appendingPathComponent(parts[0]).path, "--quiet"], timeout: 30)
            XCTAssertFalse(result.terminatedBySignal, "\(parts[0]) crashed")
            XCTAssertNotEqual(result.status, 0, "\(parts[0]) was accepted")
            let lines = result.stderr.split(separator: "\n").filter { !$0.contains("warning:") }
            XCTAssertEqual(lines.count, 1, "\(parts[0]): expected a one-line error, got:\n\(result.stderr)")
            XCTAssertTrue(result.stderr.contains(parts[1]), "\(parts[0]): error does not contain '\(parts[1])':\n\(result.stderr)")
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 30)
    }

    func testMissingDeckAndBadRestartAreOneLineErrors() throws {
        var result = try CLI.run(["run", "/nonexistent/deck.toml"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("/nonexistent/deck.toml"), result.stderr)

        let dir = try RunDirectory(deck: argonDeck(dynamics: "integrator = \"verlet\"\ntimestep_fs = 1.0\nsteps = 10", output: "log_every = 0"))
        defer { dir.remove() }
        try "not a netcdf file".write(toFile: dir.path("bad.ncrst"), atomically: true, encoding: .utf8)
        result = try CLI.run(["run", dir.path("deck.toml"), "--restart", dir.path("bad.ncrst")])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertFalse(result.terminatedBySignal)
        XCTAssertTrue(result.stderr.contains("bad.ncrst"), result.stderr)
    }

    /// `minimize` on a deck written for it (no `task`, no `[dynamics]`, as deck.md allows): an
    /// argon dimer 4 Å apart relaxes to the Lennard-Jones minimum 2^(1/6) σ. It used to stop
    /// with "missing required table [dynamics]".
    func testMinimizeNeedsNoDynamicsTable() throws {
        let dir = try RunDirectory(deck: """
            title = "dimer"
            [system]
            structure = "dimer.xyz"
            [potential]
            type = "lj"
            epsilon_eV = 0.0104
            sigma_A = 3.4
            cutoff_A = 8.5
            [minimize]
            fmax_eV_per_A = 1e-6
            [output]
            final_structure = "final.extxyz"
            """)
        defer { dir.remove() }
        try "2\n\nAr 0 0 0\nAr 4.0 0 0\n".write(toFile: dir.path("dimer.xyz"), atomically: true, encoding: .utf8)
        let result = try CLI.run(["minimize", dir.path("deck.toml")])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("converged after"), result.stdout)
        let final = try StructureFile.readFirst(path: dir.path("final.extxyz"))
        XCTAssertEqual(norm(final.positions[1] - final.positions[0]), pow(2, 1.0 / 6) * 3.4, accuracy: 1e-3)
        // The forces at the minimum come with the energy (they were left out), equal and opposite.
        let forces = try XCTUnwrap(final.forces)
        XCTAssertEqual(forces.count, 2)
        XCTAssertLessThan(forces.map(norm).max() ?? 1, 1e-6)
        XCTAssertEqual(norm(forces[0] + forces[1]), 0, accuracy: 1e-15)
        XCTAssertNotNil(final.info["energy"])
        // Stopped after two steps, far from the minimum: the file's largest force is the fmax printed.
        let early = try CLI.run(["minimize", dir.path("deck.toml"), "--set", "minimize.max_steps=2"])
        XCTAssertEqual(early.status, 1, early.stderr)
        let line = try XCTUnwrap(early.stdout.split(separator: "\n").first { $0.hasPrefix("not converged after 2 steps") }, early.stdout)
        let printed = try XCTUnwrap(Double(try XCTUnwrap(line.split(separator: " ").dropLast().last)))
        let stopped = try XCTUnwrap(try StructureFile.readFirst(path: dir.path("final.extxyz")).forces)
        XCTAssertGreaterThan(printed, 1e-3)
        XCTAssertEqual(stopped.map(norm).max() ?? 0, printed, accuracy: 1e-3 * printed)
    }

    /// The argon crystal shrunk fifty-fold (a 0.32 Å cell): the cutoff reaches about 200,000 images.
    /// Found by fuzzing: such a cell crashed the neighbour list. Now one line, naming the file.
    func testACellFarSmallerThanTheCutoffIsAOneLineError() throws {
        let dir = try RunDirectory(deck: argonDeck(dynamics: "integrator = \"verlet\"\ntimestep_fs = 1.0\nsteps = 10", output: "log_every = 0"))
        defer { dir.remove() }
        let crystal = try StructureFile.readFirst(path: dir.path("argon108.extxyz"))
        var shrunk = crystal
        shrunk.positions = crystal.positions.map { $0 * 0.02 }
        let cell = try XCTUnwrap(crystal.cell)
        shrunk.cell = try Cell(matrix: 0.02 * cell.matrix, pbc: .all)
        try StructureFile.write([shrunk], to: dir.path("argon108.extxyz"))
        let result = try CLI.run(["run", dir.path("deck.toml")])
        XCTAssertFalse(result.terminatedBySignal, result.stderr)
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("argon108.extxyz: cell too small for the cutoff"), result.stderr)
    }
}

final class ExampleDeckTests: XCTestCase {
    /// Issue 2, point 7: the README's example deck runs and conserves energy.
    func testArgonExampleRunsAndConservesEnergy() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("example-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let deck = CLI.repositoryRoot.appendingPathComponent("Examples/argon/argon-lj.toml").path
        let result = try CLI.run(["run", deck, "--steps", "1000",
                                  "--set", "output.log=\"\(dir.path)/log.csv\"",
                                  "--set", "output.trajectory=\"\(dir.path)/t.nc\"",
                                  "--set", "output.restart=\"\(dir.path)/r.ncrst\"",
                                  "--set", "output.final_structure=\"\(dir.path)/final.extxyz\""])
        XCTAssertEqual(result.status, 0, result.stderr)
        let trajectory = try AmberTrajectoryReader(path: dir.appendingPathComponent("t.nc").path)
        XCTAssertEqual(trajectory.frameCount, 21)
        XCTAssertTrue(trajectory.hasVelocities && trajectory.hasCell)
        // NVE: total energy from the log's first and last rows agrees to 1e-4 eV (108 atoms, 2 ps).
        let log = try String(contentsOf: dir.appendingPathComponent("log.csv"), encoding: .utf8)
        let rows = log.split(separator: "\n").filter { $0.first?.isNumber ?? false }
        let header = log.split(separator: "\n").first { !($0.first?.isNumber ?? true) } ?? ""
        let column = header.split(separator: ",").firstIndex { $0.hasPrefix("total") }
        let totals = rows.compactMap { row -> Double? in column.flatMap { Double(row.split(separator: ",")[$0]) } }
        XCTAssertEqual(totals.count, 5, log)
        XCTAssertLessThan(abs((totals.last ?? 0) - (totals.first ?? 1)), 1e-4)
        let final = try StructureFile.readFirst(path: dir.appendingPathComponent("final.extxyz").path)
        XCTAssertEqual(final.count, 108)
        XCTAssertNotNil(final.velocities)
    }
}

/// The deck's thermostat constants reach the integrators in the right units: a cold crystal
/// coupled with γ = 10 ps⁻¹ (or τ = 50 fs) reaches the target temperature within 0.5 ps, and
/// one coupled 10× more weakly is still far from it. (A unit slip of 1000 in either would
/// leave both cold or both hot.)
final class ThermostatCouplingTests: XCTestCase {
    /// Mean temperature over the last 0.2 ps of a 0.5 ps run from 1 K towards 120 K.
    func finalTemperature(_ coupling: String) throws -> Double {
        let dynamics = """
        \(coupling)
        timestep_fs = 2.0
        steps = 250
        temperature_K = 120.0
        initial_temperature_K = 1
        seed = 3
        """
        let dir = try RunDirectory(deck: argonDeck(dynamics: dynamics, output: "log = \"log.csv\"\nlog_every = 10"))
        defer { dir.remove() }
        let result = try CLI.run(["run", dir.path("deck.toml"), "--quiet"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = try String(contentsOfFile: dir.path("log.csv"), encoding: .utf8).split(separator: "\n")
        let column = try XCTUnwrap(lines.first?.split(separator: ",").firstIndex { $0.hasPrefix("temperature") })
        let temperatures = lines.dropFirst().compactMap { Double($0.split(separator: ",")[column]) }
        XCTAssertEqual(temperatures.count, 26)
        let tail = temperatures.suffix(10)
        return tail.reduce(0, +) / Double(tail.count)
    }

    /// The strongly coupled run ends near the target, the weakly coupled one far below it.
    func checkCoupling(_ integrator: String, strong: String, weak: String) throws {
        let hot = try finalTemperature("integrator = \"\(integrator)\"\n\(strong)")
        let cold = try finalTemperature("integrator = \"\(integrator)\"\n\(weak)")
        print("\(integrator), 0.5 ps from 1 K to 120 K: \(strong) gives \(hot) K, \(weak) gives \(cold) K")
        XCTAssertGreaterThan(hot, 90)
        XCTAssertLessThan(cold, 40)
    }

    func testLangevinFrictionIsPerPicosecond() throws {
        try checkCoupling("langevin", strong: "friction_per_ps = 10", weak: "friction_per_ps = 0.2")
    }

    func testBussiRelaxationTimeIsInFemtoseconds() throws {
        try checkCoupling("bussi", strong: "tau_fs = 50", weak: "tau_fs = 5000")
    }
}

final class InitialTemperatureTests: XCTestCase {
    /// The drawn velocities are scaled over the degrees of freedom the log counts, so step 0
    /// logs the temperature asked for, whatever the integrator: Langevin counts 3N, and the
    /// draw scaled over 3N − 3 (step 0 of the shipped 300 K ethanol run logged 266.7 K);
    /// Verlet counts 3N − 3, and without the drift removed the draw scaled over 3N.
    func testStepZeroLogsTheInitialTemperature() throws {
        let cases: [(String, String)] = [
            ("langevin", "temperature_K = 150.0\nfriction_per_ps = 5.0"),
            ("verlet", "remove_com_motion = false"),
            ("verlet", "remove_com_motion = true"),
            ("bussi", "temperature_K = 150.0\ntau_fs = 100"),
        ]
        for (integrator, extra) in cases {
            let dir = try RunDirectory(deck: argonDeck(dynamics: """
                integrator = "\(integrator)"
                timestep_fs = 2.0
                steps = 1
                initial_temperature_K = 120
                seed = 3
                \(extra)
                """, output: "log = \"out/log.csv\"\nlog_every = 1"))
            defer { dir.remove() }
            let result = try CLI.run(["run", dir.path("deck.toml"), "--quiet"])
            XCTAssertEqual(result.status, 0, result.stderr)
            let rows = try String(contentsOfFile: dir.path("out/log.csv"), encoding: .utf8).split(separator: "\n")
            let header = rows.first?.split(separator: ",").map(String.init) ?? []
            guard let column = header.firstIndex(of: "temperature_K"), rows.count > 1 else {
                XCTFail("\(integrator): no temperature in the log: \(rows)"); continue
            }
            let first = rows[1].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            XCTAssertEqual(Double(first[column]) ?? 0, 120, accuracy: 1e-6, "\(integrator) \(extra)")
        }
    }
}

final class FailedStepTests: XCTestCase {
    /// A 200 fs timestep flings argon atoms 10¹⁰ cells away within a few steps, and the
    /// neighbour search refuses them. That error came without its step, and the trajectory
    /// ended at the last frame written by stride, not at the last good step (as a non-finite
    /// force's does). Errors of the first forces now name the structure file.
    func testAStepThePotentialRefusesIsNamedAndTheLastGoodStepKept() throws {
        let dir = try RunDirectory(deck: argonDeck(dynamics: """
            integrator = "verlet"
            timestep_fs = 200
            steps = 2000
            """, output: "log = \"out/log.csv\"\nlog_every = 1\ntrajectory = \"out/t.nc\"\ntrajectory_every = 1000"))
        defer { dir.remove() }
        let result = try CLI.run(["run", dir.path("deck.toml"), "--quiet"])
        XCTAssertNotEqual(result.status, 0)
        let message = result.stderr
        guard let range = message.range(of: #"step (\d+): "#, options: .regularExpression),
              let failed = Int(message[range].dropFirst(5).dropLast(2)) else {
            return XCTFail("no step in: \(message)")
        }
        XCTAssertGreaterThan(failed, 1, message)
        XCTAssertTrue(message.contains("the last good frame (step \(failed - 1)) is in the trajectory"), message)
        let reader = try AmberTrajectoryReader(path: dir.path("out/t.nc"))
        XCTAssertEqual(reader.frameCount, 2, "step 0 by stride, then the last good step")
        XCTAssertEqual(try reader.frame(1).time, Double(failed - 1) * 200, accuracy: 1e-3)

        try "2\nProperties=species:S:1:pos:R:3\nAr 0 0 0\nAr 0 0 0\n".write(toFile: dir.path("argon108.extxyz"), atomically: true, encoding: .utf8)
        for command in ["run", "minimize"] {
            let r = try CLI.run([command, dir.path("deck.toml"), "--quiet"].filter { command == "run" || $0 != "--quiet" })
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains(dir.path("argon108.extxyz") + ": "), "\(command): \(r.stderr)")
        }
    }
}

final class StartingFrameTests: XCTestCase {
    /// A structure file of several frames starts the run from its first, as before, but now
    /// says so: ASE's `read` takes the last, and the choice was silent.
    func testAMultiFrameStructureSaysWhichFrameStarts() throws {
        let dir = try RunDirectory(deck: argonDeck(dynamics: "integrator = \"verlet\"\ntimestep_fs = 2\nsteps = 1", output: "log_every = 0"))
        defer { dir.remove() }
        let one = try String(contentsOfFile: dir.path("argon108.extxyz"), encoding: .utf8)
        let result0 = try CLI.run(["run", dir.path("deck.toml"), "--quiet"])
        XCTAssertEqual(result0.status, 0, result0.stderr)
        XCTAssertFalse(result0.stderr.contains("more than one frame"), result0.stderr)
        try (one + one).write(toFile: dir.path("argon108.extxyz"), atomically: true, encoding: .utf8)
        let result = try CLI.run(["run", dir.path("deck.toml"), "--quiet"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("warning: \(dir.path("argon108.extxyz")) holds more than one frame; the first is the starting structure"), result.stderr)
    }
}
