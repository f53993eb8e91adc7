import Foundation
import Geometry
import XCTest
@testable import Trajectory

final class ConverterTests: XCTestCase {
    func testExtendedXYZThroughNetCDFAndBack() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        func p(_ name: String) -> String { dir.appendingPathComponent(name).path }
        let source = TestPaths.fixture("cu64-triclinic-2frames.extxyz")
        let original = try StructureFile.read(path: source)

        XCTAssertEqual(try TrajectoryConverter.convert(input: source, output: p("cu.nc"),
                                                       options: .init(frameIntervalFs: 20)), 2)
        let reader = try AmberTrajectoryReader(path: p("cu.nc"))
        XCTAssertTrue(reader.hasForces && reader.hasCell && !reader.hasVelocities)
        XCTAssertEqual(reader.extraVariableWidths["potential_energy"], 1)
        XCTAssertEqual(try reader.times(), [0, Double(Float(0.02)) * 1000], "time is float32 ps")
        XCTAssertEqual(try reader.readDoubles("potential_energy"), original.map { $0.info["energy"]?[0] ?? 0 })

        assertThrowsMessage([p("cu.nc"), "--symbols-from"]) {
            try TrajectoryConverter.convert(input: p("cu.nc"), output: p("back.extxyz"))
        }
        assertThrowsMessage([TestPaths.fixture("mda-ethanol-pos.frame0.xyz"), "9 atoms", "has 64"]) {
            try TrajectoryConverter.convert(input: p("cu.nc"), output: p("back.extxyz"),
                                            options: .init(symbolsFrom: TestPaths.fixture("mda-ethanol-pos.frame0.xyz")))
        }
        try TrajectoryConverter.convert(input: p("cu.nc"), output: p("back.extxyz"),
                                        options: .init(frames: FrameSelection(start: -1), symbolsFrom: source))
        let back = try XCTUnwrap(StructureFile.read(path: p("back.extxyz")).first)
        XCTAssertEqual(back.symbols, original[1].symbols)
        XCTAssertEqual(back.info["energy"], original[1].info["energy"])
        XCTAssertEqual(back.info["time_fs"]?.first ?? 0, 20, accuracy: 1e-6)
        // The cell comes back in the AMBER orientation: same shape, positions rigidly rotated.
        let cell = try XCTUnwrap(back.cell), originalCell = try XCTUnwrap(original[1].cell)
        XCTAssertEqual(norm(cell.lengths - originalCell.lengths), 0, accuracy: 1e-12)
        for i in [0, 31, 63] {
            XCTAssertEqual(norm(cell.fractional(back.positions[i]) - originalCell.fractional(original[1].positions[i])), 0, accuracy: 2e-6)
            XCTAssertEqual(norm(back.forces?[i] ?? .zero), norm(original[1].forces?[i] ?? .zero), accuracy: 2e-6)
        }

        // Structure → restart keeps everything exactly (doubles, original orientation).
        try TrajectoryConverter.convert(input: source, output: p("cu.ncrst"), options: .init(frames: FrameSelection(start: 0, end: 1)))
        let restart = try AmberRestart.read(path: p("cu.ncrst"))
        XCTAssertEqual(restart.positions, original[0].positions)
        XCTAssertEqual(restart.cell, original[0].cell)
    }

    func testFrameSelectionParsing() throws {
        XCTAssertEqual(Array(try FrameSelection(parsing: "2:8", stride: 3).indices(count: 10)), [2, 5])
        XCTAssertEqual(Array(try FrameSelection(parsing: "-3:").indices(count: 10)), [7, 8, 9])
        XCTAssertEqual(Array(try FrameSelection(parsing: "-1").indices(count: 10)), [9])
        XCTAssertEqual(Array(try FrameSelection(parsing: "4").indices(count: 10)), [4])
        XCTAssertEqual(Array(try FrameSelection(parsing: ":").indices(count: 3)), [0, 1, 2])
        XCTAssertEqual(Array(try FrameSelection(parsing: "5:100").indices(count: 7)), [5, 6])
        assertThrowsMessage(["'x'", "not an integer"]) { _ = try FrameSelection(parsing: "x:4") }
        assertThrowsMessage(["--stride 0"]) { _ = try FrameSelection(parsing: "1:4", stride: 0) }
        // Int.max trapped in `k + 1` ("arithmetic overflow", SIGILL).
        assertThrowsMessage(["out of range"]) { _ = try FrameSelection(parsing: "\(Int.max)") }
        assertThrowsMessage(["out of range"]) { _ = try FrameSelection(parsing: "0:\(Int.min)") }
    }

    /// A NaN position went through `convert` into a restart, where a run would start from it;
    /// and a cell that appears after a frame without one was dropped from every frame.
    func testNonFiniteNumbersAndLateCellsAreRefused() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        func p(_ name: String) -> String { dir.appendingPathComponent(name).path }
        let frame = "2\nProperties=species:S:1:pos:R:3 time_fs=0\nH 0 0 0\nH 0 0 0.74\n"
        try (frame + frame.replacingOccurrences(of: "0 0 0.74", with: "0 nan 0.74").replacingOccurrences(of: "=0", with: "=1"))
            .write(toFile: p("nan.extxyz"), atomically: true, encoding: .utf8)
        for out in ["o.nc", "o.ncrst", "o.xyz"] {
            // The reader refuses it where it stands, before the converter's own check.
            assertThrowsMessage([p("nan.extxyz") + ":8 (frame 1)", "atom 1, column 'pos': 'nan' is not a finite number"]) {
                _ = try TrajectoryConverter.convert(input: p("nan.extxyz"), output: p(out))
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: p(out)), out)
        }
        let boxed = "2\nLattice=\"9 0 0 0 9 0 0 0 9\" Properties=species:S:1:pos:R:3 time_fs=1\nH 0 0 0\nH 0 0 0.74\n"
        try (frame + boxed).write(toFile: p("late-cell.extxyz"), atomically: true, encoding: .utf8)
        assertThrowsMessage(["frame 1 has a cell but frame 0 has none"]) {
            _ = try TrajectoryConverter.convert(input: p("late-cell.extxyz"), output: p("late.nc"))
        }
        // The writer's errors named the temporary file it wrote ("o.nc.convert.tmp"), which the
        // user never asked for and which is gone when the message is read.
        let three = "3\nProperties=species:S:1:pos:R:3 time_fs=1\nH 0 0 0\nH 0 0 0.74\nH 0 0 1.5\n"
        try (frame + three).write(toFile: p("grows.extxyz"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TrajectoryConverter.convert(input: p("grows.extxyz"), output: p("grows.nc"))) {
            XCTAssertTrue("\($0)".contains(p("grows.nc") + ": frame 1 has 3 positions"), "\($0)")
            XCTAssertFalse("\($0)".contains("convert.tmp"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: p("grows.nc")))
        // Into a structure format, the message named neither the frame nor its line.
        XCTAssertThrowsError(try TrajectoryConverter.convert(input: p("grows.extxyz"), output: p("grows.xyz"))) {
            XCTAssertTrue("\($0)".contains("2 atoms, but frame 1 of " + p("grows.extxyz") + " has 3"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: p("grows.xyz")))
    }
}
