import CNetCDF
import Foundation
import Geometry

/// An extra per-frame variable of an AMBER NetCDF trajectory (standard readers ignore it).
///
/// Stored as `double(frame)` or `double(frame, spatial)` with a `units` attribute and no
/// `scale_factor`; values are written as given (internal units).
public struct AmberExtraVariable: Sendable, Hashable {
    public var name: String
    /// 1 for a scalar per frame, 3 for a vector per frame (dimension `spatial`).
    public var width: Int
    public var units: String

    public init(name: String, width: Int, units: String) {
        self.name = name
        self.width = width
        self.units = units
    }

    /// Potential energy, eV.
    public static let potentialEnergy = AmberExtraVariable(name: "potential_energy", width: 1, units: "electronvolt")
    /// Kinetic energy, eV.
    public static let kineticEnergy = AmberExtraVariable(name: "kinetic_energy", width: 1, units: "electronvolt")
    /// Instantaneous temperature, K.
    public static let temperature = AmberExtraVariable(name: "temperature", width: 1, units: "kelvin")
    /// Dipole moment, e·Å.
    public static let dipole = AmberExtraVariable(name: "dipole", width: 3, units: "electron*angstrom")
}

/// Writes an AMBER-convention NetCDF trajectory (NetCDF-3 64-bit offset) frame by frame.
///
/// Units on file: `time` ps, `coordinates` Å, `velocities` Å/ps, `forces` kcal/mol/Å,
/// `cell_lengths` Å, `cell_angles` degree; no `scale_factor` anywhere. Frames are given in
/// internal units (fs, Å, Å/fs, eV/Å) and converted with buffers allocated once.
/// The header is synced after every frame, so a killed run leaves a readable file holding
/// every completed frame.
///
/// A file declared with velocities or forces may still receive frames without them (when
/// the velocity or force stride is coarser than the coordinate stride): those records hold
/// the NetCDF float fill value 9.9692e36, which `AmberTrajectoryReader` reports as absent
/// (`Frame.velocities == nil`). Programs that do not know fill values see that number, so
/// when every frame must be complete for other tools, use one writer (one file) per stride.
public final class AmberTrajectoryWriter {
    public let path: String
    public let atomCount: Int
    public let hasVelocities: Bool
    public let hasForces: Bool
    /// Whether the file has `cell_lengths` / `cell_angles` (every frame then needs a cell).
    public let isPeriodic: Bool
    public let extras: [AmberExtraVariable]
    /// Frames in the file so far (including those present before appending).
    public private(set) var frameCount: Int

    private let file: NetCDFFile
    private let timeID: Int32, coordinatesID: Int32
    private let velocitiesID: Int32?, forcesID: Int32?
    private let cellLengthsID: Int32?, cellAnglesID: Int32?
    private let extraIDs: [Int32]
    private var floatBuffer: [Float]
    private var vectorStart: [Int] = [0, 0, 0]
    private let vectorCount: [Int]

    /// Creates (or replaces) a trajectory file.
    ///
    /// - Parameters:
    ///   - atomCount: atoms per frame.
    ///   - velocities, forces: whether the file has these variables.
    ///   - periodic: whether the file has cell variables (every frame must then carry a cell).
    ///   - extras: extra per-frame variables, filled from `Frame.extras[name]`.
    ///   - title, application: optional global attributes.
    public init(path: String, atomCount: Int, velocities: Bool = false, forces: Bool = false,
                periodic: Bool = false, extras: [AmberExtraVariable] = [], title: String? = nil,
                application: String? = nil, program: String = AmberNetCDF.program,
                programVersion: String = AmberNetCDF.programVersion) throws {
        guard atomCount > 0 else { throw TrajectoryError("\(path): a trajectory needs at least one atom") }
        var seen = Set<String>()
        for extra in extras {
            guard extra.width == 1 || extra.width == 3 else {
                throw TrajectoryError("\(path): extra variable '\(extra.name)' has width \(extra.width); only 1 or 3 are supported")
            }
            guard !AmberNetCDF.standardVariables.contains(extra.name), seen.insert(extra.name).inserted,
                  AmberTrajectoryWriter.isValidName(extra.name) else {
                throw TrajectoryError("\(path): extra variable name '\(extra.name)' is reserved, repeated or not a valid NetCDF name")
            }
        }
        let file = try NetCDFFile.create(path: path)
        let ids: DefinedVariables
        do {
            ids = try AmberTrajectoryWriter.define(file, atomCount: atomCount, velocities: velocities, forces: forces,
                                                   periodic: periodic, extras: extras, title: title, application: application,
                                                   program: program, programVersion: programVersion)
        } catch {
            // No half-made file is left behind.
            try? file.close()
            try? FileManager.default.removeItem(atPath: path)
            throw error
        }
        let (timeID, coordinatesID, velocitiesID, forcesID, lengthsID, anglesID, extraIDs) =
            (ids.time, ids.coordinates, ids.velocities, ids.forces, ids.cellLengths, ids.cellAngles, ids.extras)

        self.path = path
        self.atomCount = atomCount
        self.hasVelocities = velocities
        self.hasForces = forces
        self.isPeriodic = periodic
        self.extras = extras
        self.frameCount = 0
        self.file = file
        self.timeID = timeID
        self.coordinatesID = coordinatesID
        self.velocitiesID = velocitiesID
        self.forcesID = forcesID
        self.cellLengthsID = lengthsID
        self.cellAnglesID = anglesID
        self.extraIDs = extraIDs
        self.floatBuffer = [Float](repeating: 0, count: 3 * atomCount)
        self.vectorCount = [1, atomCount, 3]
    }

