import Foundation
import Geometry
import XCTest
@testable import Trajectory

final class StructureFileTests: XCTestCase {
    private func sampleStructure() throws -> Structure {
        let cell = try Cell(matrix: Mat3(Vec3(0.0361, 7.1478, 7.4727), Vec3(7.3283, 0.1444, 7.2922),
                                         Vec3(7.2922, 7.2922, 0.0361)), pbc: Periodicity(true, true, false))
        var s = Structure(symbols: ["O", "H", "H", "Cu"], atomicNumbers: [8, 1, 1, 29],
                          positions: [Vec3(0.1, -0.2, 1.0 / 3.0), Vec3(0.757, 0.586, 1e-9),
                                      Vec3(-0.757, 0.586, 123.456789012345), Vec3(2, 3, 4)],
                          cell: cell)
        s.velocities = [Vec3(0.01, -0.02, 0.003), Vec3(0.1, 0.2, -0.3), Vec3(-1e-5, 0, 0.05), Vec3(0.001, 0.002, 0.003)]
        s.forces = [Vec3(1.5, -2.25, 0.125), Vec3(-0.1, 0.2, 0.3), Vec3(1e-12, -7.0, 3.0), Vec3(0, 0, 0)]
        s.info = ["energy": [-309.5614389255835], "dipole": [-0.11996248344122376, 0.3572061539824037, 0.16705058143255214],
                  "stress": [1, 2, 3, 2, 5, 6, 3, 6, 9], "free_energy": [-309.6]]
        s.textInfo = ["note": "a \"quoted\" text with spaces", "converged": "T", "method": "GFN2-xTB"]
        s.atomArrays = ["tags": AtomArray(kind: .integer, width: 1, values: [0, 1, 1, 2]),
                        "charges": AtomArray(kind: .real, width: 1, values: [-0.8, 0.4, 0.4, 0.0])]
        return s
    }

    func testExtendedXYZRoundTripIsExact() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("round.extxyz").path
        let first = try sampleStructure()
        var second = first
        second.positions = first.positions.map { $0 + Vec3(0.5, 0.25, -0.125) }
        second.velocities = nil
        second.cell = nil
        second.atomArrays = [:]
        try StructureFile.write([first, second], to: path)
        let back = try StructureFile.read(path: path)
        XCTAssertEqual(back.count, 2)

