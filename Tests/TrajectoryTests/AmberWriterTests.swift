import CNetCDF
import Foundation
import Geometry
import XCTest
@testable import Trajectory

/// Inspects a NetCDF file through libnetcdf alone, independently of the module's reader.
struct RawNetCDF {
    let ncid: Int32

    init(_ path: String) throws {
        var id: Int32 = -1
        let status = nc_open(path, NC_NOWRITE, &id)
        guard status == NC_NOERR else { throw TrajectoryError("raw open failed: \(status)") }
        ncid = id
    }

    func close() { nc_close(ncid) }

    var format: Int32 { var f: Int32 = 0; nc_inq_format(ncid, &f); return f }

    func text(_ name: String, variable: Int32 = NC_GLOBAL) -> String? {
        var type: nc_type = 0, length = 0
        guard nc_inq_att(ncid, variable, name, &type, &length) == NC_NOERR, type == NC_CHAR else { return nil }
        var chars = [CChar](repeating: 0, count: length + 1)
        nc_get_att_text(ncid, variable, name, &chars)
        return String(cString: chars)
    }

    func number(_ name: String, variable: Int32) -> Double? {
        var type: nc_type = 0, length = 0
        guard nc_inq_att(ncid, variable, name, &type, &length) == NC_NOERR, type == NC_DOUBLE, length == 1 else { return nil }
        var value = 0.0
        nc_get_att_double(ncid, variable, name, &value)
        return value
    }

    func hasAttribute(_ name: String, variable: Int32) -> Bool {
        var type: nc_type = 0, length = 0
        return nc_inq_att(ncid, variable, name, &type, &length) == NC_NOERR
    }

    func dimension(_ name: String) -> Int? {
        var id: Int32 = -1, length = 0
        guard nc_inq_dimid(ncid, name, &id) == NC_NOERR, nc_inq_dimlen(ncid, id, &length) == NC_NOERR else { return nil }
        return length
    }

    var unlimitedName: String? {
        var id: Int32 = -1
        guard nc_inq_unlimdim(ncid, &id) == NC_NOERR, id >= 0 else { return nil }
        var name = [CChar](repeating: 0, count: 257)
        nc_inq_dimname(ncid, id, &name)
        return String(cString: name)
    }

    func variable(_ name: String) -> Int32? {
        var id: Int32 = -1
        return nc_inq_varid(ncid, name, &id) == NC_NOERR ? id : nil
    }

    /// Type and dimension names of a variable.
    func signature(_ name: String) -> (type: nc_type, dims: [String])? {
        guard let id = variable(name) else { return nil }
        var type: nc_type = 0, ndims: Int32 = 0
        nc_inq_vartype(ncid, id, &type)
        nc_inq_varndims(ncid, id, &ndims)
        var dimIDs = [Int32](repeating: 0, count: Int(ndims))
        if ndims > 0 { nc_inq_vardimid(ncid, id, &dimIDs) }
        let names = dimIDs.map { d -> String in
            var n = [CChar](repeating: 0, count: 257)
            nc_inq_dimname(ncid, d, &n)
            return String(cString: n)
        }
        return (type, names)
    }

    func floats(_ name: String) -> [Float] {
        guard let id = variable(name) else { return [] }
        var total = 1
        for d in dimensionLengths(id) { total *= d }
        var out = [Float](repeating: 0, count: total)
        nc_get_var_float(ncid, id, &out)
        return out
    }

    func doubles(_ name: String) -> [Double] {
        guard let id = variable(name) else { return [] }
        var total = 1
        for d in dimensionLengths(id) { total *= d }
        var out = [Double](repeating: 0, count: total)
        nc_get_var_double(ncid, id, &out)
        return out
    }

    func chars(_ name: String) -> String {
        guard let id = variable(name) else { return "" }
        var total = 1
        for d in dimensionLengths(id) { total *= d }
        var out = [CChar](repeating: 0, count: total + 1)
        nc_get_var_text(ncid, id, &out)
        return String(cString: out)
    }

    func dimensionLengths(_ id: Int32) -> [Int] {
        var ndims: Int32 = 0
        nc_inq_varndims(ncid, id, &ndims)
        var dimIDs = [Int32](repeating: 0, count: Int(ndims))
        if ndims > 0 { nc_inq_vardimid(ncid, id, &dimIDs) }
        return dimIDs.map { d in var l = 0; nc_inq_dimlen(ncid, d, &l); return l }
    }
}