    struct DefinedVariables {
        var time: Int32, coordinates: Int32
        var velocities: Int32?, forces: Int32?, cellLengths: Int32?, cellAngles: Int32?
        var extras: [Int32]
    }

    /// Defines dimensions, attributes and variables of a new trajectory and writes the labels.
    private static func define(_ file: NetCDFFile, atomCount: Int, velocities: Bool, forces: Bool, periodic: Bool,
                               extras: [AmberExtraVariable], title: String?, application: String?,
                               program: String, programVersion: String) throws -> DefinedVariables {
        let frameDim = try file.defineDimension("frame", length: NC_UNLIMITED)
        let spatialDim = try file.defineDimension("spatial", length: 3)
        let atomDim = try file.defineDimension("atom", length: atomCount)
        var cellSpatialDim: Int32 = -1, cellAngularDim: Int32 = -1, labelDim: Int32 = -1
        if periodic {
            cellSpatialDim = try file.defineDimension("cell_spatial", length: 3)
            cellAngularDim = try file.defineDimension("cell_angular", length: 3)
            labelDim = try file.defineDimension("label", length: 5)
        }
        try file.putText(AmberNetCDF.trajectoryConventions, attribute: "Conventions")
        try file.putText(AmberNetCDF.conventionVersion, attribute: "ConventionVersion")
        try file.putText(program, attribute: "program")
        try file.putText(programVersion, attribute: "programVersion")
        if let title { try file.putText(title, attribute: "title") }
        if let application { try file.putText(application, attribute: "application") }

        let spatialID = try file.defineVariable("spatial", type: NC_CHAR, dimensions: [spatialDim])
        var cellSpatialID: Int32 = -1, cellAngularLabelID: Int32 = -1
        if periodic {
            cellSpatialID = try file.defineVariable("cell_spatial", type: NC_CHAR, dimensions: [cellSpatialDim])
            cellAngularLabelID = try file.defineVariable("cell_angular", type: NC_CHAR, dimensions: [cellAngularDim, labelDim])
        }
        let timeID = try file.defineVariable("time", type: NC_FLOAT, dimensions: [frameDim], units: AmberNetCDF.timeUnits)
        let coordinatesID = try file.defineVariable("coordinates", type: NC_FLOAT, dimensions: [frameDim, atomDim, spatialDim],
                                                    units: AmberNetCDF.lengthUnits)
        let velocitiesID = velocities
            ? try file.defineVariable("velocities", type: NC_FLOAT, dimensions: [frameDim, atomDim, spatialDim],
                                      units: AmberNetCDF.velocityUnits) : nil
        let forcesID = forces
            ? try file.defineVariable("forces", type: NC_FLOAT, dimensions: [frameDim, atomDim, spatialDim],
                                      units: AmberNetCDF.forceUnits) : nil
        var lengthsID: Int32? = nil, anglesID: Int32? = nil
        if periodic {
            lengthsID = try file.defineVariable("cell_lengths", type: NC_DOUBLE, dimensions: [frameDim, cellSpatialDim],
                                                units: AmberNetCDF.lengthUnits)
            anglesID = try file.defineVariable("cell_angles", type: NC_DOUBLE, dimensions: [frameDim, cellAngularDim],
                                               units: AmberNetCDF.angleUnits)
        }
        let extraIDs = try extras.map { extra in
            try file.defineVariable(extra.name, type: NC_DOUBLE,
                                    dimensions: extra.width == 1 ? [frameDim] : [frameDim, spatialDim], units: extra.units)
        }
        try file.endDefinitions()
        try file.putCharacters("xyz", variable: spatialID, name: "spatial")
        if periodic {
            try file.putCharacters("abc", variable: cellSpatialID, name: "cell_spatial")
            try file.putCharacters("alphabeta gamma", variable: cellAngularLabelID, name: "cell_angular")
        }
        try file.sync()
        return DefinedVariables(time: timeID, coordinates: coordinatesID, velocities: velocitiesID, forces: forcesID,
                                cellLengths: lengthsID, cellAngles: anglesID, extras: extraIDs)
    }

