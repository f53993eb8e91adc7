import Foundation
import XCTest
import Geometry
@testable import Potentials

/// The external-program potential: what it hands the program, how it reads the answer, and
/// every way an answer can be wrong. The programs here are one-line shell commands; the CLI
/// tests run `eninet-md evaluate` as the program and compare with the built-in potential.
final class ExternalPotentialTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("external-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    private let dimer = Configuration(atomicNumbers: [8, 1], positions: [Vec3(0.1, -0.2, 0.3), Vec3(1.0 / 3, 0.7, -1e-17)], cell: nil)

    /// A program that keeps the frame it was given and prints `answer`.
    private func potential(answering answer: String, timeout: Double = 60) throws -> ExternalPotential {
        try answer.write(to: directory.appendingPathComponent("answer.json"), atomically: true, encoding: .utf8)
        return try ExternalPotential(command: "cat > frame.extxyz; echo 'a log line first'; cat answer.json",
                                     workingDirectory: directory.path, timeout: timeout)
    }

    private func assertThrows(_ parts: [String], _ body: () throws -> Void, line: UInt = #line) {
        XCTAssertThrowsError(try body(), line: line) { error in
            let message = "\(error)"
            for part in parts { XCTAssertTrue(message.contains(part), "'\(part)' not in: \(message)", line: line) }
        }
    }

    func testTheProgramGetsTheExactFrameAndItsAnswerIsTheResult() throws {
        let external = try potential(answering: #"{"energy": -1.25, "forces": [[1, 2, 3], [-4.5, 5e-3, 6]]}"#)
        let result = try external.compute(dimer)
        XCTAssertEqual(result.energy, -1.25)
        XCTAssertEqual(result.forces, [Vec3(1, 2, 3), Vec3(-4.5, 5e-3, 6)])
        // A molecule's virial is Σ r ⊗ F.
        let expected = Mat3.outer(dimer.positions[0], result.forces[0]) + Mat3.outer(dimer.positions[1], result.forces[1])
        XCTAssertEqual(result.virial, expected)
        XCTAssertEqual(external.calls, 1)

        let frame = try String(contentsOf: directory.appendingPathComponent("frame.extxyz"), encoding: .utf8)
        let lines = frame.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 4)
        XCTAssertEqual(lines[0], "2")
        XCTAssertEqual(lines[1], #"Properties=species:S:1:pos:R:3 pbc="F F F""#)
        for (i, line) in lines.dropFirst(2).enumerated() {
            let fields = line.split(separator: " ").map(String.init)
            XCTAssertEqual(fields[0], ["O", "H"][i])
            // The very doubles the engine holds, 1/3 and 1e-17 included.
            XCTAssertEqual(fields.dropFirst().compactMap(Double.init), [dimer.positions[i].x, dimer.positions[i].y, dimer.positions[i].z])
        }
    }

    func testAPeriodicCellGoesOutAsALatticeAndItsStressComesBackAsTheVirial() throws {
        let cell = try Cell(matrix: Mat3(Vec3(5, 0, 0), Vec3(1, 6, 0), Vec3(0, 0.5, 7)), pbc: .all)
        let crystal = Configuration(atomicNumbers: [29, 29], positions: [Vec3(0, 0, 0), Vec3(2.5, 3, 3.5)], cell: cell)
        let external = try potential(answering: #"{"energy": 2, "forces": [[0, 0, 0.5], [0, 0, -0.5]], "stress": [[0.01, 0.002, 0], [0.002, -0.02, 0], [0, 0, 0.03]]}"#)
        let result = try external.compute(crystal)
        let stress = Mat3(Vec3(0.01, 0.002, 0), Vec3(0.002, -0.02, 0), Vec3(0, 0, 0.03))
        // ASE's stress is −W/V.
        XCTAssertEqual(result.virial, -cell.volume * stress)
        let frame = try String(contentsOf: directory.appendingPathComponent("frame.extxyz"), encoding: .utf8)
        XCTAssertTrue(frame.contains(#"Lattice="5.0 0.0 0.0 1.0 6.0 0.0 0.0 0.5 7.0" pbc="T T T""#), frame)

        // ASE's get_stress() order: xx yy zz yz xz xy.
        let voigt = try potential(answering: #"{"energy": 2, "forces": [[0, 0, 0.5], [0, 0, -0.5]], "stress": [0.01, -0.02, 0.03, 0, 0, 0.002]}"#)
        XCTAssertEqual(try voigt.compute(crystal).virial, -cell.volume * stress)

        let noStress = try potential(answering: #"{"energy": 2, "forces": [[0, 0, 0.5], [0, 0, -0.5]]}"#)
        assertThrows(["no stress", "periodic"]) { _ = try noStress.compute(crystal) }
    }

    func testWrongAnswersAreErrorsNamingTheCommand() throws {
        let cases: [(String, [String])] = [
            (#"{"energy": 1, "forces": [[1, 2, 3]]}"#, ["forces has 1 rows, expected 2"]),
            (#"{"energy": 1, "forces": [[1, 2, 3], [1, 2]]}"#, ["forces[1] is not 3 numbers"]),
            (#"{"energy": "low", "forces": [[1, 2, 3], [4, 5, 6]]}"#, ["energy is missing or not a number"]),
            (#"{"forces": [[1, 2, 3], [4, 5, 6]]}"#, ["energy is missing"]),
            (#"{"energy": 1}"#, ["forces is missing"]),
            (#"{"energy": 1e999, "forces": [[1, 2, 3], [4, 5, 6]]}"#, ["energy"]),
            (#"{"energy": 1, "forces": [[1, 2, 3], [4, 5, 6]], "atoms": 3}"#, ["3 atoms", "has 2"]),
            (#"{"energy": 1, "forces": [[1, 2, 3], [4, 5, 6]]"#, ["not a JSON object"]),
            ("energy 1", ["no line of its output starts with '{'"]),
            (#"{"energy": true, "forces": [[1, 2, 3], [4, 5, 6]]}"#, ["energy is missing or not a number"]),
        ]
        for (answer, parts) in cases {
            let external = try potential(answering: answer)
            assertThrows(["external", "cat answer.json"] + parts) { _ = try external.compute(dimer) }
        }
    }

    /// Windows line endings (`\r\n` is one Character in Swift).
    func testAnAnswerWithWindowsLineEndingsIsRead() throws {
        let external = try potential(answering: "a log line\r\n{\"energy\": 3, \"forces\": [[0, 0, 1], [0, 0, -1]]}\r\n")
        XCTAssertEqual(try external.compute(dimer).energy, 3)
    }

    /// A program may leave a child running (a server it starts, say): the call ends with the
    /// program, not with its children.
    func testAChildLeftRunningDoesNotHoldTheCall() throws {
        let external = try ExternalPotential(command: #"cat > /dev/null; (sleep 20 &); echo '{"energy": 1, "forces": [[0, 0, 0], [0, 0, 0]]}'"#,
                                             workingDirectory: directory.path, timeout: 15)
        let start = Date()
        XCTAssertEqual(try external.compute(dimer).energy, 1)
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
    }

    /// A file the engine holds open (a run's trajectory and log) is not handed to the program,
    /// which could leave a child holding it after the run.
    func testTheProgramInheritsNoOpenFileOfTheEngine() throws {
        let held = directory.appendingPathComponent("held.nc").path
        let descriptor = open(held, O_CREAT | O_WRONLY, 0o600)
        XCTAssertGreaterThan(descriptor, 2)
        defer { close(descriptor) }
        let answer = #"{"energy": 0, "forces": [[0, 0, 0], [0, 0, 0]]}"#
        try answer.write(to: directory.appendingPathComponent("answer.json"), atomically: true, encoding: .utf8)
        let external = try ExternalPotential(command: "ls -l /proc/$$/fd > fds.txt; cat answer.json", workingDirectory: directory.path)
        _ = try external.compute(dimer)
        let listing = try String(contentsOf: directory.appendingPathComponent("fds.txt"), encoding: .utf8)
        XCTAssertFalse(listing.contains("held.nc"), listing)
        XCTAssertTrue(listing.contains("frame.extxyz"), "the program's own standard input is there: \(listing)")
    }

    func testAFailingProgramIsAnErrorWithItsStandardError() throws {
        let failing = try ExternalPotential(command: "cat > /dev/null; echo 'SCF did not converge' >&2; exit 3",
                                            workingDirectory: directory.path)
        assertThrows(["exited with status 3", "SCF did not converge"]) { _ = try failing.compute(dimer) }
        let missing = try ExternalPotential(command: "./no-such-program", workingDirectory: directory.path)
        assertThrows(["no-such-program", "exited with status 127"]) { _ = try missing.compute(dimer) }
    }

    /// A stop request (SIGINT to a run) does not wait for a long evaluation: the program and
    /// what it started are stopped, one that ignores SIGTERM by SIGKILL 2 s later (the shell
    /// that runs the command ends on SIGTERM at once, so it is the group that is waited for),
    /// and the call throws ``EvaluationStopped``. A stop requested before the call starts nothing.
    func testAStopRequestStopsTheProgramAndItsChildrenAtOnce() throws {
        let pidPath = directory.appendingPathComponent("child.pid").path
        let external = try ExternalPotential(command: "cat > /dev/null; (trap '' TERM; exec sleep 30) & echo $! > child.pid; wait",
                                             workingDirectory: directory.path, timeout: 60,
                                             stopRequested: { FileManager.default.fileExists(atPath: pidPath) })
        let start = Date()
        XCTAssertThrowsError(try external.compute(dimer)) { error in
            XCTAssertTrue(error is EvaluationStopped, "\(error)")
            XCTAssertTrue("\(error)".contains("sleep 30"), "\(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 8)
        let pidText = try String(contentsOfFile: pidPath, encoding: .utf8)
        let child = try XCTUnwrap(Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)))
        // SIGKILL is delivered at once, but the process may take a moment to end.
        let deadline = Date().addingTimeInterval(2)
        while Self.isRunning(child) && Date() < deadline { usleep(20_000) }
        XCTAssertFalse(Self.isRunning(child), "the program's child \(child), which ignores SIGTERM, should have been killed")

        // A program that ends on SIGTERM: the stop does not wait for PID 1 to reap what the
        // command's shell started (here that took 1–1.7 s of a stop's time).
        let begunPath = directory.appendingPathComponent("begun").path
        let plain = try ExternalPotential(command: "cat > /dev/null; touch begun; sleep 30", workingDirectory: directory.path,
                                          timeout: 60, stopRequested: { FileManager.default.fileExists(atPath: begunPath) })
        let plainStart = Date()
        XCTAssertThrowsError(try plain.compute(dimer)) { XCTAssertTrue($0 is EvaluationStopped, "\($0)") }
        XCTAssertLessThan(Date().timeIntervalSince(plainStart), 1, "the stop waited for ended members of the group")

        let startedPath = directory.appendingPathComponent("started").path
        let stoppedAlready = try ExternalPotential(command: "touch started; cat > /dev/null", workingDirectory: directory.path,
                                                   stopRequested: { true })
        XCTAssertThrowsError(try stoppedAlready.compute(dimer)) { XCTAssertTrue($0 is EvaluationStopped, "\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: startedPath), "a program was started after the stop")
        // Without a stop request a program is left to answer.
        let patient = try ExternalPotential(command: "cat > /dev/null; sleep 1; echo '{\"energy\": 2, \"forces\": [[0, 0, 0], [0, 0, 0]]}'",
                                            workingDirectory: directory.path, timeout: 60, stopRequested: { false })
        XCTAssertEqual(try patient.compute(dimer).energy, 2)
    }

    /// Whether process `pid` exists and has not ended (a zombie has ended).
    static func isRunning(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state != "Z" && state != "X"
    }

    func testAHangingProgramIsStoppedAfterItsTimeout() throws {
        let hanging = try ExternalPotential(command: "sleep 30", workingDirectory: directory.path, timeout: 0.5)
        var start = Date()
        assertThrows(["no answer within 0.5 s"]) { _ = try hanging.compute(dimer) }
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        // One that ignores SIGTERM is killed 2 s later.
        let stubborn = try ExternalPotential(command: "trap '' TERM; sleep 30", workingDirectory: directory.path, timeout: 0.5)
        start = Date()
        assertThrows(["no answer within 0.5 s"]) { _ = try stubborn.compute(dimer) }
        XCTAssertLessThan(Date().timeIntervalSince(start), 8)
        assertThrows(["command is empty"]) { _ = try ExternalPotential(command: "  ") }
        assertThrows(["timeout"]) { _ = try ExternalPotential(command: "true", timeout: 0) }
    }
}
