import Foundation
import XCTest
import Geometry
import Trajectory

/// Runs the built `eninet-md` binary as a user would and captures what it prints.
enum CLI {
    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
        let terminatedBySignal: Bool
    }

    /// The executable sits next to the test bundle in SwiftPM's products directory.
    static var executable: URL {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        if dir.lastPathComponent.hasSuffix(".xctest") { dir = dir.deletingLastPathComponent() }
        for candidate in [dir, Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()] {
            let url = candidate.appendingPathComponent("eninet-md")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return dir.appendingPathComponent("eninet-md")
    }

    static var repositoryRoot: URL {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        }
        return url
    }

    static var sharedDirectory: URL { repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared") }

    static var fixtures: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures") }

    /// Starts the binary (or `program`) and returns the process without waiting (for signal tests).
    static func start(_ arguments: [String], in directory: URL? = nil, stdout: FileHandle? = nil, stderr: FileHandle? = nil,
                      program: URL? = nil) throws -> Process {
        let process = Process()
        process.executableURL = program ?? executable
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = stdout ?? FileHandle.nullDevice
        process.standardError = stderr ?? FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Waits for a process from ``start(_:in:stdout:stderr:program:)``. One still running after
    /// `timeout` is killed and fails the test: a run that missed its SIGTERM hung the suite
    /// for 882 s, writing a 1.6 GB trajectory.
    static func wait(for process: Process, timeout: TimeInterval = 60, file: StaticString = #filePath, line: UInt = #line) {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            XCTFail("process \(process.processIdentifier) did not end within \(timeout) s; killed", file: file, line: line)
        }
        process.waitUntilExit()
    }

    /// Runs the binary (or `program`, such as a script's interpreter) to completion, with a time
    /// limit so a hang fails the test instead of stalling the suite.
    static func run(_ arguments: [String], in directory: URL? = nil, timeout: TimeInterval = 120, program: URL? = nil) throws -> Result {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outURL = scratch.appendingPathComponent("out"), errURL = scratch.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        let process = try start(arguments, in: directory, stdout: out, stderr: err, program: program)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            XCTFail("\((program ?? executable).lastPathComponent) \(arguments.joined(separator: " ")) did not finish within \(timeout) s")
        }
        process.waitUntilExit()
        try out.close(); try err.close()
        return Result(status: process.terminationStatus,
                      stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
                      stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "",
                      terminatedBySignal: process.terminationReason == .uncaughtSignal)
    }
}

/// An `eninet-md run` of a deck, started at once and read later. A test class with long MD
/// runs starts them when the class starts (`override class func setUp()`), so that they share
/// the cores with the class's other tests instead of following them one at a time.
final class BackgroundRun {
    /// The run's working folder: its deck, its outputs and its standard error.
    let directory: URL
    private let process: Process
    private let errors: FileHandle
    private let started = Date()

    init(deck: String, name: String) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let deckURL = directory.appendingPathComponent("deck.toml")
        try deck.write(to: deckURL, atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: directory.appendingPathComponent("stderr").path, contents: nil)
        errors = try FileHandle(forWritingTo: directory.appendingPathComponent("stderr"))
        process = try CLI.start(["run", deckURL.path, "--quiet"], in: directory, stderr: errors)
    }

    /// Waits for the run to end, at most until `timeout` after its start (a run still going
    /// then is killed, and the test fails), and gives its exit status and standard error.
    func finish(timeout: TimeInterval, file: StaticString = #filePath, line: UInt = #line) -> (status: Int32, stderr: String) {
        CLI.wait(for: process, timeout: max(0, timeout - Date().timeIntervalSince(started)), file: file, line: line)
        try? errors.close()
        let stderr = (try? String(contentsOf: directory.appendingPathComponent("stderr"), encoding: .utf8)) ?? ""
        return (process.terminationStatus, stderr)
    }

    /// Stops the run if it still goes (its test was filtered out, or failed before waiting)
    /// and removes its folder.
    func discard() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        try? errors.close()
        try? FileManager.default.removeItem(at: directory)
    }
}

extension CLI {
    /// The JSON objects `eninet-md evaluate ... --json` prints, one per frame, after checking
    /// that it exited with status 0.
    static func evaluatedFrames(_ arguments: [String], timeout: TimeInterval = 120,
                                file: StaticString = #filePath, line: UInt = #line) throws -> [[String: Any]] {
        let result = try run(["evaluate"] + arguments + ["--json"], timeout: timeout)
        XCTAssertEqual(result.status, 0, result.stderr, file: file, line: line)
        return try result.stdout.split(separator: "\n").map { text in
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], file: file, line: line)
        }
    }
}