    /// Reopens an AMBER trajectory to add frames after its last one (continuing a run).
    ///
    /// The file's layout (velocities, forces, cell, extra variables) is kept. With
    /// `keepingFrames`, frames from that index on are dropped first (the file is rewritten
    /// to a temporary name and renamed), for a run that restarts from an earlier restart
    /// file than the trajectory's last frame.
    public convenience init(appendingTo path: String, keepingFrames: Int? = nil) throws {
        let layout = try AmberTrajectoryWriter.Layout(path: path)
        if let keep = keepingFrames, keep < layout.frameCount {
            guard keep >= 0 else { throw TrajectoryError("\(path): cannot keep \(keep) frames") }
            try AmberTrajectoryWriter.truncate(path: path, layout: layout, keeping: keep)
        }
        let file = try NetCDFFile.open(path: path, writable: true)
        let relayout = try AmberTrajectoryWriter.Layout(file: file)
        try self.init(file: file, layout: relayout)
    }

    private init(file: NetCDFFile, layout: Layout) throws {
        self.path = file.path
        self.atomCount = layout.atomCount
        self.hasVelocities = layout.velocitiesID != nil
        self.hasForces = layout.forcesID != nil
        self.isPeriodic = layout.cellLengthsID != nil
        self.extras = layout.extras
        self.frameCount = layout.frameCount
        self.file = file
        self.timeID = layout.timeID
        self.coordinatesID = layout.coordinatesID
        self.velocitiesID = layout.velocitiesID
        self.forcesID = layout.forcesID
        self.cellLengthsID = layout.cellLengthsID
        self.cellAnglesID = layout.cellAnglesID
        self.extraIDs = layout.extraIDs
        self.floatBuffer = [Float](repeating: 0, count: 3 * layout.atomCount)
        self.vectorCount = [1, layout.atomCount, 3]
    }

    deinit { try? file.close() }

    /// Appends one frame (internal units) and syncs the file.
    public func write(_ frame: Frame) throws {
        try write(time: frame.time, positions: frame.positions, velocities: frame.velocities, forces: frame.forces,
                  cell: frame.cell, extras: frame.extras)
    }

