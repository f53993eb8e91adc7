import Foundation
import XCTest
import Geometry
import Trajectory

/// Issue 7: dipoles of an ENINet dipole model stored in the trajectory, during MD
/// (`output.dipole_model`, `output.dipole_every`) or afterwards (`eninet-md dipoles`), equal
/// to what `evaluate` gives on the same frames. Uses the shipped ethanol models.
final class DipoleTrajectoryTests: XCTestCase {
    static let examples = CLI.repositoryRoot.appendingPathComponent("Examples/ethanol")
    static let energyModel = examples.appendingPathComponent("energy/ethanol-energy.safetensors")
    static let dipoleModel = examples.appendingPathComponent("dipole/ethanol-dipole.safetensors")
    static let structure = examples.appendingPathComponent("ethanol.xyz")

    func scratch() throws -> URL {
        for url in [Self.energyModel, Self.dipoleModel] where !FileManager.default.fileExists(atPath: url.path) {
            throw XCTSkip("\(url.path) is absent")
        }
        return try scratchDirectory("dipoles")
    }

    /// 60 steps of NVE ethanol, a frame every 10 steps, with dipoles when asked.
    func runMD(in dir: URL, dipoles: Bool, name: String, structure: URL = structure) throws -> URL {
        let deck = """
        title = "ethanol dipoles"
        [system]
        structure = "\(structure.path)"
        [potential]
        type = "eninet"
        model = "\(Self.energyModel.path)"
        [dynamics]
        integrator = "verlet"
        timestep_fs = 0.5
        steps = 60
        initial_temperature_K = 300
        seed = 4
        [output]
        trajectory = "\(name).nc"
        trajectory_every = 10
        velocities_every = 10
        \(dipoles ? "dipole_model = \"\(Self.dipoleModel.path)\"\ndipole_every = 10" : "")
        """
        let deckURL = dir.appendingPathComponent("\(name).toml")
        try deck.write(to: deckURL, atomically: true, encoding: .utf8)
        let result = try CLI.run(["run", deckURL.path, "--quiet"], in: dir, timeout: 300)
        XCTAssertEqual(result.status, 0, result.stderr)
        return dir.appendingPathComponent("\(name).nc")
    }

    func dipoleSeries(_ url: URL) throws -> [[Double]] {
        let reader = try AmberTrajectoryReader(path: url.path)
        XCTAssertTrue(reader.hasDipole, "\(url.lastPathComponent) has a dipole variable")
        XCTAssertEqual(try reader.units(of: "dipole"), "electron*angstrom")
        return try (0..<reader.frameCount).map { try XCTUnwrap(reader.frame($0).extras["dipole"]) }
    }

