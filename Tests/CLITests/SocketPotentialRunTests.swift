import Foundation
import XCTest
import Geometry
import Trajectory

/// `potential.type = "ipi"` with ASE's own i-PI client (`SocketClient`, with ASE's EMT) on a
/// triclinic copper cell: what `run` logs and stores is what ASE computed for the very cell and
/// positions `run` holds, so the cell's orientation, the units and the order of the virial
/// agree with a client this project did not write. Skipped when `python3` has no ASE.
final class SocketPotentialASETests: XCTestCase {
    func testASEsClientComputesWhatTheRunLogsAndStores() throws {
        // The python3 on PATH, where a user's pip puts ASE.
        let env = URL(fileURLWithPath: "/usr/bin/env")
        guard (try? CLI.run(["python3", "-c", "import ase.calculators.socketio, ase.calculators.emt"], timeout: 60,
                            program: env))?.status == 0 else {
            throw XCTSkip("python3 with ASE is not installed")
        }
        let directory = try scratchDirectory("ipi-ase")
        // A 3 × 3 × 3 primitive fcc copper cell (angles of 60°), atoms moved off their sites; in
        // the standard orientation (a along x, b in the xy plane), so that the AMBER trajectory
        // stores the positions and forces unrotated.
        let cell = try Cell.fromLengthsAndAngles(Vec3(repeating: 3 * 3.61 / 2.squareRoot()), Vec3(60, 60, 60))
        let vectors = [cell.a / 3, cell.b / 3, cell.c / 3]
        var positions: [Vec3] = []
        for i in 0..<3 { for j in 0..<3 { for k in 0..<3 {
            let site = Double(i) * vectors[0] + Double(j) * vectors[1] + Double(k) * vectors[2]
            positions.append(site + 0.04 * Vec3(sin(Double(7 * i + 3 * j + k)), cos(Double(5 * j + k)), sin(Double(11 * k + i))))
        } } }
        let structure = Structure(symbols: Array(repeating: "Cu", count: 27), atomicNumbers: Array(repeating: 29, count: 27),
                                  positions: positions, cell: cell)
        let structurePath = directory.appendingPathComponent("cu.extxyz").path
        try ExtendedXYZ.write([structure], to: structurePath)
        let name = "eninetmd-ase-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let deck = """
        [system]
        structure = "cu.extxyz"
        [potential]
        type = "ipi"
        address = "unix:\(name)"
        timeout_s = 120
        [dynamics]
        integrator = "verlet"
        timestep_fs = 2
        steps = 4
        initial_temperature_K = 0
        [output]
        log = "run.csv"
        log_every = 1
        trajectory = "run.nc"
        trajectory_every = 2
        forces_every = 2
        """
        let deckPath = directory.appendingPathComponent("cu.toml").path
        try deck.write(toFile: deckPath, atomically: true, encoding: .utf8)

        let run = try CLI.start(["run", deckPath, "--quiet"])
        let answers = directory.appendingPathComponent("answers.jsonl").path
        let script = CLI.fixtures.appendingPathComponent("ase-ipi-client.py").path
        let client = try CLI.start(["python3", script, structurePath, name, answers], program: env)
        CLI.wait(for: run, timeout: 120)
        CLI.wait(for: client, timeout: 30)
        XCTAssertEqual(run.terminationStatus, 0)
        XCTAssertEqual(client.terminationStatus, 0, "ASE's client ends on the run's EXIT")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/ipi_\(name)"))

        struct Answer: Decodable { let energy: Double; let forces: [[Double]]; let stress: [[Double]]; let cell: [[Double]]; let positions: [[Double]] }
        let computed = try String(contentsOfFile: answers, encoding: .utf8).split(separator: "\n")
            .map { try JSONDecoder().decode(Answer.self, from: Data($0.utf8)) }
        XCTAssertEqual(computed.count, 5, "the starting forces and one evaluation per step")
        let rows = try String(contentsOf: directory.appendingPathComponent("run.csv"), encoding: .utf8)
            .split(separator: "\n").dropFirst().map { $0.split(separator: ",").compactMap { Double($0) } }
        XCTAssertEqual(rows.count, 5)
        let trajectory = try AmberTrajectoryReader(path: directory.appendingPathComponent("run.nc").path)
        XCTAssertEqual(trajectory.frameCount, 3)
        let volume = cell.volume
        for (step, answer) in computed.enumerated() {
            // ASE's units are CODATA 2014, this program's 2018: a few parts in 1e9.
            XCTAssertEqual(rows[step][2], answer.energy, accuracy: 1e-7 * abs(answer.energy), "step \(step)")
            // The client saw the cell as the engine holds it, rows the lattice vectors.
            for (row, vector) in zip(answer.cell, [cell.a, cell.b, cell.c]) {
                XCTAssertLessThan(norm(Vec3(row[0], row[1], row[2]) - vector), 1e-8, "step \(step)")
            }
            // Pressure (2K + tr W)/(3V) with W = −V σ, in bar.
            let kinetic = rows[step][3]
            let trace = -volume * (answer.stress[0][0] + answer.stress[1][1] + answer.stress[2][2])
            let pressure = (2 * kinetic + trace) / (3 * volume) * 1.602176634e6
            XCTAssertEqual(rows[step][6], pressure, accuracy: 1e-6 * abs(pressure) + 0.051, "step \(step)")  // the log's 0.1 bar
            if step % 2 == 0 {
                let frame = try trajectory.frame(step / 2)
                let forces = try XCTUnwrap(frame.forces)
                let largest = answer.forces.map { norm(Vec3($0[0], $0[1], $0[2])) }.max() ?? 1
                for (f, g) in zip(forces, answer.forces) { XCTAssertLessThan(norm(f - Vec3(g[0], g[1], g[2])), 1e-5 * largest, "step \(step)") }
                for (r, p) in zip(frame.positions, answer.positions) { XCTAssertLessThan(norm(r - Vec3(p[0], p[1], p[2])), 1e-5, "step \(step)") }
            }
        }
        XCTAssertGreaterThan(rows[4][3], 1e-4, "the atoms should have moved")
    }

    /// The other way round: ASE's server (`SocketIOCalculator`) asks `eninet-md ipi-client` for
    /// ethanol's energy and forces, which are `evaluate`'s.
    func testASEsServerGetsWhatEvaluatePrints() throws {
        let env = URL(fileURLWithPath: "/usr/bin/env")
        guard (try? CLI.run(["python3", "-c", "import ase.calculators.socketio"], timeout: 60, program: env))?.status == 0 else {
            throw XCTSkip("python3 with ASE is not installed")
        }
        let directory = try scratchDirectory("ipi-ase-server")
        let model = CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/energy-stable/ethanol-energy-stable.safetensors").path
        let molecule = CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/ethanol.xyz").path
        let name = "eninetmd-ase-server-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let result = directory.appendingPathComponent("result.json").path
        let server = try CLI.start(["python3", CLI.fixtures.appendingPathComponent("ase-ipi-server.py").path, molecule, name, result], program: env)
        let client = try CLI.run(["ipi-client", "--model", model, "--structure", molecule, "--address", "unix:\(name)", "--double"], timeout: 120)
        CLI.wait(for: server, timeout: 60)
        XCTAssertEqual(server.terminationStatus, 0)
        XCTAssertEqual(client.status, 0, client.stderr)
        XCTAssertTrue(client.stdout.contains("answered 2 evaluations"), client.stdout)
        struct Answer: Decodable { let energy: Double; let forces: [[Double]] }
        let answers = try JSONDecoder().decode([Answer].self, from: Data(contentsOf: URL(fileURLWithPath: result)))
        let evaluated = try XCTUnwrap(try CLI.evaluatedFrames(["--model", model, "--structure", molecule, "--double"]).first)
        let energy = try XCTUnwrap(evaluated["energy"] as? Double), forces = try XCTUnwrap(evaluated["forces"] as? [[Double]])
        // ASE's units are CODATA 2014, this program's 2018: a few parts in 1e9.
        XCTAssertEqual(answers[0].energy, energy, accuracy: 1e-7 * abs(energy))
        for (f, g) in zip(answers[0].forces, forces) {
            XCTAssertLessThan(norm(Vec3(f[0], f[1], f[2]) - Vec3(g[0], g[1], g[2])), 1e-7)
        }
        XCTAssertGreaterThan(abs(answers[1].energy - answers[0].energy), 1e-4, "the second geometry is another")
    }
}

/// `run` with `potential.type = "ipi"` served by `eninet-md ipi-client` with the same model runs
/// the dynamics of the built-in potential: for a molecule (a zero cell on the wire) and a
/// periodic cell (its virial makes the pressure). The numbers pass through atomic units, so
/// they agree to rounding, not to the bit.
final class SocketPotentialRunTests: XCTestCase {
    private func run(_ potential: String, name: String, structure: String, in directory: URL,
                     client: [String]? = nil) throws -> [[Double]] {
        let deck = CLI.shortVerletDeck(structure: structure, potential: potential, name: name)
        let deckURL = directory.appendingPathComponent("\(name).toml")
        try deck.write(to: deckURL, atomically: true, encoding: .utf8)
        let output = directory.appendingPathComponent("\(name).client-out")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let outputHandle = try FileHandle(forWritingTo: output)
        let process = try client.map { try CLI.start($0, stdout: outputHandle, stderr: outputHandle) }
        let result = try CLI.run(["run", deckURL.path, "--quiet"], timeout: 300)
        XCTAssertEqual(result.status, 0, result.stderr)
        if let process {
            CLI.wait(for: process, timeout: 30)
            try outputHandle.close()
            let said = try String(contentsOf: output, encoding: .utf8)
            XCTAssertEqual(process.terminationStatus, 0, said)
            // The starting forces and one evaluation per step.
            XCTAssertTrue(said.contains("ipi-client: answered 21 evaluations"), said)
        }
        let log = try String(contentsOf: directory.appendingPathComponent("\(name).csv"), encoding: .utf8)
        return log.split(separator: "\n").dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map { Double($0) ?? .nan } }
    }

    func testAnEninetMdClientRunsTheSameDynamicsAsTheBuiltInPotential() throws {
        let directory = try scratchDirectory("ipi-run")
        let model = CLI.ethanolMDModel
        let cases = try CLI.ethanolMoleculeAndCube(in: directory)
        for (label, path) in cases {
            let builtin = try run("type = \"eninet\"\nmodel = \"\(model)\"\nprecision = \"double\"", name: "builtin-\(label)",
                                  structure: path, in: directory)
            let name = "eninetmd-run-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            let served = try run("type = \"ipi\"\naddress = \"unix:\(name)\"\ntimeout_s = 60", name: "ipi-\(label)", structure: path,
                                 in: directory, client: ["ipi-client", "--model", model, "--structure", path, "--address", "unix:\(name)", "--double"])
            XCTAssertEqual(served.count, 5, label)
            XCTAssertEqual(served.count, builtin.count, label)
            for (a, b) in zip(served, builtin) {
                XCTAssertEqual(a.count, b.count, label)
                for (x, y) in zip(a, b) where !(x.isNaN && y.isNaN) {
                    XCTAssertEqual(x, y, accuracy: 1e-8 * max(1, abs(y)), "\(label): \(a) against \(b)")
                }
            }
            XCTAssertGreaterThan(abs(served[4][2] - served[0][2]), 1e-3, "\(label): the energy should have moved")
            if label == "periodic" { XCTAssertFalse(served[1][6].isNaN, "\(label): the log should have a pressure") }
            XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/ipi_\(name)"))
        }
    }

    func testAClientWithAnotherAtomCountIsAnErrorAtBothEnds() throws {
        let directory = try scratchDirectory("ipi-mismatch")
        let model = CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/energy-stable/ethanol-energy-stable.safetensors").path
        let molecule = CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/ethanol.xyz").path
        var structure = try XCTUnwrap(try ExtendedXYZ.read(path: molecule).first)
        structure.positions.removeLast(); structure.symbols.removeLast(); structure.atomicNumbers.removeLast()
        let fewer = directory.appendingPathComponent("fewer.extxyz").path
        try ExtendedXYZ.write([structure], to: fewer)
        let name = "eninetmd-mismatch-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let deck = directory.appendingPathComponent("d.toml")
        try "[system]\nstructure = \"\(molecule)\"\n[potential]\ntype = \"ipi\"\naddress = \"unix:\(name)\"\ntimeout_s = 30\n[dynamics]\ntimestep_fs = 0.5\nsteps = 2\n[output]\nlog = \"d.csv\"\ntrajectory = \"d.nc\"\n"
            .write(to: deck, atomically: true, encoding: .utf8)
        let client = try CLI.start(["ipi-client", "--model", model, "--structure", fewer, "--address", "unix:\(name)"])
        let result = try CLI.run(["run", deck.path, "--quiet"], timeout: 60)
        CLI.wait(for: client, timeout: 30)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("ipi client at unix:\(name) (/tmp/ipi_\(name)): disconnected"), result.stderr)
        XCTAssertNotEqual(client.terminationStatus, 0, "the client names the mismatch and exits non-zero")
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("d.nc").path), "nothing written")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/ipi_\(name)"))
    }
}
