import CNetCDF
import Foundation
import Geometry
import XCTest
@testable import Trajectory

final class AmberReaderTests: XCTestCase {
    static let foreignFiles = [
        "mda-ethanol-pos", "mda-ethanol-pos-vel-frc", "mda-water8-pos-frc-orthobox", "mda-cu64-triclinic-pos-frc-box",
        "mda-ethanol-pos-vel-scaled", "mdtraj-water8-pos", "mdtraj-ethanol-pos-box", "parmed-water8-pos-vel-frc-box",
        "parmed-ethanol-pos-vel",
    ]

    /// Frame 0 of every third-party file equals its sidecar (values as stored, scale factors applied).
    func testForeignFilesMatchTheirSidecars() throws {
        for name in AmberReaderTests.foreignFiles {
            let reader = try AmberTrajectoryReader(path: TestPaths.fixture("\(name).nc"))
            let sidecar = try XCTUnwrap(ExtendedXYZ.read(path: TestPaths.fixture("\(name).frame0.xyz")).first)
            XCTAssertEqual(reader.frameCount, 5, name)
            XCTAssertEqual(reader.atomCount, sidecar.count, name)
            XCTAssertFalse(reader.isRestart)

            let frame = try reader.frame(0)
            XCTAssertEqual(frame.positions, sidecar.positions, "\(name): coordinates × scale_factor")
            XCTAssertEqual(frame.time, (sidecar.info["time_ps"]?.first ?? -1) * 1000, name)
            let flat = try reader.readDoubles("coordinates", frames: 0..<1)
            XCTAssertEqual(flat, sidecar.positions.flatMap { [$0.x, $0.y, $0.z] }, name)

            let storedVelocities = sidecar.atomArrays["velocities_stored"]
            XCTAssertEqual(reader.hasVelocities, storedVelocities != nil, name)
            if let storedVelocities {
                let scale = sidecar.info["velocities_scale_factor"]?.first ?? 1
                let expected = storedVelocities.values.map { $0 * scale }
                let got = try reader.readDoubles("velocities", frames: 0..<1)
                for (g, e) in zip(got, expected) { XCTAssertEqual(g, e, accuracy: 1e-15 * abs(e), "\(name) velocities Å/ps") }
                let internalUnits = try XCTUnwrap(frame.velocities)
                for i in 0..<sidecar.count {
                    for a in 0..<3 { XCTAssertEqual(internalUnits[i][a], expected[3 * i + a] / 1000, accuracy: 1e-15 * abs(expected[3 * i + a])) }
                }
            }
            let storedForces = sidecar.atomArrays["forces_stored"]
            XCTAssertEqual(reader.hasForces, storedForces != nil, name)
            if let storedForces {
                let scale = sidecar.info["forces_scale_factor"]?.first ?? 1
                let got = try reader.readDoubles("forces", frames: 0..<1)
                XCTAssertEqual(got, storedForces.values.map { $0 * scale }, "\(name) forces kcal/mol/Å")
                let eV = try XCTUnwrap(frame.forces)
                XCTAssertEqual(eV[0].x, got[0] / Units.kcalPerMolPerEV, accuracy: 1e-15 * abs(got[0]))
            }
            if let lengths = sidecar.info["cell_lengths"], let angles = sidecar.info["cell_angles"] {
                XCTAssertTrue(reader.hasCell, name)
                let cell = try XCTUnwrap(frame.cell)
                XCTAssertEqual(cell.lengths.x, lengths[0], accuracy: 1e-12, name)
                XCTAssertEqual(cell.lengths.y, lengths[1], accuracy: 1e-12, name)
                XCTAssertEqual(cell.lengths.z, lengths[2], accuracy: 1e-12, name)
                XCTAssertEqual(cell.anglesDegrees.x, angles[0], accuracy: 1e-9, name)
                XCTAssertEqual(cell.anglesDegrees.y, angles[1], accuracy: 1e-9, name)
                XCTAssertEqual(cell.anglesDegrees.z, angles[2], accuracy: 1e-9, name)
                XCTAssertEqual(cell.matrix[0, 1], 0)
                XCTAssertEqual(cell.matrix[1, 2], 0)
            } else {
                XCTAssertFalse(reader.hasCell, name)
                XCTAssertNil(frame.cell, name)
            }
        }
    }

