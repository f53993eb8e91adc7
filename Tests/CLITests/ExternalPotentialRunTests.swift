import Foundation
import XCTest
import Geometry
import Trajectory

/// `potential.type = "external"` with another `eninet-md` as the program (`evaluate --structure -
/// --json --double`) runs the same dynamics as the built-in ENINet potential: the frame goes out
/// and the energy, forces and stress come back as the very doubles, so the trajectories agree to
/// the last bit, for a molecule and for a periodic cell (whose pressure comes from the stress).
final class ExternalPotentialRunTests: XCTestCase {
    private func run(_ potential: String, structure: String, in directory: URL) throws -> (log: [String], last: Frame) {
        let name = potential.hasPrefix("type = \"external\"") ? "external" : "builtin"
        let deck = CLI.shortVerletDeck(structure: structure, potential: potential, name: name,
                                       output: "trajectory_every = 20\nforces_every = 20")
        let deckURL = directory.appendingPathComponent("\(name).toml")
        try deck.write(to: deckURL, atomically: true, encoding: .utf8)
        let result = try CLI.run(["run", deckURL.path, "--quiet"], timeout: 300)
        XCTAssertEqual(result.status, 0, result.stderr)
        let log = try String(contentsOf: directory.appendingPathComponent("\(name).csv"), encoding: .utf8)
        let trajectory = try AmberTrajectoryReader(path: directory.appendingPathComponent("\(name).nc").path)
        XCTAssertEqual(trajectory.frameCount, 2)
        return (log.split(separator: "\n").map(String.init), try trajectory.frame(1))
    }

