import CNetCDF
import Foundation
import Geometry

/// An AMBER NetCDF restart (`Conventions = "AMBERRESTART"`) plus what an exact continuation
/// of an ENINetMD run needs.
///
/// On file, for AMBER tools: `time` (scalar double, ps), `coordinates` (double(atom, spatial),
/// Å), `velocities` (the same shape, in AMBER's unit Å/(1/20.455 ps) with `scale_factor` 20.455,
/// as AMBER writes them: readers that apply the factor get Å/ps, sander and pmemd read AMBER's
/// unit) and, for a cell, `cell_lengths` / `cell_angles`, all in the AMBER orientation (a along
/// x, b in the xy plane).
///
/// For ENINetMD, ignored by other readers and preferred by `read`: exact internal copies
/// `eninetmd_coordinates` (Å), `eninetmd_velocities` (Å/fs) and `eninetmd_cell`
/// (double(cell_spatial, spatial): the cell rows, any orientation), and global attributes
/// `eninetmd_time_fs` (double), `eninetmd_step` (text, decimal), `eninetmd_pbc` ("T T F") and
/// one text attribute `eninetmd_state_<key>` per entry of `state` (random generator and
/// thermostat state). Unit conversions never touch these, so a restart round-trips bit for bit.
/// `eninetmd_list_positions` (double(eninetmd_list, atom, spatial), Å), when present, holds the
/// positions each of the potential's neighbour lists was last built from.
///
/// `write` creates `<path>.tmp` in the same directory, syncs and closes it, then renames it
/// over `path`: a restart on disk is always complete.
public struct AmberRestart: Sendable {
    /// Simulation time, fs.
    public var time: Double
    /// Positions, Å.
    public var positions: [Vec3]
    /// Velocities, Å/fs.
    public var velocities: [Vec3]?
    public var cell: Cell?
    /// Integration step counter.
    public var step: Int?
    /// Opaque state for an exact continuation; keys are letters, digits and `_`.
    public var state: [String: String]
    /// The positions (Å) each neighbour list of the potential was last built from, one array
    /// of all atoms per list (``Potential/listAnchors``); empty when none was saved.
    public var listAnchors: [[Vec3]]
    public var title: String?

    public init(time: Double, positions: [Vec3], velocities: [Vec3]? = nil, cell: Cell? = nil,
                step: Int? = nil, state: [String: String] = [:], listAnchors: [[Vec3]] = [], title: String? = nil) {
        self.time = time
        self.positions = positions
        self.velocities = velocities
        self.cell = cell
        self.step = step
        self.state = state
        self.listAnchors = listAnchors
        self.title = title
    }

    static let statePrefix = "eninetmd_state_"

    // MARK: Writing

    /// Writes the restart atomically (temporary file in the same directory, fsync, rename).
    public func write(to path: String, program: String = AmberNetCDF.program,
                      programVersion: String = AmberNetCDF.programVersion) throws {
        let n = positions.count
        guard n > 0 else { throw TrajectoryError("\(path): a restart needs at least one atom") }
        if let velocities, velocities.count != n {
            throw TrajectoryError("\(path): \(velocities.count) velocities for \(n) atoms")
        }
        if let bad = listAnchors.firstIndex(where: { $0.count != n }) {
            throw TrajectoryError("\(path): neighbour-list anchor \(bad) has \(listAnchors[bad].count) positions for \(n) atoms")
        }
        for key in state.keys where !AmberTrajectoryWriter.isValidName(AmberRestart.statePrefix + key) {
            throw TrajectoryError("\(path): state key '\(key)' must hold only letters, digits and '_'")
        }
        try replacingFile(at: path) { temporary in
            try writeFile(temporary, program: program, programVersion: programVersion)
        }
    }