    /// The scaled file stores the same physics as the unscaled one: decoded values agree to float32 rounding.
    func testScaleFactorsDecodeToTheSameNumbers() throws {
        let scaled = try AmberTrajectoryReader(path: TestPaths.fixture("mda-ethanol-pos-vel-scaled.nc"))
        let plain = try AmberTrajectoryReader(path: TestPaths.fixture("mda-ethanol-pos-vel-frc.nc"))
        let x1 = try scaled.readDoubles("coordinates"), x2 = try plain.readDoubles("coordinates")
        let v1 = try scaled.readDoubles("velocities"), v2 = try plain.readDoubles("velocities")
        XCTAssertEqual(x1.count, 5 * 9 * 3)
        XCTAssertLessThanOrEqual(zip(x1, x2).map { abs($0 - $1) }.max() ?? 1, 5e-7)
        XCTAssertLessThanOrEqual(zip(v1, v2).map { abs($0 - $1) }.max() ?? 1, 2.3e-6)
        XCTAssertGreaterThan(v1.map(abs).max() ?? 0, 1, "velocities are Å/ps, not the stored /20.455 numbers")
        // Strided bulk reads pick frames 0, 2, 4.
        let strided = try scaled.readFloats("coordinates", frames: 0..<5, stride: 2)
        let all = try scaled.readFloats("coordinates")
        XCTAssertEqual(strided, Array(all[0..<27] + all[54..<81] + all[108..<135]))
    }

    /// The shared NVE reference (20001 frames): bulk velocities give its documented mean temperature.
    func testNVEReferenceTemperatureFromBulkVelocities() throws {
        let path = try TestPaths.sharedFile("data/xtb/ethanol-gfn2-nve-300K.nc")
        let reader = try AmberTrajectoryReader(path: path)
        XCTAssertEqual(reader.frameCount, 20001)
        XCTAssertTrue(reader.hasVelocities && reader.hasDipole)
        XCTAssertEqual(reader.extraVariableWidths["potential_energy"], 1)
        XCTAssertEqual(reader.extraVariableWidths["dipole"], 3)
        let v = try reader.readFloats("velocities", units: .internal)
        let masses = ["C", "C", "O", "H", "H", "H", "H", "H", "H"].compactMap { Elements.atomicNumber(of: $0).flatMap(Elements.mass(of:)) }
        var sum = 0.0
        for f in 0..<reader.frameCount {
            var twiceKinetic = 0.0
            for i in 0..<9 {
                for a in 0..<3 { let x = Double(v[(f * 9 + i) * 3 + a]); twiceKinetic += masses[i] * x * x }
            }
            sum += twiceKinetic * Units.energyPerMassVelocitySquared / (27 * Units.boltzmann)
        }
        XCTAssertEqual(sum / Double(reader.frameCount), 309.3, accuracy: 0.05)
        let times = try reader.times(frames: 19999..<20001)
        XCTAssertEqual(times[1] - times[0], 1.0, accuracy: 1e-3, "frames are 1 fs apart")
    }

    // MARK: Bad files