    func testAnotherEninetMdAsTheProgramRunsTheSameDynamicsAsTheBuiltInPotential() throws {
        let directory = try scratchDirectory("external-run")
        let model = CLI.ethanolMDModel
        let cases = try CLI.ethanolMoleculeAndCube(in: directory)
        for (label, path) in cases {
            let builtin = try run("type = \"eninet\"\nmodel = \"\(model)\"\nprecision = \"double\"", structure: path, in: directory)
            let command = "'\(CLI.executable.path)' evaluate --model '\(model)' --structure - --json --double"
            let external = try run("type = \"external\"\ncommand = \"\(command)\"", structure: path, in: directory)
            XCTAssertEqual(external.log, builtin.log, label)
            XCTAssertEqual(external.log.count, 6, label)
            XCTAssertEqual(external.last.positions, builtin.last.positions, label)
            XCTAssertEqual(try XCTUnwrap(external.last.forces), try XCTUnwrap(builtin.last.forces), label)
            XCTAssertNotEqual(external.last.positions, try ExtendedXYZ.read(path: path).first?.positions, "\(label): the atoms should have moved")
            if label == "periodic" {
                let pressures = external.log.dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false)[6] }
                XCTAssertTrue(pressures.allSatisfy { Double($0) != nil }, "\(label): the log should have pressures: \(external.log)")
            }
        }
    }

    /// SIGINT while the program computes a step's forces (a quantum-chemistry step can take an
    /// hour; the program's process group does not get a terminal's Ctrl-C) stops the program
    /// at once, and the run ends after the step before with its frame and restart written; the
    /// restart continues as the uninterrupted run. The program is a term of a sum, beside a
    /// Lennard-Jones term whose 0.01 Å skin rebuilds its list about every step, so that the
    /// abandoned step has rebuilt it. SIGTERM during the starting forces: an error, and nothing
    /// written.
    func testSigintStopsAProgramMidStepAndTheRunEndsAfterTheStepBefore() throws {
        let directory = try scratchDirectory("external-sigint")
        let molecule = CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/ethanol.xyz").path
        // Free flight (zero forces) but for call `hang`, which waits as a long evaluation would.
        let zeros = Array(repeating: "[0, 0, 0]", count: 9).joined(separator: ", ")
        let program = """
        cat > /dev/null
        n=$(cat calls 2>/dev/null || echo 0); n=$((n + 1)); echo $n > calls
        if [ "$n" = "$(cat hang)" ]; then echo $$ > sleeper.pid; exec sleep 60; fi
        echo '{"energy": -1.5, "forces": [\(zeros)]}'
        """
        try program.write(to: directory.appendingPathComponent("program.sh"), atomically: true, encoding: .utf8)
        func deck(_ name: String, steps: Int) throws -> String {
            let text = """
            [system]
            structure = "\(molecule)"
            [potential]
            type = "sum"
            [[potential.terms]]
            type = "lj"
            epsilon_eV = 0.002
            sigma_A = 1.0
            cutoff_A = 4.0
            skin_A = 0.01
            [[potential.terms]]
            type = "external"
            command = "sh program.sh"
            [dynamics]
            integrator = "langevin"
            friction_per_ps = 5
            temperature_K = 300
            timestep_fs = 0.5
            steps = \(steps)
            initial_temperature_K = 300
            seed = 4
            [output]
            trajectory = "\(name).nc"
            trajectory_every = 1
            restart = "\(name).ncrst"
            restart_every = 1000
            """
            let url = directory.appendingPathComponent("\(name).toml")
            try text.write(to: url, atomically: true, encoding: .utf8)
            return url.path
        }
        func interrupted(hangingAt call: Int, name: String, signal: Int32) throws -> (status: Int32, stderr: String, seconds: Double) {
            try? FileManager.default.removeItem(at: directory.appendingPathComponent("calls"))
            try? FileManager.default.removeItem(at: directory.appendingPathComponent("sleeper.pid"))
            try String(call).write(to: directory.appendingPathComponent("hang"), atomically: true, encoding: .utf8)
            let errURL = directory.appendingPathComponent("\(name).err")
            _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
            let err = try FileHandle(forWritingTo: errURL)
            let process = try CLI.start(["run", try deck(name, steps: 10), "--quiet"], in: directory, stderr: err)
            let pidURL = directory.appendingPathComponent("sleeper.pid")
            let deadline = Date().addingTimeInterval(30)
            while process.isRunning && Date() < deadline && !FileManager.default.fileExists(atPath: pidURL.path) { usleep(20_000) }
            usleep(200_000)
            let signalled = Date()
            kill(process.processIdentifier, signal)
            CLI.wait(for: process, timeout: 20)
            try err.close()
            XCTAssertEqual(process.terminationReason, .exit, "eninet-md must exit, not die of the signal")
            let sleeper = try XCTUnwrap(Int32(try String(contentsOf: pidURL, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
            let gone = Date().addingTimeInterval(2)
            while ExternalPotentialRunTests.isRunning(sleeper) && Date() < gone { usleep(20_000) }
            XCTAssertFalse(ExternalPotentialRunTests.isRunning(sleeper), "the program should have been stopped")
            return (process.terminationStatus, try String(contentsOf: errURL, encoding: .utf8), Date().timeIntervalSince(signalled))
        }

        // Call 1 is the first forces, call s + 1 step s's: call 4 hangs in step 3.
        let stopped = try interrupted(hangingAt: 4, name: "stopped", signal: SIGINT)
        XCTAssertNotEqual(stopped.status, 0)
        XCTAssertLessThan(stopped.seconds, 8, "the stop waited for the program")
        XCTAssertTrue(stopped.stderr.contains("stopped by SIGINT after step 2"), stopped.stderr)
        let restart = try AmberRestart.read(path: directory.appendingPathComponent("stopped.ncrst").path)
        XCTAssertEqual(restart.step, 2)
        XCTAssertEqual(restart.listAnchors.count, 1, "the Lennard-Jones list's build positions")
        XCTAssertEqual(try AmberTrajectoryReader(path: directory.appendingPathComponent("stopped.nc").path).frameCount, 3)

        // The continuation (no call hangs now) against the uninterrupted run.
        try "0".write(to: directory.appendingPathComponent("hang"), atomically: true, encoding: .utf8)
        let continued = try CLI.run(["run", try deck("stopped", steps: 10), "--quiet",
                                     "--restart", directory.appendingPathComponent("stopped.ncrst").path], in: directory)
        XCTAssertEqual(continued.status, 0, continued.stderr)
        let whole = try CLI.run(["run", try deck("whole", steps: 10), "--quiet"], in: directory)
        XCTAssertEqual(whole.status, 0, whole.stderr)
        let a = try AmberRestart.read(path: directory.appendingPathComponent("stopped.ncrst").path)
        let b = try AmberRestart.read(path: directory.appendingPathComponent("whole.ncrst").path)
        XCTAssertEqual(a.step, 10)
        XCTAssertEqual(a.positions, b.positions)
        XCTAssertEqual(a.velocities, b.velocities)
        XCTAssertEqual(a.state, b.state)

        // Stopped in the starting forces: an error, and no output files.
        let first = try interrupted(hangingAt: 1, name: "first", signal: SIGTERM)
        XCTAssertNotEqual(first.status, 0)
        XCTAssertLessThan(first.seconds, 8, "the stop waited for the program")
        XCTAssertTrue(first.stderr.contains("stopped by SIGTERM while computing the starting forces"), first.stderr)
        for file in ["first.nc", "first.ncrst"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent(file).path), file)
        }
    }

    /// Whether process `pid` exists and has not ended (a zombie has ended).
    static func isRunning(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state != "Z" && state != "X"
    }

    func testAFailingProgramStopsTheRunWithItsMessage() throws {
        let directory = try scratchDirectory("external-fail")
        let molecule = CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/ethanol.xyz").path
        let deck = """
        [system]
        structure = "\(molecule)"
        [potential]
        type = "external"
        command = "cat > /dev/null; echo 'no basis set for O' >&2; exit 2"
        [dynamics]
        integrator = "verlet"
        timestep_fs = 0.5
        steps = 20
        """
        let deckURL = directory.appendingPathComponent("deck.toml")
        try deck.write(to: deckURL, atomically: true, encoding: .utf8)
        let result = try CLI.run(["run", deckURL.path, "--quiet"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertFalse(result.terminatedBySignal)
        XCTAssertTrue(result.stderr.contains("exited with status 2") && result.stderr.contains("no basis set for O"), result.stderr)
        XCTAssertFalse(result.stderr.contains("ethanol.xyz:"), "the program's failure is not the structure's: \(result.stderr)")

        // A deck without the command is refused, naming the key.
        try deck.replacingOccurrences(of: "command = \"cat > /dev/null; echo 'no basis set for O' >&2; exit 2\"\n", with: "")
            .write(to: deckURL, atomically: true, encoding: .utf8)
        let refused = try CLI.run(["run", deckURL.path, "--quiet"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("command"), refused.stderr)
    }
}