    func testDipolesWrittenDuringMDEqualEvaluateOnTheStoredFrames() throws {
        let dir = try scratch()
        let trajectory = try runMD(in: dir, dipoles: true, name: "md")
        let stored = try dipoleSeries(trajectory)
        XCTAssertEqual(stored.count, 7)
        let frames = dir.appendingPathComponent("frames.extxyz")
        let converted = try CLI.run(["convert", trajectory.path, frames.path, "--symbols-from", Self.structure.path])
        XCTAssertEqual(converted.status, 0, converted.stderr)
        let evaluated = try CLI.run(["evaluate", "--model", Self.dipoleModel.path, "--structure", frames.path, "--json", "--float"])
        XCTAssertEqual(evaluated.status, 0, evaluated.stderr)
        let lines = evaluated.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, stored.count)
        for (index, line) in lines.enumerated() {
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let mu = try XCTUnwrap(object["dipole"] as? [Double])
            // The run evaluated double positions; the file keeps them as float32 (1e-6 Å).
            for k in 0..<3 { XCTAssertEqual(stored[index][k], mu[k], accuracy: 2e-5, "frame \(index), component \(k)") }
        }
        // The molecule vibrates: the dipole changes between frames.
        XCTAssertGreaterThan(abs(stored[6][0] - stored[0][0]) + abs(stored[6][1] - stored[0][1]) + abs(stored[6][2] - stored[0][2]), 1e-3)
    }

    /// Masses from the structure file (deuterium here) move the centre of mass but not the
    /// dipole. The model's atom charges add up to about +0.46 e, so the origin matters: `evaluate`
    /// and `run` took the file's masses, while `dipoles`, `evaluate --data` and training take
    /// the standard ones (μ_y of this frame went from 0.355 to 0.322 e·Å).
    func testMassesFromTheStructureFileDoNotMoveTheDipole() throws {
        let dir = try scratch()
        var lines = try String(contentsOf: Self.structure, encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        XCTAssertTrue(lines[1].contains("Properties=species:S:1:pos:R:3 "))
        lines[1] = lines[1].replacingOccurrences(of: "Properties=species:S:1:pos:R:3 ", with: "Properties=species:S:1:pos:R:3:masses:R:1 ")
        for i in 2..<11 { lines[i] += lines[i].hasPrefix("H") ? " 2.014" : (lines[i].hasPrefix("O") ? " 15.999" : " 12.011") }
        let deuterated = dir.appendingPathComponent("ethanol-d6.xyz")
        try lines.joined(separator: "\n").write(to: deuterated, atomically: true, encoding: .utf8)
        func dipole(of url: URL) throws -> [Double] {
            let result = try CLI.run(["evaluate", "--model", Self.dipoleModel.path, "--structure", url.path, "--json"])
            XCTAssertEqual(result.status, 0, result.stderr)
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            return try XCTUnwrap(object["dipole"] as? [Double])
        }
        XCTAssertEqual(try dipole(of: deuterated), try dipole(of: Self.structure))

        // During MD the dipole is taken from the run's state, which holds the file's masses.
        let trajectory = try runMD(in: dir, dipoles: true, name: "d6", structure: deuterated)
        let recomputed = dir.appendingPathComponent("recomputed.nc")
        let result = try CLI.run(["dipoles", "--model", Self.dipoleModel.path, trajectory.path, "--elements", "C,C,O,H*6",
                                  "--output", recomputed.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        for (a, b) in zip(try dipoleSeries(trajectory), try dipoleSeries(recomputed)) {
            for k in 0..<3 { XCTAssertEqual(a[k], b[k], accuracy: 2e-5) }
        }
    }

    func testDipolesCommandAddsTheSameSeriesAndKeepsEverythingElse() throws {
        let dir = try scratch()
        let with = try dipoleSeries(try runMD(in: dir, dipoles: true, name: "with"))
        let plain = try runMD(in: dir, dipoles: false, name: "plain")
        let before = try AmberTrajectoryReader(path: plain.path)
        XCTAssertFalse(before.hasDipole)
        let originalFrames = try (0..<before.frameCount).map { try before.frame($0) }
        try before.close()

        let result = try CLI.run(["dipoles", "--model", Self.dipoleModel.path, plain.path, "--elements", "C,C,O,H*6"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let added = try dipoleSeries(plain)
        XCTAssertEqual(added.count, with.count)
        for (a, b) in zip(added, with) { for k in 0..<3 { XCTAssertEqual(a[k], b[k], accuracy: 2e-5) } }
        let after = try AmberTrajectoryReader(path: plain.path)
        for (index, frame) in originalFrames.enumerated() {
            let copy = try after.frame(index)
            XCTAssertEqual(copy.positions, frame.positions, "frame \(index) positions")
            XCTAssertEqual(copy.velocities, frame.velocities, "frame \(index) velocities")
            XCTAssertEqual(copy.time, frame.time)
            XCTAssertEqual(copy.extras["potential_energy"], frame.extras["potential_energy"])
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: plain.path + ".tmp"))
    }

    func testDipolesCommandRefusesBadInputAndLeavesTheFileAlone() throws {
        let dir = try scratch()
        let plain = try runMD(in: dir, dipoles: false, name: "plain")
        let original = try Data(contentsOf: plain)
        let cases: [([String], String)] = [
            (["--model", Self.energyModel.path, "--elements", "C,C,O,H*6"], "not a dipole"),
            (["--model", Self.dipoleModel.path, "--elements", "C,C,O,H*5"], "names 8 atoms but"),
            (["--model", Self.dipoleModel.path, "--elements", "C,C,O,H*5,Xx"], "Xx"),
            (["--model", dir.appendingPathComponent("missing.safetensors").path, "--elements", "C,C,O,H*6"], "missing.safetensors"),
        ]
        for (arguments, fragment) in cases {
            let result = try CLI.run(["dipoles", plain.path] + arguments)
            XCTAssertNotEqual(result.status, 0, arguments.joined(separator: " "))
            XCTAssertTrue(result.stderr.contains(fragment), "\(arguments): \(result.stderr)")
            XCTAssertEqual(try Data(contentsOf: plain), original, "the trajectory is unchanged after \(arguments)")
        }
        // --output naming the model replaced the model with the new trajectory, and exited 0.
        let model = dir.appendingPathComponent("dipole.safetensors")
        try FileManager.default.copyItem(at: Self.dipoleModel, to: model)
        let modelBytes = try Data(contentsOf: model)
        let overModel = try CLI.run(["dipoles", plain.path, "--model", model.path, "--elements", "C,C,O,H*6", "--output", model.path])
        XCTAssertNotEqual(overModel.status, 0)
        XCTAssertTrue(overModel.stderr.contains("--output") && overModel.stderr.contains("--model"), overModel.stderr)
        XCTAssertEqual(try Data(contentsOf: model), modelBytes, "the model is unchanged")
    }
}