    private func writeFile(_ path: String, program: String, programVersion: String) throws {
        let n = positions.count
        let file = try NetCDFFile.create(path: path)
        let spatialDim = try file.defineDimension("spatial", length: 3)
        let atomDim = try file.defineDimension("atom", length: n)
        // A cell periodic along no axis is kept for ENINetMD only: AMBER tools would take a
        // conventional box for a periodic one.
        let amberCell = cell?.pbc.any ?? false
        var cellSpatialDim: Int32 = -1, cellAngularDim: Int32 = -1, labelDim: Int32 = -1
        if cell != nil { cellSpatialDim = try file.defineDimension("cell_spatial", length: 3) }
        if amberCell {
            cellAngularDim = try file.defineDimension("cell_angular", length: 3)
            labelDim = try file.defineDimension("label", length: 5)
        }
        try file.putText(AmberNetCDF.restartConventions, attribute: "Conventions")
        try file.putText(AmberNetCDF.conventionVersion, attribute: "ConventionVersion")
        try file.putText(program, attribute: "program")
        try file.putText(programVersion, attribute: "programVersion")
        if let title { try file.putText(title, attribute: "title") }
        try file.putNumber(time, attribute: "eninetmd_time_fs")
        if let step { try file.putText(String(step), attribute: "eninetmd_step") }
        if let cell { try file.putText(cell.pbc.description, attribute: "eninetmd_pbc") }
        for key in state.keys.sorted() {
            try file.putText(state[key] ?? "", attribute: AmberRestart.statePrefix + key)
        }

        let spatialID = try file.defineVariable("spatial", type: NC_CHAR, dimensions: [spatialDim])
        var cellSpatialID: Int32 = -1, cellAngularID: Int32 = -1
        if amberCell {
            cellSpatialID = try file.defineVariable("cell_spatial", type: NC_CHAR, dimensions: [cellSpatialDim])
            cellAngularID = try file.defineVariable("cell_angular", type: NC_CHAR, dimensions: [cellAngularDim, labelDim])
        }
        let timeID = try file.defineVariable("time", type: NC_DOUBLE, dimensions: [], units: AmberNetCDF.timeUnits)
        let coordinatesID = try file.defineVariable("coordinates", type: NC_DOUBLE, dimensions: [atomDim, spatialDim],
                                                    units: AmberNetCDF.lengthUnits)
        let velocitiesID = velocities == nil ? nil
            : try file.defineVariable("velocities", type: NC_DOUBLE, dimensions: [atomDim, spatialDim], units: AmberNetCDF.velocityUnits)
        if let velocitiesID { try file.putNumber(AmberNetCDF.velocityScaleFactor, attribute: "scale_factor", variable: velocitiesID) }
        var lengthsID: Int32 = -1, anglesID: Int32 = -1, exactCellID: Int32 = -1
        if amberCell {
            lengthsID = try file.defineVariable("cell_lengths", type: NC_DOUBLE, dimensions: [cellSpatialDim], units: AmberNetCDF.lengthUnits)
            anglesID = try file.defineVariable("cell_angles", type: NC_DOUBLE, dimensions: [cellAngularDim], units: AmberNetCDF.angleUnits)
        }
        if cell != nil {
            exactCellID = try file.defineVariable("eninetmd_cell", type: NC_DOUBLE, dimensions: [cellSpatialDim, spatialDim],
                                                  units: AmberNetCDF.lengthUnits)
        }
        let exactCoordinatesID = try file.defineVariable("eninetmd_coordinates", type: NC_DOUBLE, dimensions: [atomDim, spatialDim],
                                                         units: AmberNetCDF.lengthUnits)
        let exactVelocitiesID = velocities == nil ? nil
            : try file.defineVariable("eninetmd_velocities", type: NC_DOUBLE, dimensions: [atomDim, spatialDim],
                                      units: "angstrom/femtosecond")
        var anchorsID: Int32? = nil
        if !listAnchors.isEmpty {
            let listDim = try file.defineDimension("eninetmd_list", length: listAnchors.count)
            anchorsID = try file.defineVariable("eninetmd_list_positions", type: NC_DOUBLE, dimensions: [listDim, atomDim, spatialDim],
                                                units: AmberNetCDF.lengthUnits)
        }
        try file.endDefinitions()

        try file.putCharacters("xyz", variable: spatialID, name: "spatial")
        var picoseconds = time / Units.femtosecondsPerPicosecond
        try file.check(nc_put_var_double(file.ncid, timeID, &picoseconds), "cannot write time")
        let rotation = amberCell ? cell.flatMap(AmberTrajectoryWriter.rotationToStandardOrientation) : nil
        func put(_ vectors: [Vec3], scale: Double, rotate: Bool, variable: Int32, name: String) throws {
            var flat = [Double](repeating: 0, count: 3 * n)
            for i in 0..<n {
                var v = vectors[i]
                if rotate, let rotation { v = rotation.leftMultiply(v) }
                v *= scale
                flat[3 * i] = v.x; flat[3 * i + 1] = v.y; flat[3 * i + 2] = v.z
            }
            try file.check(nc_put_var_double(file.ncid, variable, flat), "cannot write \(name)")
        }
        try put(positions, scale: 1, rotate: true, variable: coordinatesID, name: "coordinates")
        try put(positions, scale: 1, rotate: false, variable: exactCoordinatesID, name: "eninetmd_coordinates")
        if let velocities, let velocitiesID, let exactVelocitiesID {
            try put(velocities, scale: AmberNetCDF.velocityToFile / AmberNetCDF.velocityScaleFactor, rotate: true,
                    variable: velocitiesID, name: "velocities")
            try put(velocities, scale: 1, rotate: false, variable: exactVelocitiesID, name: "eninetmd_velocities")
        }
        if let cell, amberCell {
            try file.putCharacters("abc", variable: cellSpatialID, name: "cell_spatial")
            try file.putCharacters("alphabeta gamma", variable: cellAngularID, name: "cell_angular")
            let l = cell.lengths, a = cell.anglesDegrees
            try file.check(nc_put_var_double(file.ncid, lengthsID, [l.x, l.y, l.z]), "cannot write cell_lengths")
            try file.check(nc_put_var_double(file.ncid, anglesID, [a.x, a.y, a.z]), "cannot write cell_angles")
        }
        if let cell {
            let m = cell.matrix
            let rows = [m[0], m[1], m[2]].flatMap { [$0.x, $0.y, $0.z] }
            try file.check(nc_put_var_double(file.ncid, exactCellID, rows), "cannot write eninetmd_cell")
        }
        if let anchorsID {
            let flat = listAnchors.flatMap { $0.flatMap { [$0.x, $0.y, $0.z] } }
            try file.check(nc_put_var_double(file.ncid, anchorsID, flat), "cannot write eninetmd_list_positions")
        }
        try file.close()
    }