    /// Appends one frame and syncs the file.
    ///
    /// - Parameters:
    ///   - time: fs (stored as ps).
    ///   - positions: Å.
    ///   - velocities: Å/fs (stored as Å/ps); nil stores fill values in a file with velocities.
    ///   - forces: eV/Å (stored as kcal/mol/Å); nil stores fill values in a file with forces.
    ///   - cell: required when the file is periodic.
    ///   - extras: values of the declared extra variables (missing ones get fill values;
    ///     undeclared names are ignored).
    public func write(time: Double, positions: [Vec3], velocities: [Vec3]? = nil, forces: [Vec3]? = nil,
                      cell: Cell? = nil, extras: [String: [Double]] = [:]) throws {
        guard file.isOpen else { throw TrajectoryError("\(path): writer is closed") }
        let frame = frameCount
        guard positions.count == atomCount else {
            throw TrajectoryError("\(path): frame \(frame) has \(positions.count) positions; the file has \(atomCount) atoms")
        }
        if let velocities, velocities.count != atomCount {
            throw TrajectoryError("\(path): frame \(frame) has \(velocities.count) velocities for \(atomCount) atoms")
        }
        if let forces, forces.count != atomCount {
            throw TrajectoryError("\(path): frame \(frame) has \(forces.count) forces for \(atomCount) atoms")
        }
        if velocities != nil && velocitiesID == nil {
            throw TrajectoryError("\(path): frame \(frame) carries velocities but the file was created without a velocities variable")
        }
        if forces != nil && forcesID == nil {
            throw TrajectoryError("\(path): frame \(frame) carries forces but the file was created without a forces variable")
        }
        if isPeriodic && cell == nil {
            throw TrajectoryError("\(path): frame \(frame) has no cell but the trajectory is periodic")
        }
        for extra in self.extras {
            if let values = extras[extra.name], values.count != extra.width {
                throw TrajectoryError("\(path): frame \(frame): extra '\(extra.name)' has \(values.count) values, expected \(extra.width)")
            }
        }

        let rotation = cell.flatMap(AmberTrajectoryWriter.rotationToStandardOrientation)
        var timeValue = Float(time / Units.femtosecondsPerPicosecond)
        var index = frame
        var one = 1
        try file.check(nc_put_vara_float(file.ncid, timeID, &index, &one, &timeValue), "frame \(frame): cannot write time")
        vectorStart[0] = frame
        try putVectors(positions, scale: 1, rotation: rotation, variable: coordinatesID, name: "coordinates")
        if let velocitiesID {
            try putVectors(velocities, scale: AmberNetCDF.velocityToFile, rotation: rotation, variable: velocitiesID, name: "velocities")
        }
        if let forcesID {
            try putVectors(forces, scale: AmberNetCDF.forceToFile, rotation: rotation, variable: forcesID, name: "forces")
        }
        if let cell, let cellLengthsID, let cellAnglesID {
            let lengths = cell.lengths, angles = cell.anglesDegrees
            var lengthValues = (lengths.x, lengths.y, lengths.z)
            var angleValues = (angles.x, angles.y, angles.z)
            var start = (frame, 0), count = (1, 3)
            try withUnsafePointer(to: &start) { s in
                try withUnsafePointer(to: &count) { c in
                    let sp = UnsafeRawPointer(s).assumingMemoryBound(to: Int.self)
                    let cp = UnsafeRawPointer(c).assumingMemoryBound(to: Int.self)
                    try withUnsafePointer(to: &lengthValues) { v in
                        try file.check(nc_put_vara_double(file.ncid, cellLengthsID, sp, cp, UnsafeRawPointer(v).assumingMemoryBound(to: Double.self)),
                                       "frame \(frame): cannot write cell_lengths")
                    }
                    try withUnsafePointer(to: &angleValues) { v in
                        try file.check(nc_put_vara_double(file.ncid, cellAnglesID, sp, cp, UnsafeRawPointer(v).assumingMemoryBound(to: Double.self)),
                                       "frame \(frame): cannot write cell_angles")
                    }
                }
            }
        }
        for (k, extra) in self.extras.enumerated() {
            var values = (AmberNetCDF.doubleFill, AmberNetCDF.doubleFill, AmberNetCDF.doubleFill)
            if let given = extras[extra.name] {
                values.0 = given[0]
                if extra.width == 3 {
                    // A vector on `spatial` turns with the coordinates it belongs with.
                    var v = Vec3(given[0], given[1], given[2])
                    if let rotation { v = rotation.leftMultiply(v) }
                    values = (v.x, v.y, v.z)
                }
            }
            var start = (frame, 0), count = (1, extra.width)
            try withUnsafePointer(to: &start) { s in
                try withUnsafePointer(to: &count) { c in
                    try withUnsafePointer(to: &values) { v in
                        try file.check(nc_put_vara_double(file.ncid, extraIDs[k], UnsafeRawPointer(s).assumingMemoryBound(to: Int.self),
                                                          UnsafeRawPointer(c).assumingMemoryBound(to: Int.self),
                                                          UnsafeRawPointer(v).assumingMemoryBound(to: Double.self)),
                                       "frame \(frame): cannot write \(extra.name)")
                    }
                }
            }
        }
        try file.sync()
        frameCount += 1
    }