        let a = back[0]
        XCTAssertEqual(a.symbols, first.symbols)
        XCTAssertEqual(a.atomicNumbers, first.atomicNumbers)
        XCTAssertEqual(a.positions, first.positions, "shortest round-trip decimals must give identical Doubles")
        XCTAssertEqual(a.forces ?? [], first.forces ?? [])
        XCTAssertEqual(a.cell?.matrix, first.cell?.matrix)
        XCTAssertEqual(a.cell?.pbc, Periodicity(true, true, false))
        XCTAssertEqual(a.info, first.info)
        XCTAssertEqual(a.textInfo, first.textInfo)
        XCTAssertEqual(a.atomArrays, first.atomArrays)
        // Velocities pass through ASE momenta (v·m·t_ASE, then /(m·t_ASE)): equal to rounding.
        let v = try XCTUnwrap(a.velocities)
        for (x, y) in zip(v, first.velocities ?? []) {
            XCTAssertLessThanOrEqual(norm(x - y), 4e-16 * max(norm(y), 1e-300) + 1e-30)
        }
        let b = back[1]
        XCTAssertNil(b.cell)
        XCTAssertNil(b.velocities)
        XCTAssertEqual(b.positions, second.positions)
    }

    func testMomentaColumnConvertsASEUnits() throws {
        // 1 amu·Å/t_ASE on hydrogen (1.008 amu) is 1/(1.008·10.1805...) Å/fs.
        let text = "1\nProperties=species:S:1:pos:R:3:momenta:R:3 pbc=\"F F F\"\nH 0 0 0 1.008 0 -2.016\n"
        let s = try XCTUnwrap(ExtendedXYZ.read(text: text).first)
        XCTAssertEqual(aseTimeUnitInFemtoseconds, 10.180505671156725, accuracy: 1e-13, "1/ase.units.fs (ASE 3.29, CODATA 2014)")
        let v = try XCTUnwrap(s.velocities?.first)
        XCTAssertEqual(v.x, 1 / aseTimeUnitInFemtoseconds, accuracy: 1e-15)
        XCTAssertEqual(v.z, -2 / aseTimeUnitInFemtoseconds, accuracy: 1e-15)
        // `velocities` are in ASE's units too: the same atom moving at 1 Å per ASE time unit.
        let aseVelocities = "1\nProperties=species:S:1:pos:R:3:velocities:R:3 pbc=\"F F F\"\nH 0 0 0 1 0 -2\n"
        let w = try XCTUnwrap(ExtendedXYZ.read(text: aseVelocities).first?.velocities?.first)
        XCTAssertEqual(w.x, v.x, accuracy: 1e-15)
        XCTAssertEqual(w.z, v.z, accuracy: 1e-15)
        // `vel` is Å/fs as written.
        let gpumd = "1\nProperties=species:S:1:pos:R:3:vel:R:3\nH 0 0 0 0.5 0 0\n"
        XCTAssertEqual(try ExtendedXYZ.read(text: gpumd).first?.velocities?.first?.x, 0.5)
    }

    /// Momenta of an atom with its own mass (deuterium, 2.014 amu) turn into velocities with
    /// that mass, on reading and on writing (ASE's `masses` column).
    func testMomentaUseTheFilesOwnMasses() throws {
        let text = "1\nProperties=species:S:1:pos:R:3:masses:R:1:momenta:R:3 pbc=\"F F F\"\nH 0 0 0 2.014 2.014 0 -4.028\n"
        let s = try XCTUnwrap(ExtendedXYZ.read(text: text).first)
        let v = try XCTUnwrap(s.velocities?.first)
        XCTAssertEqual(v.x, 1 / aseTimeUnitInFemtoseconds, accuracy: 1e-15)
        XCTAssertEqual(v.z, -2 / aseTimeUnitInFemtoseconds, accuracy: 1e-15)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("deuterium-\(UUID().uuidString).extxyz").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try StructureFile.write([s], to: path)
        let back = try StructureFile.readFirst(path: path)
        XCTAssertEqual(back.masses, [2.014])
        XCTAssertEqual(try XCTUnwrap(back.velocities?.first).x, v.x, accuracy: 1e-15)
        // Written as momenta with that mass: 2.014 amu·Å per ASE time unit.
        XCTAssertTrue(try String(contentsOfFile: path, encoding: .utf8).contains("2.014"), "the masses column")
    }

    /// A six-value `stress` is ASE's Voigt order, xx yy zz yz xz xy; the file gets the full
    /// symmetric 3×3 (the only form ASE's reader takes), rows in order.
    func testVoigtStressIsWrittenAsTheFullMatrix() throws {
        var s = Structure(symbols: ["Ar"], atomicNumbers: [18], positions: [Vec3(0, 0, 0)], cell: try Cell.orthorhombic(Vec3(5, 5, 5)))
        s.info["stress"] = [1, 2, 3, 4, 5, 6]
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("voigt-\(UUID().uuidString).extxyz").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try StructureFile.write([s], to: path)
        XCTAssertEqual(try StructureFile.readFirst(path: path).info["stress"], [1, 6, 5, 6, 2, 4, 5, 4, 3])
    }

    func testTriclinicEMTFramesKeepFullLattice() throws {
        let frames = try StructureFile.read(path: TestPaths.fixture("cu64-triclinic-2frames.extxyz"))
        XCTAssertEqual(frames.count, 2)
        let f = frames[0]
        XCTAssertEqual(f.count, 64)
        XCTAssertTrue(f.symbols.allSatisfy { $0 == "Cu" })
        let cell = try XCTUnwrap(f.cell)
        XCTAssertEqual(cell.a, Vec3(0.0361, 7.147799999999999, 7.4727))
        XCTAssertEqual(cell.b, Vec3(7.3283000000000005, 0.1444, 7.2922))
        XCTAssertEqual(cell.c, Vec3(7.2922, 7.292199999999999, 0.03609999999999999))
        XCTAssertEqual(cell.pbc, .all)
        XCTAssertEqual(cell.lengths.x, 10.34087, accuracy: 1e-5)
        XCTAssertEqual(cell.lengths.y, 10.33929, accuracy: 1e-5)
        XCTAssertEqual(cell.lengths.z, 10.31279, accuracy: 1e-5)
        XCTAssertEqual(cell.anglesDegrees.x, 59.10106, accuracy: 1e-5)
        XCTAssertEqual(cell.anglesDegrees.y, 60.41196, accuracy: 1e-5)
        XCTAssertEqual(cell.anglesDegrees.z, 58.54714, accuracy: 1e-5)
        XCTAssertEqual(cell.volume, 767.75, accuracy: 0.01)
        XCTAssertEqual(f.positions[0], Vec3(-0.08294447, 0.09240830, -0.16618306))
        XCTAssertEqual(f.forces?[0], Vec3(0.35344688, 0.44159039, -0.15351193))
        XCTAssertEqual(f.info["energy"], [5.037747179490188])
        XCTAssertEqual(f.info["stress"]?.count, 9)
        XCTAssertEqual(f.info["stress"]?[1], 0.007438581904531417)
        XCTAssertEqual(f.info["stress_voigt"]?[5], 0.007438581904531417)
        XCTAssertEqual(f.info["temperature_K_target"], [600])
        XCTAssertNotEqual(frames[1].positions[0], f.positions[0])

        // The same frames from the full shared file, reading only a range.
        if let full = try? TestPaths.sharedFile("data/emt/cu64-triclinic-emt.extxyz") {
            let firstThree = try StructureFile.read(path: full, frames: 0..<3)
            XCTAssertEqual(firstThree.count, 3)
            XCTAssertEqual(firstThree[1].positions, frames[1].positions)
            let late = try StructureFile.read(path: full, frames: 150..<152)
            XCTAssertEqual(late.count, 2)
            XCTAssertEqual(late[0].info["temperature_K_target"], [1200])
        }
    }

    func testPlainXYZAndPDB() throws {
        let xyz = "3\n water molecule \nO 0.0 0.0 0.117 -0.5\nH 0.0 0.757 -0.47 0.25\nH 0.0 -0.757 -0.47 0.25\n"
        let w = try XCTUnwrap(ExtendedXYZ.read(text: xyz).first)
        XCTAssertEqual(w.symbols, ["O", "H", "H"])
        XCTAssertEqual(w.positions[1], Vec3(0, 0.757, -0.47))
        XCTAssertEqual(w.textInfo["comment"], "water molecule")
        XCTAssertNil(w.cell)

        let pdb = """
        CRYST1   20.000   21.000   22.000  90.00  90.00 120.00 P 1           1
        ATOM      1  OW  SOL     1       1.000   2.000   3.000  1.00  0.00           O
        ATOM      2  HW1 SOL     1       1.500   2.500   3.500  1.00  0.00
        HETATM    3 CL   CL      2      -4.250   0.000  10.125  1.00  0.00
        END
        """
        let p = try XCTUnwrap(PDB.read(text: pdb).first)
        XCTAssertEqual(p.symbols, ["O", "H", "Cl"])
        XCTAssertEqual(p.positions[2], Vec3(-4.25, 0, 10.125))
        let cell = try XCTUnwrap(p.cell)
        XCTAssertEqual(cell.a, Vec3(20, 0, 0))
        XCTAssertEqual(cell.b.x, 21 * cos(120 * Double.pi / 180), accuracy: 1e-12)
        XCTAssertEqual(cell.lengths.y, 21, accuracy: 1e-12)
        XCTAssertEqual(cell.c, Vec3(0, 0, 22))
        // VMD writes zero lengths for a system without a box, the PDB standard 1 1 1: no cell.
        for lengths in ["   0.000    0.000    0.000", "   1.000    1.000    1.000"] {
            let boxless = "CRYST1\(lengths)  90.00  90.00  90.00 P 1           1\n" + pdb.split(separator: "\n").dropFirst().joined(separator: "\n")
            let molecule = try XCTUnwrap(PDB.read(text: boxless).first)
            XCTAssertNil(molecule.cell, lengths)
            XCTAssertEqual(molecule.positions, p.positions)
        }
        // A cell that cannot be is named in plain numbers (a Swift vector printed as SIMD3<Double>(…)).
        let flat = "CRYST1   -5.000   10.000   10.000  90.00  90.00  90.00 P 1           1\n" + pdb.split(separator: "\n").dropFirst().joined(separator: "\n")
        XCTAssertThrowsError(try PDB.read(text: flat, path: "flat.pdb")) {
            XCTAssertTrue("\($0)".contains("flat.pdb:1: CRYST1:") && "\($0)".contains("(-5.0, 10.0, 10.0)"), "\($0)")
            XCTAssertFalse("\($0)".contains("SIMD3"), "\($0)")
        }
        let coplanar = "CRYST1   10.000   10.000   10.000 120.00 120.00 120.00 P 1           1\n" + pdb.split(separator: "\n").dropFirst().joined(separator: "\n")
        XCTAssertThrowsError(try PDB.read(text: coplanar, path: "coplanar.pdb")) {
            XCTAssertTrue("\($0)".contains("coplanar.pdb:1: CRYST1:") && "\($0)".contains("span no volume"), "\($0)")
            XCTAssertFalse("\($0)".contains("SIMD3"), "\($0)")
        }

        // PDB writer → reader keeps elements, three decimals and the cell.
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("w.pdb").path
        try StructureFile.write([p], to: out)
        let again = try StructureFile.readFirst(path: out)
        XCTAssertEqual(again.symbols, p.symbols)
        XCTAssertEqual(again.positions, p.positions)
        XCTAssertEqual(again.cell?.lengths.x ?? 0, 20, accuracy: 1e-9)
    }

    func testBrokenXYZErrorsNameFileLineAndFrame() throws {
        let frame0 = "2\nProperties=species:S:1:pos:R:3 energy=1.0\nH 0 0 0\nH 0 0 0.74\n"
        assertThrowsMessage(["bad.xyz:8", "(frame 1)", "'0.7x'", "pos"]) {
            _ = try ExtendedXYZ.read(text: frame0 + "2\nenergy=2\nH 0 0 0\nH 0 0 0.7x\n", path: "bad.xyz")
        }
        assertThrowsMessage(["bad.xyz:3", "unknown element 'Qq'"]) {
            _ = try ExtendedXYZ.read(text: "1\nenergy=1\nQq 0 0 0\n", path: "bad.xyz")
        }
        // A NaN position is refused where it stands; it surfaced as a non-finite force on atom 0.
        assertThrowsMessage(["bad.xyz:9", "(frame 1)", "atom 2, column 'pos': 'nan' is not a finite number"]) {
            _ = try ExtendedXYZ.read(text: frame0 + "3\nenergy=2\nH 0 0 0\nH 0 0 0.74\nH nan 0 2\n", path: "bad.xyz")
        }
        assertThrowsMessage(["bad.xyz:4", "atom 1, column 'vel': 'inf' is not a finite number"]) {
            _ = try ExtendedXYZ.read(text: "2\nProperties=species:S:1:pos:R:3:vel:R:3\nH 0 0 0 0 0 0\nH 0 0 1 0 inf 0\n", path: "bad.xyz")
        }
        assertThrowsMessage(["bad.xyz:11", "(frame 2)", "1 of 2 atoms", "truncated"]) {
            _ = try ExtendedXYZ.read(text: frame0 + frame0 + "2\nenergy=3\nH 0 0 0\n", path: "bad.xyz")
        }
        assertThrowsMessage(["bad.xyz:2", "Lattice", "9 numbers"]) {
            _ = try ExtendedXYZ.read(text: "1\nLattice=\"1 0 0 0 1 0\"\nH 0 0 0\n", path: "bad.xyz")
        }
        // ASE keeps the last of two values for one key, and so did this reader: a second cell
        // silently replaced the first.
        assertThrowsMessage(["bad.xyz:2", "'Lattice' twice"]) {
            _ = try ExtendedXYZ.read(text: "1\nLattice=\"9 0 0 0 9 0 0 0 9\" Lattice=\"5 0 0 0 5 0 0 0 5\"\nH 0 0 0\n", path: "bad.xyz")
        }
        assertThrowsMessage(["bad.xyz:2", "unterminated"]) {
            _ = try ExtendedXYZ.read(text: "1\ncomment=\"never closed\nH 0 0 0\n", path: "bad.xyz")
        }
        assertThrowsMessage(["bad.xyz:3", "atom 0 has 4 columns", "needs 7"]) {
            _ = try ExtendedXYZ.read(text: "1\nProperties=species:S:1:pos:R:3:forces:R:3\nH 0 0 0\n", path: "bad.xyz")
        }
        assertThrowsMessage(["bad.xyz:1", "number of atoms", "'two'"]) {
            _ = try ExtendedXYZ.read(text: "two\n\nH 0 0 0\n", path: "bad.xyz")
        }
        assertThrowsMessage(["bad.pdb:1", "x coordinate"]) {
            _ = try PDB.read(text: "ATOM      1  O   SOL     1       1.0a0   2.000   3.000\n", path: "bad.pdb")
        }
        assertThrowsMessage(["missing.xyz", "no such file"]) {
            _ = try StructureFile.read(path: "/nonexistent/missing.xyz")
        }
        // A UTF-8 byte-order mark made the count line "\u{FEFF}1", refused with the mark invisible.
        XCTAssertEqual(try ExtendedXYZ.read(text: "\u{FEFF}1\nenergy=1\nH 0 0 0.5\n").first?.positions, [Vec3(0, 0, 0.5)])
        // Counts far beyond the file were reserved before the atom lines were read: an abort
        // ("failed to allocate 32000000032 bytes") or heap corruption for Int.max.
        for count in ["1000000000", "\(Int.max)"] {
            assertThrowsMessage(["bad.xyz", "1 of \(count) atoms", "truncated"]) {
                _ = try ExtendedXYZ.read(text: "\(count)\nProperties=species:S:1:pos:R:3:forces:R:3\nH 0 0 0 0 0 0\n", path: "bad.xyz")
            }
        }
    }
}
