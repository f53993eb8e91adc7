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
        let deck = """
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
        trajectory_every = 20
        forces_every = 20
        """
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
        let model = CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/energy-stable/ethanol-energy-stable.safetensors").path
        let molecule = CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/ethanol.xyz").path
        // The same molecule in a 12 Å cube, periodic: its images lie beyond the 5 Å cutoff, but
        // the frame carries a lattice and the answer a stress.
        var structure = try XCTUnwrap(try ExtendedXYZ.read(path: molecule).first)
        structure.cell = try Cell(matrix: Mat3(Vec3(12, 0, 0), Vec3(0, 12, 0), Vec3(0, 0, 12)), pbc: .all)
        let periodic = directory.appendingPathComponent("periodic.extxyz").path
        try ExtendedXYZ.write([structure], to: periodic)

        for (label, path) in [("molecule", molecule), ("periodic", periodic)] {
            let builtin = try run("type = \"eninet\"\nmodel = \"\(model)\"\nprecision = \"double\"", structure: path, in: directory)
            let command = "'\(CLI.executable.path)' evaluate --model '\(model)' --structure - --json --double"
            let external = try run("type = \"external\"\ncommand = \"\(command)\"", structure: path, in: directory)
            XCTAssertEqual(external.log, builtin.log, label)
            XCTAssertEqual(external.log.count, 6, label)
            XCTAssertEqual(external.last.positions, builtin.last.positions, label)
            XCTAssertEqual(try XCTUnwrap(external.last.forces), try XCTUnwrap(builtin.last.forces), label)
            XCTAssertNotEqual(external.last.positions, structure.positions, "\(label): the atoms should have moved")
            if label == "periodic" {
                let pressures = external.log.dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false)[6] }
                XCTAssertTrue(pressures.allSatisfy { Double($0) != nil }, "\(label): the log should have pressures: \(external.log)")
            }
        }
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