    /// Converts `vectors × scale` to Float in the reused buffer (fill values when nil) and
    /// writes record `vectorStart[0]` of `variable`.
    private func putVectors(_ vectors: [Vec3]?, scale: Double, rotation: Mat3?, variable: Int32, name: String) throws {
        let n = atomCount
        floatBuffer.withUnsafeMutableBufferPointer { out in
            if let vectors, let rotation {
                vectors.withUnsafeBufferPointer { v in
                    for i in 0..<n {
                        let x = rotation.leftMultiply(v[i]) * scale
                        out[3 * i] = Float(x.x)
                        out[3 * i + 1] = Float(x.y)
                        out[3 * i + 2] = Float(x.z)
                    }
                }
            } else if let vectors {
                vectors.withUnsafeBufferPointer { v in
                    for i in 0..<n {
                        let x = v[i] * scale
                        out[3 * i] = Float(x.x)
                        out[3 * i + 1] = Float(x.y)
                        out[3 * i + 2] = Float(x.z)
                    }
                }
            } else {
                for k in 0..<(3 * n) { out[k] = AmberNetCDF.floatFill }
            }
        }
        let status = floatBuffer.withUnsafeBufferPointer { out in
            vectorStart.withUnsafeBufferPointer { s in
                vectorCount.withUnsafeBufferPointer { c in
                    nc_put_vara_float(file.ncid, variable, s.baseAddress, c.baseAddress, out.baseAddress)
                }
            }
        }
        try file.check(status, "frame \(vectorStart[0]): cannot write \(name)")
    }

    /// The orthogonal map taking `cell` to the AMBER orientation (a along +x, b in the xy
    /// plane), or nil when the cell is already there.
    ///
    /// The convention stores only lengths and angles, and readers rebuild the cell in that
    /// orientation, so vectors of a rotated cell are rotated with it to stay consistent.
    /// As row vectors: `v' = v · R` with `R = M⁻¹ S` (M the cell rows, S the standard rows).
    public static func rotationToStandardOrientation(_ cell: Cell) -> Mat3? {
        let m = cell.matrix
        if m[0, 1] == 0 && m[0, 2] == 0 && m[1, 2] == 0 && m[0, 0] > 0 && m[1, 1] > 0 && m[2, 2] > 0 { return nil }
        guard let standard = try? Cell.fromLengthsAndAngles(cell.lengths, cell.anglesDegrees) else { return nil }
        return cell.inverse * standard.matrix
    }

    /// Closes the file (also done on deinit). Further writes throw.
    public func close() throws { try file.close() }

    static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first.properties.isAlphabetic || first == "_" else { return false }
        return name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_") }
    }
}

// MARK: - Appending

extension AmberTrajectoryWriter {
    /// The variables of an existing trajectory, checked for appending.
    struct Layout {
        var atomCount: Int
        var frameCount: Int
        var timeID: Int32, coordinatesID: Int32
        var velocitiesID: Int32?, forcesID: Int32?
        var cellLengthsID: Int32?, cellAnglesID: Int32?
        var extras: [AmberExtraVariable] = []
        var extraIDs: [Int32] = []
        var title: String?, application: String?, program: String?, programVersion: String?

        init(path: String) throws {
            let file = try NetCDFFile.open(path: path)
            try self.init(file: file)
            try file.close()
        }

        init(file: NetCDFFile) throws {
            let path = file.path
            guard let conventions = file.text(attribute: "Conventions"),
                  conventions.split(whereSeparator: { $0 == "," || $0 == " " }).contains("AMBER") else {
                throw TrajectoryError("\(path): not an AMBER trajectory (Conventions is not \"AMBER\"); cannot append")
            }
            guard let frameDim = file.dimensionID("frame"), file.unlimitedDimension == frameDim,
                  let atomDim = file.dimensionID("atom") else {
                throw TrajectoryError("\(path): no unlimited 'frame' dimension or no 'atom' dimension; cannot append")
            }
            atomCount = try file.dimensionLength(atomDim)
            frameCount = try file.dimensionLength(frameDim)
            guard let time = file.variableID("time"), let coordinates = file.variableID("coordinates") else {
                throw TrajectoryError("\(path): no 'time' or 'coordinates' variable; cannot append")
            }
            timeID = time
            coordinatesID = coordinates
            velocitiesID = file.variableID("velocities")
            forcesID = file.variableID("forces")
            cellLengthsID = file.variableID("cell_lengths")
            cellAnglesID = file.variableID("cell_angles")
            guard (cellLengthsID == nil) == (cellAnglesID == nil) else {
                throw TrajectoryError("\(path): has only one of cell_lengths and cell_angles; cannot append")
            }
            for (name, id) in [("time", timeID), ("coordinates", coordinatesID)] + [("velocities", velocitiesID), ("forces", forcesID)].compactMap({ n, i in i.map { (n, $0) } }) {
                if let factor = file.number(attribute: "scale_factor", variable: id), factor != 1 {
                    throw TrajectoryError("\(path): '\(name)' has scale_factor \(factor); appending unscaled frames would mix units")
                }
            }
            let spatialDim = file.dimensionID("spatial")
            for (id, name) in try file.variableNames().enumerated() where !AmberNetCDF.standardVariables.contains(name) {
                let dims = try file.variableDimensions(Int32(id))
                guard dims.first == frameDim else { continue }
                let units = file.text(attribute: "units", variable: Int32(id)) ?? ""
                if dims.count == 1 {
                    extras.append(AmberExtraVariable(name: name, width: 1, units: units))
                } else if dims.count == 2, dims[1] == spatialDim {
                    extras.append(AmberExtraVariable(name: name, width: 3, units: units))
                } else {
                    throw TrajectoryError("\(path): per-frame variable '\(name)' has a shape this writer cannot extend; cannot append")
                }
                extraIDs.append(Int32(id))
            }
            title = file.text(attribute: "title")
            application = file.text(attribute: "application")
            program = file.text(attribute: "program")
            programVersion = file.text(attribute: "programVersion")
        }
    }

