import XCTest
import Geometry
import Trajectory
@testable import Analysis

/// The glue between trajectory files and the analyses: the right frames, variables and units.
final class TrajectoryLoadingTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("analysis-load-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func position(_ f: Int, _ i: Int) -> Vec3 { Vec3(Double(i) + 0.01 * Double(f), 2 - 0.02 * Double(f), 0.5 * Double(i)) }
    func velocity(_ f: Int, _ i: Int) -> Vec3 { Vec3(0.001 * Double(f + i), -0.002 * Double(i), 0.003) }
    func dipole(_ f: Int) -> [Double] { [0.1 * Double(f), -0.05, 0.3 + 0.01 * Double(f)] }

    func testNetCDFFrameRangeStrideVariablesAndUnits() throws {
        let path = directory.appendingPathComponent("t.nc").path
        let cell = try Cell.orthorhombic(Vec3(10, 11, 12))
        let writer = try AmberTrajectoryWriter(path: path, atomCount: 3, velocities: true, periodic: true, extras: [.dipole])
        for f in 0..<10 {
            try writer.write(time: 0.5 * Double(f), positions: (0..<3).map { position(f, $0) },
                             velocities: (0..<3).map { velocity(f, $0) }, cell: cell, extras: ["dipole": dipole(f)])
        }
        try writer.close()
        let data = try TrajectoryFile.load(path: path, request: LoadRequest(positions: true, velocities: true, dipoles: true,
                                                                          cells: true, frames: 2..<9, stride: 3))
        XCTAssertEqual(data.frameCount, 3)
        XCTAssertEqual(data.atomCount, 3)
        XCTAssertEqual(try data.frameSpacing(), 1.5, accuracy: 1e-5)   // 3 frames of 0.5 fs
        let picked = [2, 5, 8]
        for (n, f) in picked.enumerated() {
            for i in 0..<3 {
                for k in 0..<3 {
                    let o = (n * 3 + i) * 3 + k
                    XCTAssertEqual(data.positions?[o] ?? .nan, position(f, i)[k], accuracy: 1e-5)   // float32 on file
                    XCTAssertEqual(data.velocities?[o] ?? .nan, velocity(f, i)[k], accuracy: 1e-7)
                }
            }
            for k in 0..<3 { XCTAssertEqual(data.dipoles?[3 * n + k] ?? .nan, dipole(f)[k], accuracy: 1e-12) }
            XCTAssertEqual(data.cells[n]?.lengths ?? .zero, Vec3(10, 11, 12))
        }
        // Not asked for, not read.
        let bare = try TrajectoryFile.load(path: path, request: LoadRequest(positions: true))
        XCTAssertNil(bare.velocities)
        XCTAssertNil(bare.dipoles)
        XCTAssertTrue(bare.cells.isEmpty)
        XCTAssertEqual(bare.frameCount, 10)
    }

    func testExtendedXYZVelocitiesDipolesAndTimes() throws {
        let path = directory.appendingPathComponent("t.extxyz").path
        let structures = (0..<6).map { f in
            Structure(symbols: ["O", "H", "H"], atomicNumbers: [8, 1, 1], positions: (0..<3).map { position(f, $0) },
                      velocities: (0..<3).map { velocity(f, $0) }, info: ["dipole": dipole(f), "time_fs": [2.0 * Double(f)]])
        }
        try StructureFile.write(structures, to: path)
        let data = try TrajectoryFile.load(path: path, request: LoadRequest(positions: true, velocities: true, dipoles: true, stride: 2))
        XCTAssertEqual(data.frameCount, 3)
        XCTAssertEqual(data.symbols ?? [], ["O", "H", "H"])
        XCTAssertEqual(try data.frameSpacing(), 4, accuracy: 1e-12)
        XCTAssertEqual(data.velocities?[3 * 3 + 0] ?? .nan, velocity(2, 0).x, accuracy: 1e-9)
        XCTAssertEqual(data.dipoles?[3 * 2 + 2] ?? .nan, dipole(4)[2], accuracy: 1e-12)
        XCTAssertTrue(data.cells.isEmpty)
        XCTAssertEqual(try data.resolveSymbols(elements: nil, topology: nil), ["O", "H", "H"])
        XCTAssertEqual(try data.masses(symbols: ["O", "H", "H"]), [15.999, 1.008, 1.008])
    }
}