extension CLI {
    /// A deck of 20 velocity-Verlet steps of 0.5 fs from 300 K (seed 4), logged every 5 steps to
    /// `NAME.csv`, with the trajectory `NAME.nc`: the runs that compare one potential with another.
    static func shortVerletDeck(structure: String, potential: String, name: String, output: String = "") -> String {
        """
        [system]
        structure = "\(structure)"
        [potential]
        \(potential)
        [dynamics]
        integrator = "verlet"
        timestep_fs = 0.5
        steps = 20
        initial_temperature_K = 300
        seed = 4
        [output]
        log = "\(name).csv"
        log_every = 5
        trajectory = "\(name).nc"
        \(output)
        """
    }
}

extension CLI {
    static var ethanolMDModel: String {
        repositoryRoot.appendingPathComponent("Examples/ethanol/energy-stable/ethanol-energy-stable.safetensors").path
    }

    /// The shipped ethanol as a molecule and, written into `directory`, in a periodic 12 Å cube
    /// (its images lie beyond the 5 Å cutoff, but a frame carries a lattice and an answer a
    /// stress): the two cases where another potential must run the built-in one's dynamics.
    static func ethanolMoleculeAndCube(in directory: URL) throws -> [(label: String, path: String)] {
        let molecule = repositoryRoot.appendingPathComponent("Examples/ethanol/ethanol.xyz").path
        guard var structure = try ExtendedXYZ.read(path: molecule).first else { throw CocoaError(.fileReadCorruptFile) }
        structure.cell = try Cell(matrix: Mat3(Vec3(12, 0, 0), Vec3(0, 12, 0), Vec3(0, 0, 12)), pbc: .all)
        let periodic = directory.appendingPathComponent("periodic.extxyz").path
        try ExtendedXYZ.write([structure], to: periodic)
        return [("molecule", molecule), ("periodic", periodic)]
    }
}

extension XCTestCase {
    /// A fresh directory, removed when the test ends.
    func scratchDirectory(_ prefix: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }
}

final class CLIBasicsTests: XCTestCase {
    func testHelpListsEveryCommandAndExitsZero() throws {
        let result = try CLI.run(["--help"])
        XCTAssertEqual(result.status, 0)
        for command in ["run", "minimize", "convert", "evaluate", "train", "analyze", "bench"] {
            XCTAssertTrue(result.stdout.contains(command), "--help does not mention \(command)")
        }
    }

    func testUnknownCommandFailsWithNonZeroExit() throws {
        let result = try CLI.run(["no-such-command"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertFalse(result.terminatedBySignal)
        XCTAssertTrue(result.stderr.contains("no-such-command"), result.stderr)
    }

    /// A negative number after a numeric option is that option's value, refused by its own
    /// check, as `--stride=-5` always was; argument-parser's default took `-5` for an option and
    /// said the value was missing.
    func testANegativeNumberIsTheOptionsValue() throws {
        let cases: [([String], String)] = [
            (["analyze", "msd", "t.nc", "--csv", "o.csv", "--stride", "-5"], "--stride must be at least 1"),
            (["analyze", "msd", "t.nc", "--csv", "o.csv", "--first-frame", "-1"], "--first-frame must be at least 0"),
            (["convert", "a.nc", "b.extxyz", "--frame-interval-fs", "-1"], "--frame-interval-fs must be above 0"),
            (["bench", "tensors", "--seconds", "-1"], "--seconds must be above 0"),
            // A frame selection counting from the end gets as far as the missing input.
            (["convert", "nope.nc", "b.ncrst", "--frames", "-1"], "nope.nc: no such file"),
            (["analyze", "vdos", "t.nc", "--csv", "o.csv", "--threads", "-2"], "--threads -2 must be from 1"),
        ]
        for (arguments, message) in cases {
            let result = try CLI.run(arguments)
            XCTAssertNotEqual(result.status, 0, arguments.joined(separator: " "))
            XCTAssertFalse(result.terminatedBySignal)
            XCTAssertTrue(result.stderr.contains(message), "\(arguments.joined(separator: " ")): \(result.stderr)")
            XCTAssertFalse(result.stderr.contains("Missing value"), result.stderr)
        }
    }

    /// An option refused by the command's own work (here before it reads the log) is a usage
    /// error, exit 64, and one line: the usage that followed it was the top-level command's.
    func testAnOptionRefusedWhileRunningIsOneLine() throws {
        let result = try CLI.run(["analyze", "thermo", "log.csv", "--csv", "o.csv", "--blocks", "1"])
        XCTAssertEqual(result.status, 64, result.stderr)
        XCTAssertEqual(result.stderr, "Error: --blocks must be at least 2\n")
    }
}