    /// Rewrites `path` with only its first `keep` frames (temporary file, then rename).
    static func truncate(path: String, layout: Layout, keeping keep: Int) throws {
        try replacingFile(at: path, temporarySuffix: ".truncate.tmp") { temporary in
            let writer = try AmberTrajectoryWriter(
                path: temporary, atomCount: layout.atomCount, velocities: layout.velocitiesID != nil,
                forces: layout.forcesID != nil, periodic: layout.cellLengthsID != nil, extras: layout.extras,
                title: layout.title, application: layout.application, program: layout.program ?? AmberNetCDF.program,
                programVersion: layout.programVersion ?? AmberNetCDF.programVersion)
            let source = try NetCDFFile.open(path: path)
            let n = layout.atomCount
            var buffer = [Double](repeating: 0, count: 3 * n)
            for name in ["time", "coordinates", "velocities", "forces", "cell_lengths", "cell_angles"] + layout.extras.map(\.name) {
                guard let from = source.variableID(name), let to = writer.file.variableID(name) else { continue }
                let dims = try source.variableDimensions(from)
                var count = [1] + (try dims.dropFirst().map { try source.dimensionLength($0) })
                for frame in 0..<keep {
                    var start = [frame] + Array(repeating: 0, count: dims.count - 1)
                    // Doubles hold every float exactly, so the copy is bit for bit.
                    try source.check(nc_get_vara_double(source.ncid, from, &start, &count, &buffer), "cannot read \(name) of frame \(frame)")
                    try writer.file.check(nc_put_vara_double(writer.file.ncid, to, &start, &count, &buffer), "cannot copy \(name) of frame \(frame)")
                }
            }
            try source.close()
            try writer.file.sync()
            try writer.close()
        }
    }
}

/// Writes a new file at `path` through a temporary one beside it (`path + temporarySuffix`),
/// synced and renamed into place: a failure leaves whatever was at `path` as it was, and the
/// writing's errors name `path`, not a temporary file the user never asked for. The file it
/// replaces keeps its place and permissions, as a plain write over it would: a symbolic link
/// at `path` stays a link (the file it names is the one replaced), and the new file takes the
/// old one's mode.
public func replacingFile(at path: String, temporarySuffix: String = ".tmp", _ write: (_ temporary: String) throws -> Void) throws {
    let target = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
    let temporary = target + temporarySuffix
    do {
        try write(temporary)
        if let mode = try? FileManager.default.attributesOfItem(atPath: target)[.posixPermissions] {
            try? FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: temporary)
        }
        try syncToDisk(path: temporary)
        guard rename(temporary, target) == 0 else {
            throw TrajectoryError("\(path): cannot rename the finished file into place: \(String(cString: strerror(errno)))")
        }
    } catch {
        try? FileManager.default.removeItem(atPath: temporary)
        if let e = error as? TrajectoryError { throw TrajectoryError(e.description.replacingOccurrences(of: temporary, with: path)) }
        throw error
    }
}

/// Forces a written file's data to disk (before a rename makes it visible).
func syncToDisk(path: String) throws {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw TrajectoryError("\(path): cannot reopen to sync: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    guard fsync(fd) == 0 else { throw TrajectoryError("\(path): fsync failed: \(String(cString: strerror(errno)))") }
}