final class AmberWriterTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws { directory = try TestPaths.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Deterministic awkward numbers (not exactly representable in Float).
    private func vectors(_ n: Int, seed: Double, scale: Double) -> [Vec3] {
        (0..<n).map { i in
            let t = Double(i) + seed
            return Vec3(sin(1.37 * t + 0.1), cos(2.11 * t - 0.3), sin(0.73 * t + 1.9) * cos(t)) * scale
        }
    }

    private struct Case {
        var name: String
        var cell: Cell?
        var velocities: Bool
        var forces: Bool
        var extras: [AmberExtraVariable]
    }

    func testWrittenTrajectoriesFollowTheConventionAndReadBackBitForBit() throws {
        let n = 7
        let triclinic = try Cell.fromLengthsAndAngles(Vec3(10.5, 11.25, 12.125), Vec3(80, 95, 105))
        let cases = [
            Case(name: "periodic-all.nc", cell: triclinic, velocities: true, forces: true,
                 extras: [.potentialEnergy, .kineticEnergy, .temperature, .dipole]),
            Case(name: "periodic-ortho-forces.nc", cell: try Cell.orthorhombic(Vec3(20, 21, 22)), velocities: false, forces: true, extras: []),
            Case(name: "vacuum-plain.nc", cell: nil, velocities: false, forces: false, extras: []),
            Case(name: "vacuum-vel.nc", cell: nil, velocities: true, forces: false, extras: [.dipole]),
        ]
        for c in cases {
            let file = path(c.name)
            let writer = try AmberTrajectoryWriter(path: file, atomCount: n, velocities: c.velocities, forces: c.forces,
                                                   periodic: c.cell != nil, extras: c.extras, title: "test \(c.name)")
            var frames: [Frame] = []
            for k in 0..<3 {
                var frame = Frame(time: 0.5 * Double(k) + 1.0 / 3.0, positions: vectors(n, seed: Double(k), scale: 5.3),
                                  cell: c.cell)
                if c.velocities { frame.velocities = vectors(n, seed: 10 + Double(k), scale: 0.0123) }
                if c.forces { frame.forces = vectors(n, seed: 20 + Double(k), scale: 1.7) }
                frame.extras = ["potential_energy": [-309.5614389255835 + Double(k)], "kinetic_energy": [0.25],
                                "temperature": [301.5], "dipole": [0.1, -0.2, 0.3 + Double(k)]]
                try writer.write(frame)
                frames.append(frame)
            }
            // Every frame is synced: the file is complete before close.
            let raw = try RawNetCDF(file)
            defer { raw.close() }
            XCTAssertEqual(raw.format, NC_FORMAT_64BIT_OFFSET, c.name)
            let magic = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)).prefix(4))
            XCTAssertEqual(magic, [0x43, 0x44, 0x46, 0x02], "\(c.name): magic must be CDF\\x02")
            XCTAssertEqual(raw.text("Conventions"), "AMBER")
            XCTAssertEqual(raw.text("ConventionVersion"), "1.0")
            XCTAssertEqual(raw.text("program"), "ENINetMD")
            XCTAssertEqual(raw.text("programVersion"), AmberNetCDF.programVersion)
            XCTAssertEqual(raw.text("title"), "test \(c.name)")
            XCTAssertEqual(raw.unlimitedName, "frame")
            XCTAssertEqual(raw.dimension("frame"), 3)
            XCTAssertEqual(raw.dimension("spatial"), 3)
            XCTAssertEqual(raw.dimension("atom"), n)
            XCTAssertEqual(raw.chars("spatial"), "xyz")
            let periodic = c.cell != nil
            XCTAssertEqual(raw.dimension("cell_spatial"), periodic ? 3 : nil)
            XCTAssertEqual(raw.dimension("cell_angular"), periodic ? 3 : nil)
            XCTAssertEqual(raw.dimension("label"), periodic ? 5 : nil)

            func expect(_ name: String, _ type: nc_type, _ dims: [String], _ units: String?, present: Bool = true) {
                let sig = raw.signature(name)
                guard present else { XCTAssertNil(sig, "\(c.name): \(name) must be absent"); return }
                XCTAssertEqual(sig?.type, type, "\(c.name): type of \(name)")
                XCTAssertEqual(sig?.dims, dims, "\(c.name): dimensions of \(name)")
                guard let id = raw.variable(name) else { return }
                XCTAssertEqual(raw.text("units", variable: id), units, "\(c.name): units of \(name)")
                XCTAssertFalse(raw.hasAttribute("scale_factor", variable: id), "\(c.name): \(name) must have no scale_factor")
            }
            expect("time", NC_FLOAT, ["frame"], "picosecond")
            expect("coordinates", NC_FLOAT, ["frame", "atom", "spatial"], "angstrom")
            expect("velocities", NC_FLOAT, ["frame", "atom", "spatial"], "angstrom/picosecond", present: c.velocities)
            expect("forces", NC_FLOAT, ["frame", "atom", "spatial"], "kilocalorie/mole/angstrom", present: c.forces)
            expect("cell_lengths", NC_DOUBLE, ["frame", "cell_spatial"], "angstrom", present: periodic)
            expect("cell_angles", NC_DOUBLE, ["frame", "cell_angular"], "degree", present: periodic)
            expect("cell_spatial", NC_CHAR, ["cell_spatial"], nil, present: periodic)
            expect("cell_angular", NC_CHAR, ["cell_angular", "label"], nil, present: periodic)
            if periodic {
                XCTAssertEqual(raw.chars("cell_spatial"), "abc")
                XCTAssertEqual(raw.chars("cell_angular"), "alphabeta gamma")
            }
            for extra in [AmberExtraVariable.potentialEnergy, .kineticEnergy, .temperature, .dipole] {
                expect(extra.name, NC_DOUBLE, extra.width == 1 ? ["frame"] : ["frame", "spatial"], extra.units,
                       present: c.extras.contains(extra))
            }

            // Stored values are exactly the Float of the converted inputs.
            let times = raw.floats("time"), coordinates = raw.floats("coordinates")
            let velocities = raw.floats("velocities"), forces = raw.floats("forces")
            for (k, frame) in frames.enumerated() {
                XCTAssertEqual(times[k], Float(frame.time / 1000))
                for i in 0..<n {
                    for a in 0..<3 {
                        let index = (k * n + i) * 3 + a
                        XCTAssertEqual(coordinates[index], Float(frame.positions[i][a]))
                        if c.velocities { XCTAssertEqual(velocities[index], Float((frame.velocities?[i] ?? .zero)[a] * 1000)) }
                        if c.forces { XCTAssertEqual(forces[index], Float((frame.forces?[i] ?? .zero)[a] * Units.kcalPerMolPerEV)) }
                    }
                }
            }
            if let cell = c.cell {
                let lengths = raw.doubles("cell_lengths"), angles = raw.doubles("cell_angles")
                XCTAssertEqual(Array(lengths[3..<6]), [cell.lengths.x, cell.lengths.y, cell.lengths.z])
                XCTAssertEqual(Array(angles[3..<6]), [cell.anglesDegrees.x, cell.anglesDegrees.y, cell.anglesDegrees.z])
            }
            if c.extras.contains(.dipole) { XCTAssertEqual(Array(raw.doubles("dipole")[6..<9]), [0.1, -0.2, 2.3]) }
            if c.extras.contains(.potentialEnergy) { XCTAssertEqual(raw.doubles("potential_energy")[1], -308.5614389255835) }

            // The module's reader returns those Floats, converted back.
            let reader = try AmberTrajectoryReader(path: file)
            XCTAssertEqual(reader.frameCount, 3)
            XCTAssertEqual(reader.hasVelocities, c.velocities)
            XCTAssertEqual(reader.hasForces, c.forces)
            XCTAssertEqual(reader.hasCell, periodic)
            XCTAssertEqual(reader.hasDipole, c.extras.contains(.dipole))
            let back = try reader.frame(2)
            XCTAssertEqual(back.positions, frames[2].positions.map { Vec3(Double(Float($0.x)), Double(Float($0.y)), Double(Float($0.z))) })
            XCTAssertEqual(back.time, Double(Float(frames[2].time / 1000)) * 1000)
            if c.velocities {
                let expected = try XCTUnwrap(frames[2].velocities).map { v in
                    Vec3(Double(Float(v.x * 1000)), Double(Float(v.y * 1000)), Double(Float(v.z * 1000))) / 1000
                }
                XCTAssertEqual(back.velocities ?? [], expected)
            } else {
                XCTAssertNil(back.velocities)
            }
            if let cell = c.cell {
                let got = try XCTUnwrap(back.cell)
                for r in 0..<3 { for col in 0..<3 { XCTAssertEqual(got.matrix[r, col], cell.matrix[r, col], accuracy: 1e-12) } }
            }
            let bulk = try reader.readFloats("coordinates", frames: 1..<3)
            XCTAssertEqual(bulk, Array(coordinates[(3 * n)..<(9 * n)]))
            try reader.close()
        }
    }

    func testFramesWithoutVelocitiesHoldFillValuesAndReadAsAbsent() throws {
        let file = path("strided.nc")
        let n = 4
        let writer = try AmberTrajectoryWriter(path: file, atomCount: n, velocities: true, extras: [.temperature])
        for k in 0..<4 {
            try writer.write(time: Double(k), positions: vectors(n, seed: Double(k), scale: 2),
                             velocities: k % 2 == 0 ? vectors(n, seed: 5, scale: 0.01) : nil,
                             extras: k == 3 ? [:] : ["temperature": [300 + Double(k)]])
        }
        try writer.close()
        let raw = try RawNetCDF(file)
        XCTAssertEqual(raw.floats("velocities")[3 * n], NC_FILL_FLOAT, "frame 1 velocities are fill values")
        raw.close()
        let reader = try AmberTrajectoryReader(path: file)
        XCTAssertNotNil(try reader.frame(0).velocities)
        XCTAssertNil(try reader.frame(1).velocities)
        XCTAssertNotNil(try reader.frame(2).velocities)
        XCTAssertEqual(try reader.frame(2).extras["temperature"], [302])
        XCTAssertNil(try reader.frame(3).extras["temperature"])
    }

    func testRotatedTriclinicCellIsStoredInStandardOrientationConsistently() throws {
        let structures = try StructureFile.read(path: TestPaths.fixture("cu64-triclinic-2frames.extxyz"))
        let s = structures[0]
        let cell = try XCTUnwrap(s.cell)
        let file = path("cu64.nc")
        let velocities = vectors(s.count, seed: 0.41, scale: 0.02)
        let dipole = Vec3(0.7, -1.3, 2.2)
        let writer = try AmberTrajectoryWriter(path: file, atomCount: s.count, velocities: true, forces: true, periodic: true,
                                               extras: [.dipole])
        try writer.write(time: 0, positions: s.positions, velocities: velocities, forces: s.forces, cell: cell,
                         extras: ["dipole": [dipole.x, dipole.y, dipole.z]])
        try writer.close()
        let back = try AmberTrajectoryReader(path: file).frame(0)
        let stored = try XCTUnwrap(back.cell)
        XCTAssertEqual(stored.matrix[0, 1], 0)
        XCTAssertEqual(stored.matrix[0, 2], 0)
        XCTAssertEqual(stored.matrix[1, 2], 0)
        XCTAssertEqual(norm(stored.lengths - cell.lengths), 0, accuracy: 1e-12)
        XCTAssertEqual(norm(stored.anglesDegrees - cell.anglesDegrees), 0, accuracy: 1e-10)
        // A rigid rotation: fractional coordinates, distances and |F| are unchanged (to float32).
        for i in [0, 17, 63] {
            XCTAssertEqual(norm(stored.fractional(back.positions[i]) - cell.fractional(s.positions[i])), 0, accuracy: 2e-6)
            XCTAssertEqual(norm(back.positions[i] - back.positions[5]), norm(s.positions[i] - s.positions[5]), accuracy: 1e-5)
            XCTAssertEqual(norm(back.forces?[i] ?? .zero), norm(s.forces?[i] ?? .zero), accuracy: 1e-6)
        }
        // The same rotation for every vector: its projection on a bond of the stored frame is
        // the one on that bond as given. Lengths alone would not see a vector left unrotated.
        XCTAssertGreaterThan(norm(back.positions[17] - s.positions[17]), 0.5, "the cell must really turn for this check")
        let storedDipole = try XCTUnwrap(back.extras["dipole"])
        for i in [0, 17, 63] {
            let bond = back.positions[i] - back.positions[5], givenBond = s.positions[i] - s.positions[5]
            let force = try XCTUnwrap(back.forces?[i]), givenForce = try XCTUnwrap(s.forces?[i])
            let velocity = try XCTUnwrap(back.velocities?[i])
            XCTAssertEqual(dot(force, bond), dot(givenForce, givenBond), accuracy: 1e-4, "force \(i)")
            XCTAssertEqual(dot(velocity, bond), dot(velocities[i], givenBond), accuracy: 1e-5, "velocity \(i)")
            XCTAssertEqual(dot(Vec3(storedDipole[0], storedDipole[1], storedDipole[2]), bond), dot(dipole, givenBond),
                           accuracy: 1e-5, "dipole against bond \(i)")
        }
    }

    func testAppendingContinuesAndCanDropLaterFrames() throws {
        let file = path("append.nc")
        let n = 3
        let cell = try Cell.orthorhombic(Vec3(9, 9, 9))
        do {
            let writer = try AmberTrajectoryWriter(path: file, atomCount: n, velocities: true, periodic: true, extras: [.potentialEnergy])
            for k in 0..<4 {
                try writer.write(time: Double(k) * 10, positions: vectors(n, seed: Double(k), scale: 3),
                                 velocities: vectors(n, seed: 1, scale: 0.02), cell: cell, extras: ["potential_energy": [Double(k)]])
            }
        }
        let appender = try AmberTrajectoryWriter(appendingTo: file)
        XCTAssertEqual(appender.frameCount, 4)
        XCTAssertEqual(appender.extras, [.potentialEnergy])
        XCTAssertTrue(appender.isPeriodic && appender.hasVelocities && !appender.hasForces)
        try appender.write(time: 40, positions: vectors(n, seed: 4, scale: 3), velocities: vectors(n, seed: 1, scale: 0.02),
                           cell: cell, extras: ["potential_energy": [4]])
        try appender.close()
        let five = try AmberTrajectoryReader(path: file)
        XCTAssertEqual(five.frameCount, 5)
        XCTAssertEqual(try five.times(), [0.0, 10, 20, 30, 40].map { Double(Float($0 / 1000)) * 1000 })
        let before = try five.readFloats("coordinates", frames: 0..<2)
        try five.close()

        // Continue from a restart taken at frame 1: frames 2... are dropped, then frame 2 rewritten.
        let truncating = try AmberTrajectoryWriter(appendingTo: file, keepingFrames: 2)
        XCTAssertEqual(truncating.frameCount, 2)
        try truncating.write(time: 20, positions: vectors(n, seed: 9, scale: 3), velocities: nil, cell: cell)
        try truncating.close()
        let three = try AmberTrajectoryReader(path: file)
        XCTAssertEqual(three.frameCount, 3)
        XCTAssertEqual(try three.readFloats("coordinates", frames: 0..<2), before, "kept frames are copied bit for bit")
        XCTAssertEqual(try three.readDoubles("potential_energy"), [0, 1, AmberNetCDF.doubleFill])
        XCTAssertNil(try three.frame(2).velocities)
        XCTAssertFalse(FileManager.default.fileExists(atPath: file + ".truncate.tmp"))
    }

    /// A restart (like every file written through a temporary one and renamed into place)
    /// written at a symbolic link rewrites the file the link names; the link stays a link.
    func testARestartWrittenThroughALinkRewritesTheFileItNames() throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: path("elsewhere"), withIntermediateDirectories: true)
        try AmberRestart(time: 1, positions: [Vec3(1, 2, 3)]).write(to: path("elsewhere/real.ncrst"))
        try fm.setAttributes([.posixPermissions: 0o640], ofItemAtPath: path("elsewhere/real.ncrst"))
        try fm.createSymbolicLink(atPath: path("link.ncrst"), withDestinationPath: path("elsewhere/real.ncrst"))

        try AmberRestart(time: 2, positions: [Vec3(4, 5, 6)], step: 7).write(to: path("link.ncrst"))
        XCTAssertEqual(try fm.destinationOfSymbolicLink(atPath: path("link.ncrst")), path("elsewhere/real.ncrst"))
        let real = try AmberRestart.read(path: path("elsewhere/real.ncrst"))
        XCTAssertEqual(real.positions, [Vec3(4, 5, 6)])
        XCTAssertEqual(real.step, 7)
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: path("elsewhere")), ["real.ncrst"], "no temporary file left")
        XCTAssertEqual((try fm.attributesOfItem(atPath: path("elsewhere/real.ncrst"))[.posixPermissions] as? NSNumber)?.intValue, 0o640,
                       "the replaced file keeps its mode")

        // Extended XYZ goes the same way.
        let structure = Structure(symbols: ["Ar"], atomicNumbers: [18], positions: [Vec3(1, 2, 3)])
        try StructureFile.write([structure], to: path("elsewhere/real.extxyz"))
        try fm.createSymbolicLink(atPath: path("link.extxyz"), withDestinationPath: path("elsewhere/real.extxyz"))
        var moved = structure
        moved.positions = [Vec3(4, 5, 6)]
        try StructureFile.write([moved], to: path("link.extxyz"))
        XCTAssertEqual(try fm.destinationOfSymbolicLink(atPath: path("link.extxyz")), path("elsewhere/real.extxyz"))
        XCTAssertEqual(try StructureFile.readFirst(path: path("elsewhere/real.extxyz")).positions, [Vec3(4, 5, 6)])
    }

    func testRestartRoundTripsExactlyAndStaysAmberReadable() throws {
        let file = path("state.ncrst")
        let structures = try StructureFile.read(path: TestPaths.fixture("cu64-triclinic-2frames.extxyz"))
        let s = structures[0]
        let cell = try Cell(matrix: try XCTUnwrap(s.cell).matrix, pbc: Periodicity(true, true, false))
        let velocities = vectors(s.count, seed: 0.123, scale: 0.0371)
        let restart = AmberRestart(time: 12345.678901234567, positions: s.positions, velocities: velocities, cell: cell,
                                   step: 24_691_357_802, state: ["rng": "0x9e3779b97f4a7c15 0x1234", "thermostat_zeta": "-0.125"],
                                   listAnchors: [s.positions.map { $0 + Vec3(0.1, -0.2, 1e-13) }, vectors(s.count, seed: 0.7, scale: 9.1)],
                                   title: "exact continuation")
        try restart.write(to: file)
        XCTAssertFalse(FileManager.default.fileExists(atPath: file + ".tmp"))
        let back = try AmberRestart.read(path: file)
        XCTAssertEqual(back.positions, restart.positions)
        XCTAssertEqual(back.velocities ?? [], velocities, "velocities must round-trip bit for bit")
        XCTAssertEqual(back.cell, cell)
        XCTAssertEqual(back.time, restart.time)
        XCTAssertEqual(back.step, 24_691_357_802)
        XCTAssertEqual(back.state, restart.state)
        XCTAssertEqual(back.listAnchors, restart.listAnchors, "neighbour-list anchors must round-trip bit for bit")
        XCTAssertEqual(back.title, "exact continuation")

        // What AMBER tools see: the convention's variables, doubles, AMBER units and orientation.
        let raw = try RawNetCDF(file)
        defer { raw.close() }
        XCTAssertEqual(raw.format, NC_FORMAT_64BIT_OFFSET)
        XCTAssertEqual(raw.text("Conventions"), "AMBERRESTART")
        XCTAssertEqual(raw.text("ConventionVersion"), "1.0")
        XCTAssertNil(raw.dimension("frame"))
        XCTAssertEqual(raw.signature("time")?.type, NC_DOUBLE)
        XCTAssertEqual(raw.signature("time")?.dims, [])
        XCTAssertEqual(raw.text("units", variable: raw.variable("time") ?? -1), "picosecond")
        XCTAssertEqual(raw.doubles("time")[0], 12.345678901234567, accuracy: 1e-15)
        XCTAssertEqual(raw.signature("coordinates")?.dims, ["atom", "spatial"])
        XCTAssertEqual(raw.signature("coordinates")?.type, NC_DOUBLE)
        XCTAssertEqual(raw.signature("velocities")?.type, NC_DOUBLE)
        XCTAssertEqual(raw.text("units", variable: raw.variable("velocities") ?? -1), "angstrom/picosecond")
        XCTAssertEqual(raw.text("units", variable: raw.variable("cell_angles") ?? -1), "degree")
        XCTAssertEqual(raw.signature("cell_lengths")?.dims, ["cell_spatial"])
        XCTAssertEqual(raw.text("eninetmd_step"), "24691357802")
        XCTAssertEqual(raw.signature("eninetmd_list_positions")?.dims, ["eninetmd_list", "atom", "spatial"])
        let standard = raw.doubles("coordinates"), amberVelocities = raw.doubles("velocities")
        let p0 = Vec3(standard[0], standard[1], standard[2]), p9 = Vec3(standard[27], standard[28], standard[29])
        XCTAssertEqual(norm(p9 - p0), norm(s.positions[9] - s.positions[0]), accuracy: 1e-12)
        // Velocities in AMBER's own unit, Å/(1/20.455 ps), with the scale factor to Å/ps, as
        // AMBER writes them: sander reads the numbers as they are, ParmEd needs the attribute.
        XCTAssertEqual(raw.number("scale_factor", variable: raw.variable("velocities") ?? -1), 20.455)
        XCTAssertEqual(norm(Vec3(amberVelocities[0], amberVelocities[1], amberVelocities[2])), norm(velocities[0]) * 1000 / 20.455, accuracy: 1e-12)
        XCTAssertFalse(raw.hasAttribute("scale_factor", variable: raw.variable("coordinates") ?? -1))

        // A molecule with a non-periodic cell: no AMBER box, the cell still comes back exactly.
        let vacuumCell = try Cell(matrix: Mat3(Vec3(30, 1, 0), Vec3(0, 30, 2), Vec3(0, 0, 30)), pbc: .none)
        try AmberRestart(time: 1, positions: [Vec3(1, 2, 3)], cell: vacuumCell).write(to: path("vacuum.ncrst"))
        let vacuumRaw = try RawNetCDF(path("vacuum.ncrst"))
        XCTAssertNil(vacuumRaw.variable("cell_lengths"))
        XCTAssertNil(vacuumRaw.variable("cell_angles"))
        XCTAssertNil(vacuumRaw.variable("eninetmd_list_positions"), "no anchors, no variable")
        vacuumRaw.close()

        // Anchors of another atom count are refused; a damaged one is refused on reading.
        XCTAssertThrowsError(try AmberRestart(time: 1, positions: [Vec3(1, 2, 3)], listAnchors: [[]]).write(to: path("short.ncrst"))) {
            XCTAssertTrue("\($0)".contains("anchor 0 has 0 positions for 1 atoms"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("short.ncrst")))
        try AmberRestart(time: 1, positions: [Vec3(1, 2, 3), Vec3(4, 5, 6)], listAnchors: [[Vec3(1, 2, 3), Vec3(4, .nan, 6)]])
            .write(to: path("nan.ncrst"))
        XCTAssertThrowsError(try AmberRestart.read(path: path("nan.ncrst"))) {
            XCTAssertTrue("\($0)".contains("'eninetmd_list_positions' holds nan (list 0, atom 1)"), "\($0)")
        }
        XCTAssertEqual(try AmberRestart.read(path: path("vacuum.ncrst")).cell, vacuumCell)

        // A conventional reader view of the same file (no eninetmd_* data used).
        let conventional = try AmberTrajectoryReader(path: file).frame(0)
        XCTAssertEqual(conventional.time, 12345.678901234567, accuracy: 1e-9)
        XCTAssertEqual(norm((conventional.cell?.lengths ?? .zero) - cell.lengths), 0, accuracy: 1e-12)
        // What AMBER tools rebuild: atoms where they were in the box, velocities turned with them.
        let amberCell = try XCTUnwrap(conventional.cell), amberVelocity = try XCTUnwrap(conventional.velocities)
        XCTAssertGreaterThan(norm(conventional.positions[9] - s.positions[9]), 0.5, "the cell must really turn for this check")
        for i in [0, 9, 40] {
            XCTAssertEqual(norm(amberCell.fractional(conventional.positions[i]) - cell.fractional(s.positions[i])), 0, accuracy: 1e-12)
            let bond = conventional.positions[i] - conventional.positions[5], givenBond = s.positions[i] - s.positions[5]
            XCTAssertEqual(dot(amberVelocity[i], bond), dot(velocities[i], givenBond), accuracy: 1e-12, "velocity \(i)")
        }
    }
}