    private func makeDirectory() throws -> URL {
        let dir = try TestPaths.temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// A small NetCDF file made through libnetcdf with the given mode and content.
    private func makeFile(_ path: String, mode: Int32, conventions: String?, coordinates: Bool) throws {
        var id: Int32 = -1
        XCTAssertEqual(nc_create(path, mode | NC_CLOBBER, &id), NC_NOERR)
        var frameDim: Int32 = 0, atomDim: Int32 = 0, spatialDim: Int32 = 0, varID: Int32 = 0
        nc_def_dim(id, "frame", NC_UNLIMITED, &frameDim)
        nc_def_dim(id, "atom", 2, &atomDim)
        nc_def_dim(id, "spatial", 3, &spatialDim)
        if let conventions { nc_put_att_text(id, NC_GLOBAL, "Conventions", conventions.utf8.count, conventions) }
        if coordinates { nc_def_var(id, "coordinates", NC_FLOAT, 3, [frameDim, atomDim, spatialDim], &varID) }
        nc_enddef(id)
        if coordinates {
            let values: [Float] = [1, 2, 3, 4, 5, 6]
            XCTAssertEqual(nc_put_vara_float(id, varID, [0, 0, 0], [1, 2, 3], values), NC_NOERR)
        }
        XCTAssertEqual(nc_close(id), NC_NOERR)
    }

    /// Velocities stored (frame, spatial, atom) passed the size check and were read in the
    /// wrong order; `cell_lengths` without `cell_angles` was read as no cell at all.
    func testTransposedVectorsAndHalfACellAreRefused() throws {
        let dir = try makeDirectory()
        func make(_ name: String, transposedVelocities: Bool, lengthsOnly: Bool, coordinateUnits: String? = nil) -> String {
            let path = dir.appendingPathComponent(name).path
            var id: Int32 = -1
            XCTAssertEqual(nc_create(path, NC_64BIT_OFFSET | NC_CLOBBER, &id), NC_NOERR)
            var frame: Int32 = 0, atom: Int32 = 0, spatial: Int32 = 0, coords: Int32 = 0, vel: Int32 = 0, lengths: Int32 = 0
            nc_def_dim(id, "frame", NC_UNLIMITED, &frame)
            nc_def_dim(id, "atom", 2, &atom)
            nc_def_dim(id, "spatial", 3, &spatial)
            nc_put_att_text(id, NC_GLOBAL, "Conventions", 5, "AMBER")
            nc_def_var(id, "coordinates", NC_FLOAT, 3, [frame, atom, spatial], &coords)
            if let coordinateUnits { nc_put_att_text(id, coords, "units", coordinateUnits.utf8.count, coordinateUnits) }
            nc_def_var(id, "velocities", NC_FLOAT, 3, transposedVelocities ? [frame, spatial, atom] : [frame, atom, spatial], &vel)
            if lengthsOnly { nc_def_var(id, "cell_lengths", NC_DOUBLE, 2, [frame, spatial], &lengths) }
            nc_enddef(id)
            let values: [Float] = [1, 2, 3, 4, 5, 6]
            XCTAssertEqual(nc_put_vara_float(id, coords, [0, 0, 0], [1, 2, 3], values), NC_NOERR)
            XCTAssertEqual(nc_put_vara_float(id, vel, [0, 0, 0], transposedVelocities ? [1, 3, 2] : [1, 2, 3], values), NC_NOERR)
            if lengthsOnly { XCTAssertEqual(nc_put_vara_double(id, lengths, [0, 0], [1, 3], [9.0, 9, 9]), NC_NOERR) }
            XCTAssertEqual(nc_close(id), NC_NOERR)
            return path
        }
        let transposed = make("transposed.nc", transposedVelocities: true, lengthsOnly: false)
        assertThrowsMessage([transposed, "'velocities' has dimensions (frame, spatial, atom)", "expected (frame, atom, spatial)"]) {
            _ = try AmberTrajectoryReader(path: transposed)
        }
        let half = make("half-cell.nc", transposedVelocities: false, lengthsOnly: true)
        assertThrowsMessage([half, "'cell_lengths' without 'cell_angles'"]) { _ = try AmberTrajectoryReader(path: half) }
        let good = make("good.nc", transposedVelocities: false, lengthsOnly: false, coordinateUnits: "Angstroms")
        XCTAssertEqual(try AmberTrajectoryReader(path: good).frame(0).positions, [Vec3(1, 2, 3), Vec3(4, 5, 6)])
        // Units other than AMBER's were ignored: nanometres read as ångström.
        let nanometres = make("nm.nc", transposedVelocities: false, lengthsOnly: false, coordinateUnits: "nanometer")
        assertThrowsMessage([nanometres, "'coordinates' is in \"nanometer\"", "angstrom"]) { _ = try AmberTrajectoryReader(path: nanometres) }
    }

    func testBadFilesGiveClearErrorsNamingTheFile() throws {
        let dir = try makeDirectory()
        func p(_ name: String) -> String { dir.appendingPathComponent(name).path }

        assertThrowsMessage([p("missing.nc"), "no such file"]) { _ = try AmberTrajectoryReader(path: p("missing.nc")) }
        // The regular-file check (a FIFO hung the first read) must follow symbolic links: its
        // first form looked at the link itself and refused a linked trajectory.
        try FileManager.default.createSymbolicLink(atPath: p("linked.nc"), withDestinationPath: TestPaths.fixture("mda-ethanol-pos-vel-frc.nc"))
        XCTAssertEqual(try AmberTrajectoryReader(path: p("linked.nc")).atomCount, 9)
        XCTAssertEqual(mkfifo(p("pipe.nc"), 0o600), 0)
        assertThrowsMessage([p("pipe.nc"), "not a regular file"]) { _ = try AmberTrajectoryReader(path: p("pipe.nc")) }
        assertThrowsMessage([dir.path, "is a directory"]) { _ = try AmberTrajectoryReader(path: dir.path) }

        _ = FileManager.default.createFile(atPath: p("empty.nc"), contents: Data())
        assertThrowsMessage([p("empty.nc"), "empty"]) { _ = try AmberTrajectoryReader(path: p("empty.nc")) }

        _ = FileManager.default.createFile(atPath: p("text.nc"), contents: Data("hello, not netcdf\n".utf8))
        assertThrowsMessage([p("text.nc"), "not a NetCDF-3 file"]) { _ = try AmberTrajectoryReader(path: p("text.nc")) }

        try makeFile(p("hdf5.nc"), mode: NC_NETCDF4, conventions: "AMBER", coordinates: true)
        assertThrowsMessage([p("hdf5.nc"), "HDF5"]) { _ = try AmberTrajectoryReader(path: p("hdf5.nc")) }

        try makeFile(p("cf.nc"), mode: NC_64BIT_OFFSET, conventions: "CF-1.8", coordinates: true)
        assertThrowsMessage([p("cf.nc"), "Conventions is \"CF-1.8\""]) { _ = try AmberTrajectoryReader(path: p("cf.nc")) }

        try makeFile(p("noconv.nc"), mode: NC_64BIT_OFFSET, conventions: nil, coordinates: true)
        assertThrowsMessage([p("noconv.nc"), "Conventions"]) { _ = try AmberTrajectoryReader(path: p("noconv.nc")) }

        try makeFile(p("nocoords.nc"), mode: NC_64BIT_OFFSET, conventions: "AMBER", coordinates: false)
        assertThrowsMessage([p("nocoords.nc"), "no 'coordinates'"]) { _ = try AmberTrajectoryReader(path: p("nocoords.nc")) }

        // Classic (CDF-1) is outside the convention but readable: be liberal in what we read.
        try makeFile(p("classic.nc"), mode: 0, conventions: "AMBER", coordinates: true)
        let classic = try AmberTrajectoryReader(path: p("classic.nc"))
        XCTAssertEqual(try classic.frame(0).positions, [Vec3(1, 2, 3), Vec3(4, 5, 6)])
        assertThrowsMessage([p("classic.nc"), "has 2 atoms but 3 were expected"]) {
            _ = try AmberTrajectoryReader(path: p("classic.nc"), expectedAtomCount: 3)
        }
        assertThrowsMessage([p("classic.nc"), "frames 1..<2 requested, the file has 1"]) { _ = try classic.frame(1) }
        assertThrowsMessage([p("classic.nc"), "no variable 'velocities'"]) { _ = try classic.readDoubles("velocities") }
        assertThrowsMessage([p("classic.nc"), "expected \"AMBERRESTART\""]) { _ = try AmberRestart.read(path: p("classic.nc")) }

        // A trajectory cut short inside its data, and one cut inside its header.
        let good = p("good.nc")
        let writer = try AmberTrajectoryWriter(path: good, atomCount: 50, velocities: true)
        for k in 0..<6 {
            try writer.write(time: Double(k), positions: (0..<50).map { Vec3(Double($0), Double(k), 0) },
                             velocities: [Vec3](repeating: Vec3(0.01, 0, 0), count: 50))
        }
        try writer.close()
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        try bytes.prefix(bytes.count * 2 / 3).write(to: URL(fileURLWithPath: p("cut-data.nc")))
        assertThrowsMessage([p("cut-data.nc"), "truncated"]) { _ = try AmberTrajectoryReader(path: p("cut-data.nc")) }
        try bytes.prefix(40).write(to: URL(fileURLWithPath: p("cut-header.nc")))
        assertThrowsMessage([p("cut-header.nc"), "truncated or damaged header"]) { _ = try AmberTrajectoryReader(path: p("cut-header.nc")) }
        // The record count replaced by the "streaming" marker: libnetcdf then reports
        // 4,294,967,295 frames, and reading them once asked for 34 GB and aborted.
        var streamed = bytes
        streamed.replaceSubrange(4..<8, with: [0xFF, 0xFF, 0xFF, 0xFF])
        try streamed.write(to: URL(fileURLWithPath: p("streamed.nc")))
        assertThrowsMessage([p("streamed.nc"), "records no frame count"]) { _ = try AmberTrajectoryReader(path: p("streamed.nc")) }
        XCTAssertEqual(try AmberTrajectoryReader(path: good).frameCount, 6)
    }
}