    // MARK: Reading

    /// Reads a restart written by this engine (exact) or by AMBER tools (converted from the
    /// convention's units; `step` nil, `state` empty).
    public static func read(path: String, expectedAtomCount: Int? = nil) throws -> AmberRestart {
        let reader = try AmberTrajectoryReader(path: path, expectedAtomCount: expectedAtomCount)
        guard reader.isRestart else {
            throw TrajectoryError("\(path): Conventions is \"AMBER\" (a trajectory), expected \"AMBERRESTART\"")
        }
        let file = reader.file
        let n = reader.atomCount
        func exactVectors(_ name: String) throws -> [Vec3]? {
            guard let id = file.variableID(name) else { return nil }
            let dims = try file.variableDimensions(id)
            guard try dims.map({ try file.dimensionLength($0) }) == [n, 3] else {
                throw TrajectoryError("\(path): '\(name)' does not have shape (atom=\(n), spatial=3)")
            }
            var flat = [Double](repeating: 0, count: 3 * n)
            try file.check(nc_get_var_double(file.ncid, id, &flat), "cannot read \(name)")
            return (0..<n).map { Vec3(flat[3 * $0], flat[3 * $0 + 1], flat[3 * $0 + 2]) }
        }

        let conventional = try reader.frame(0)
        var restart = AmberRestart(time: conventional.time, positions: conventional.positions,
                                   velocities: conventional.velocities, cell: conventional.cell, title: reader.title)
        if let exact = try exactVectors("eninetmd_coordinates") { restart.positions = exact }
        if let exact = try exactVectors("eninetmd_velocities") { restart.velocities = exact }
        if let id = file.variableID("eninetmd_cell") {
            var rows = [Double](repeating: 0, count: 9)
            try file.check(nc_get_var_double(file.ncid, id, &rows), "cannot read eninetmd_cell")
            var pbc = Periodicity.all
            if let text = file.text(attribute: "eninetmd_pbc") {
                let flags = text.split(separator: " ").compactMap(KeyValueValue.boolean)
                guard flags.count == 3 else { throw TrajectoryError("\(path): eninetmd_pbc \"\(text)\" is not three T/F flags") }
                pbc = Periodicity(flags[0], flags[1], flags[2])
            }
            do {
                restart.cell = try Cell(matrix: Mat3(Vec3(rows[0], rows[1], rows[2]), Vec3(rows[3], rows[4], rows[5]),
                                                     Vec3(rows[6], rows[7], rows[8])), pbc: pbc)
            } catch {
                throw TrajectoryError("\(path): eninetmd_cell: \(error)")
            }
        }
        if let exactTime = file.number(attribute: "eninetmd_time_fs") { restart.time = exactTime }
        if let stepText = file.text(attribute: "eninetmd_step") {
            guard let step = Int(stepText) else { throw TrajectoryError("\(path): eninetmd_step \"\(stepText)\" is not an integer") }
            restart.step = step
        }
        if let id = file.variableID("eninetmd_list_positions") {
            let shape = try file.variableDimensions(id).map { try file.dimensionLength($0) }
            guard shape.count == 3, shape[0] > 0, shape[1] == n, shape[2] == 3 else {
                throw TrajectoryError("\(path): 'eninetmd_list_positions' has shape \(shape), not (eninetmd_list, atom=\(n), spatial=3)")
            }
            var flat = [Double](repeating: 0, count: shape[0] * 3 * n)
            try file.check(nc_get_var_double(file.ncid, id, &flat), "cannot read eninetmd_list_positions")
            if let bad = flat.firstIndex(where: { !$0.isFinite }) {
                throw TrajectoryError("\(path): 'eninetmd_list_positions' holds \(flat[bad]) (list \(bad / (3 * n)), atom \(bad / 3 % n))")
            }
            restart.listAnchors = (0..<shape[0]).map { list in
                (0..<n).map { i in let o = 3 * (list * n + i); return Vec3(flat[o], flat[o + 1], flat[o + 2]) }
            }
        }
        for name in try file.globalAttributeNames() where name.hasPrefix(statePrefix) {
            restart.state[String(name.dropFirst(statePrefix.count))] = file.text(attribute: name) ?? ""
        }
        try reader.close()
        return restart
    }
}
