import Foundation
import XCTest
import Geometry
import Trajectory

/// Issue 5, point 6: `eninet-md run` with an ENINet deck runs MD of a molecule and of a
/// periodic system and writes AMBER NetCDF.
final class ENINetRunTests: XCTestCase {
    func runDeck(structure: URL, steps: Int, timestep: Double) throws -> (AmberTrajectoryReader, [Double], URL) {
        let model = CLI.sharedDirectory.appendingPathComponent("eninet-reference/eninet-small.safetensors")
        guard FileManager.default.fileExists(atPath: model.path), FileManager.default.fileExists(atPath: structure.path) else {
            throw XCTSkip("../shared is absent")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("eninet-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let deck = """
        title = "ENINet MD"
        [system]
        structure = "\(structure.path)"
        [potential]
        type = "eninet"
        model = "\(model.path)"
        precision = "double"
        [dynamics]
        integrator = "verlet"
        timestep_fs = \(timestep)
        steps = \(steps)
        seed = 3
        [output]
        log = "log.csv"
        log_every = 5
        trajectory = "t.nc"
        trajectory_every = 5
        velocities_every = 5
        forces_every = 5
        """
        try deck.write(to: dir.appendingPathComponent("deck.toml"), atomically: true, encoding: .utf8)
        let result = try CLI.run(["run", dir.appendingPathComponent("deck.toml").path, "--quiet"], timeout: 300)
        XCTAssertEqual(result.status, 0, result.stderr)
        let log = try String(contentsOf: dir.appendingPathComponent("log.csv"), encoding: .utf8)
        let header = log.split(separator: "\n").first.map { $0.split(separator: ",") } ?? []
        let column = header.firstIndex { $0.hasPrefix("total") } ?? 0
        let totals = log.split(separator: "\n").dropFirst().compactMap { Double($0.split(separator: ",")[column]) }
        return (try AmberTrajectoryReader(path: dir.appendingPathComponent("t.nc").path), totals, dir)
    }

    func testMoleculeRunsAndConservesEnergy() throws {
        let ethanol = CLI.sharedDirectory.appendingPathComponent("data/xtb/ethanol-gfn2-500K.extxyz")
        let (trajectory, totals, dir) = try runDeck(structure: ethanol, steps: 40, timestep: 0.25)
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertEqual(trajectory.frameCount, 9)
        XCTAssertFalse(trajectory.hasCell)
        XCTAssertTrue(trajectory.hasForces && trajectory.hasVelocities)
        XCTAssertEqual(totals.count, 9)
        let drift = (totals.max() ?? 0) - (totals.min() ?? 0)
        XCTAssertLessThan(drift, 1e-3, "total energy of a smooth step in NVE varies by \(drift) eV")
        // The atoms move.
        XCTAssertGreaterThan(norm(try trajectory.frame(8).positions[8] - trajectory.frame(0).positions[8]), 1e-3)
    }

    func testPeriodicCopperRunsAndWritesCell() throws {
        let copper = CLI.sharedDirectory.appendingPathComponent("data/emt/cu108-emt.extxyz")
        let (trajectory, totals, dir) = try runDeck(structure: copper, steps: 10, timestep: 1.0)
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertEqual(trajectory.atomCount, 108)
        XCTAssertEqual(trajectory.frameCount, 3)
        XCTAssertTrue(trajectory.hasCell)
        let cell = try XCTUnwrap(try trajectory.frame(2).cell)
        XCTAssertEqual(cell.volume, 1270.24, accuracy: 0.05)
        XCTAssertEqual(totals.count, 3)
        XCTAssertTrue(totals.allSatisfy(\.isFinite))

        // The run's forces are those of the periodic crystal: frame 0 (stored in float32) equals
        // `evaluate` on the file's first frame with its cell, and not on the same atoms as a cluster.
        var first = try XCTUnwrap(try ExtendedXYZ.read(path: copper.path, frames: 0..<1).first)
        let stored = try trajectory.frame(0)
        XCTAssertLessThan(zip(stored.positions, first.positions).map { norm($0 - $1) }.max() ?? 1, 1e-5)
        func evaluatedForces(_ structure: Structure, _ name: String) throws -> [Double] {
            let path = dir.appendingPathComponent(name).path
            try ExtendedXYZ.write([structure], to: path)
            let model = CLI.sharedDirectory.appendingPathComponent("eninet-reference/eninet-small.safetensors").path
            let object = try XCTUnwrap(try CLI.evaluatedFrames(["--model", model, "--structure", path, "--double"]).first)
            return try XCTUnwrap(object["forces"] as? [[Double]]).flatMap { $0 }
        }
        let periodic = try evaluatedForces(first, "crystal.extxyz")
        first.cell = nil
        let cluster = try evaluatedForces(first, "cluster.extxyz")
        let runForces = try XCTUnwrap(stored.forces).flatMap { [$0.x, $0.y, $0.z] }
        let largest = periodic.map(abs).max() ?? 0
        XCTAssertGreaterThan(largest, 1e-3)
        XCTAssertEqual(runForces.count, periodic.count)
        XCTAssertLessThan(zip(runForces, periodic).map { abs($0 - $1) }.max() ?? 1, 1e-5 * largest, "run against evaluate with the cell")
        XCTAssertGreaterThan(zip(runForces, cluster).map { abs($0 - $1) }.max() ?? 0, 0.1 * largest, "the cluster's forces should differ")
    }
}
