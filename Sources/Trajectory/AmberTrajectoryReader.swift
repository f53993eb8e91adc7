import CNetCDF
import Foundation
import Geometry

/// Reads AMBER-convention NetCDF trajectories and restarts written by any program.
///
/// Liberal in what it accepts: NetCDF-3 classic, 64-bit offset or CDF-5; float or double
/// variables; `scale_factor` attributes on any variable (multiplied in); a missing cell;
/// `Conventions` "AMBER" (trajectory) or "AMBERRESTART" (restart, seen as one frame).
/// Refuses, with an error naming the file: missing, empty, truncated or non-NetCDF files,
/// NetCDF-4/HDF5 files, other conventions, no `coordinates`, inconsistent shapes.
///
/// `frame(_:)` returns internal units (fs, Å, Å/fs, eV/Å). The bulk readers return flat
/// arrays in file units (Å, Å/ps, kcal/mol/Å, ps) with scale factors applied, or internal
/// units on request, reading a whole frame range with one libnetcdf call.
///
/// libnetcdf is not thread-safe: use a reader (and any writer) from one thread at a time.
public final class AmberTrajectoryReader {
    public let path: String
    public let atomCount: Int
    public let frameCount: Int
    /// True for `Conventions = "AMBERRESTART"` files (no `frame` dimension; one frame).
    public let isRestart: Bool
    /// The text global attributes (`Conventions`, `program`, `title`, ...).
    public let globalAttributes: [String: String]
    /// Every variable name in the file.
    public let variableNames: [String]

    public var hasVelocities: Bool { velocitiesVariable != nil }
    public var hasForces: Bool { forcesVariable != nil }
    public var hasCell: Bool { cellLengthsVariable != nil }
    public var hasDipole: Bool { extraVariables["dipole"] != nil }
    public var program: String? { globalAttributes["program"] }
    public var title: String? { globalAttributes["title"] }
    /// Non-standard per-frame variables (`potential_energy`, `dipole`, ...) and their widths.
    public var extraVariableWidths: [String: Int] { extraVariables.mapValues(\.width) }

    /// How one variable sits in the file.
    struct Variable {
        var id: Int32
        var name: String
        /// Values per frame.
        var width: Int
        var shape: [Int]
        /// The first dimension is `frame` (false in restarts).
        var perFrame: Bool
        var scale: Double
        var units: String?
    }

    let file: NetCDFFile
    let coordinatesVariable: Variable
    let timeVariable: Variable?
    let velocitiesVariable: Variable?
    let forcesVariable: Variable?
    let cellLengthsVariable: Variable?
    let cellAnglesVariable: Variable?
    let extraVariables: [String: Variable]

    /// Opens a trajectory or restart; `expectedAtomCount` (from a topology) is checked.
    public init(path: String, expectedAtomCount: Int? = nil) throws {
        let file = try NetCDFFile.open(path: path)
        self.file = file
        self.path = path

        var attributes: [String: String] = [:]
        for name in try file.globalAttributeNames() {
            if let text = file.text(attribute: name) { attributes[name] = text }
        }
        globalAttributes = attributes
        variableNames = try file.variableNames()

        guard let conventions = attributes["Conventions"] else {
            throw TrajectoryError("\(path): no global attribute 'Conventions'; not an AMBER NetCDF file")
        }
        let tokens = conventions.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
        let restart: Bool
        if tokens.contains(AmberNetCDF.trajectoryConventions) {
            restart = false
        } else if tokens.contains(AmberNetCDF.restartConventions) {
            restart = true
        } else {
            throw TrajectoryError("\(path): Conventions is \"\(conventions)\", expected \"AMBER\" (trajectory) or \"AMBERRESTART\" (restart)")
        }
        isRestart = restart

        guard let atomDim = file.dimensionID("atom") else { throw TrajectoryError("\(path): no 'atom' dimension") }
        let atoms = try file.dimensionLength(atomDim)
        atomCount = atoms
        let frameDim = file.dimensionID("frame")
        if restart {
            frameCount = 1
        } else {
            guard let frameDim else { throw TrajectoryError("\(path): AMBER trajectory without a 'frame' dimension") }
            frameCount = try file.dimensionLength(frameDim)
        }
        if let expectedAtomCount, expectedAtomCount != atoms {
            throw TrajectoryError("\(path): has \(atoms) atoms but \(expectedAtomCount) were expected (topology mismatch)")
        }

        func variable(_ name: String) throws -> Variable? {
            guard let id = file.variableID(name) else { return nil }
            let dims = try file.variableDimensions(id)
            let type = try file.variableType(id)
            guard [NC_FLOAT, NC_DOUBLE, NC_SHORT, NC_INT, NC_BYTE].contains(type) else {
                throw TrajectoryError("\(path): variable '\(name)' is not numeric")
            }
            let perFrame = !restart && frameDim != nil && dims.first == frameDim
            let shape = try dims.map { try file.dimensionLength($0) }
            let width = (perFrame ? shape.dropFirst() : shape[...]).reduce(1, *)
            let scale = file.number(attribute: "scale_factor", variable: id) ?? 1
            guard scale.isFinite else { throw TrajectoryError("\(path): variable '\(name)' has a non-finite scale_factor") }
            if !restart && !perFrame {
                throw TrajectoryError("\(path): variable '\(name)' has no 'frame' dimension")
            }
            return Variable(id: id, name: name, width: width, shape: shape, perFrame: perFrame, scale: scale,
                            units: file.text(attribute: "units", variable: id))
        }

        // Shapes alone let (frame, spatial, atom) pass as (frame, atom, spatial), with its
        // numbers read in the wrong order: the last two dimensions must be atom and spatial.
        let spatialDim = file.dimensionID("spatial")
        func checkVectorLayout(_ v: Variable) throws {
            let dims = try file.variableDimensions(v.id)
            guard dims.count >= 2, dims[dims.count - 2] == atomDim, spatialDim.map({ dims[dims.count - 1] == $0 }) ?? true else {
                let names = dims.map { (try? file.dimensionName($0)) ?? "?" }
                throw TrajectoryError("\(path): '\(v.name)' has dimensions (\(names.joined(separator: ", "))), expected (\(restart ? "" : "frame, ")atom, spatial)")
            }
        }
        guard let coordinates = try variable("coordinates") else {
            throw TrajectoryError("\(path): no 'coordinates' variable; not an AMBER trajectory")
        }
        guard coordinates.width == 3 * atoms, coordinates.shape.last == 3 else {
            throw TrajectoryError("\(path): 'coordinates' has shape \(coordinates.shape), expected (\(restart ? "" : "frame, ")atom=\(atoms), spatial=3)")
        }
        try checkVectorLayout(coordinates)
        coordinatesVariable = coordinates
        let time = try variable("time")
        if let t = time, t.width != 1 {
            throw TrajectoryError("\(path): 'time' has shape \(t.shape), expected one value per frame")
        }
        timeVariable = time
        let velocities = try variable("velocities"), forces = try variable("forces")
        for v in [velocities, forces].compactMap({ $0 }) {
            guard v.width == 3 * atoms else {
                throw TrajectoryError("\(path): '\(v.name)' has shape \(v.shape), expected (frame, atom=\(atoms), spatial=3)")
            }
            try checkVectorLayout(v)
        }
        velocitiesVariable = velocities
        forcesVariable = forces
        // Values are read in AMBER's units whatever the attribute says: a file in femtoseconds
        // or nanometres per picosecond was read as picoseconds and Å/ps with no word. Any
        // spelling of AMBER's units passes (`Angstroms`, `ps`, `kcal/mole/A`); a unit that names
        // another scale is refused.
        func names(_ units: String, _ words: [String], orIs short: [String] = []) -> Bool {
            words.contains { units.contains($0) } || short.contains(units)
        }
        let amberUnits: [(Variable?, String, (String) -> Bool)] = [
            (time, "picosecond", { names($0, ["pico"], orIs: ["ps"]) }),
            (coordinates, "angstrom", { names($0, ["angstrom", "ångström"], orIs: ["a", "å", "ang"]) }),
            (velocities, "angstrom/picosecond", { u in
                let parts = u.split(separator: "/", maxSplits: 1).map(String.init)
                return parts.count == 2 && names(parts[0], ["angstrom"], orIs: ["a", "å", "ang"]) && names(parts[1], ["pico"], orIs: ["ps"])
            }),
            (forces, "kilocalorie/mole/angstrom", { names($0, ["kilocal", "kcal"]) && !$0.contains("nm") && !$0.contains("nano") }),
        ]
        for case let (variable?, amber, isAmber) in amberUnits {
            guard let units = variable.units, !units.isEmpty else { continue }
            guard isAmber(units.lowercased().replacingOccurrences(of: " ", with: "")) else {
                throw TrajectoryError("\(path): '\(variable.name)' is in \"\(units)\"; AMBER NetCDF stores it in \(amber), the unit it is read in")
            }
        }
        let lengths = try variable("cell_lengths"), angles = try variable("cell_angles")
        if let lengths, let angles {
            guard lengths.width == 3, angles.width == 3 else {
                throw TrajectoryError("\(path): cell_lengths/cell_angles must hold 3 values per frame")
            }
            cellLengthsVariable = lengths
            cellAnglesVariable = angles
        } else if lengths != nil || angles != nil {
            // Either alone was read as no cell at all: an RDF without images, an MSD not unwrapped.
            throw TrajectoryError("\(path): '\(lengths == nil ? "cell_angles" : "cell_lengths")' without '\(lengths == nil ? "cell_lengths" : "cell_angles")'; an AMBER cell needs both")
        } else {
            cellLengthsVariable = nil
            cellAnglesVariable = nil
        }
        var extras: [String: Variable] = [:]
        for name in variableNames where !AmberNetCDF.standardVariables.contains(name) {
            guard let id = file.variableID(name), try file.variableType(id) != NC_CHAR else { continue }
            let dims = try file.variableDimensions(id)
            guard restart || (frameDim != nil && dims.first == frameDim) else { continue }
            if let v = try variable(name) { extras[name] = v }
        }
        extraVariables = extras

        // A file cut short after its header was written still opens; reading its last
        // record is what reveals the truncation.
        if frameCount > 0 {
            var probe = [Float](repeating: 0, count: coordinates.width)
            try readRaw(coordinates, frames: (frameCount - 1)..<frameCount, stride: 1, into: &probe)
        }
    }

    public func close() throws { try file.close() }

    // MARK: Frames

    /// One frame in internal units: time fs, positions Å, velocities Å/fs, forces eV/Å,
    /// the cell rebuilt from lengths and angles (a along x, b in the xy plane), extras as stored.
    /// Velocities or forces holding fill values (frames written without them) come back nil.
    public func frame(_ index: Int) throws -> Frame {
        try checkRange(index..<(index + 1))
        let range = index..<(index + 1)
        var buffer = [Double](repeating: 0, count: 3 * atomCount)
        // Dividing (not multiplying by a reciprocal) keeps Float(v·1000)/1000 closest to v.
        func vectors(_ v: Variable, divisor: Double) throws -> [Vec3]? {
            try readRaw(v, frames: range, stride: 1, into: &buffer)
            if buffer.first.map({ abs($0) >= 9.0e36 }) ?? false { return nil }
            let s = v.scale
            return (0..<atomCount).map { Vec3(buffer[3 * $0], buffer[3 * $0 + 1], buffer[3 * $0 + 2]) * s / divisor }
        }
        guard let positions = try vectors(coordinatesVariable, divisor: 1) else {
            throw TrajectoryError("\(path): frame \(index) has no coordinates (fill values)")
        }
        let velocities = try velocitiesVariable.flatMap { try vectors($0, divisor: AmberNetCDF.velocityToFile) }
        let forces = try forcesVariable.flatMap { try vectors($0, divisor: AmberNetCDF.forceToFile) }
        var time = 0.0
        if let t = timeVariable {
            var value = [0.0]
            try readRaw(t, frames: range, stride: 1, into: &value)
            time = value[0] * t.scale * Units.femtosecondsPerPicosecond
        }
        let cell = try cellOfFrame(index)
        var extras: [String: [Double]] = [:]
        for (name, v) in extraVariables {
            var values = [Double](repeating: 0, count: v.width)
            try readRaw(v, frames: range, stride: 1, into: &values)
            if values.contains(where: { abs($0) >= 9.0e36 }) { continue }
            extras[name] = values.map { $0 * v.scale }
        }
        return Frame(time: time, positions: positions, velocities: velocities, forces: forces, cell: cell, extras: extras)
    }

    /// The cell of a frame, or nil when the file has none (or stores zero lengths).
    public func cellOfFrame(_ index: Int) throws -> Cell? {
        guard let lengthsVariable = cellLengthsVariable, let anglesVariable = cellAnglesVariable else { return nil }
        try checkRange(index..<(index + 1))
        var lengths = [0.0, 0, 0], angles = [0.0, 0, 0]
        try readRaw(lengthsVariable, frames: index..<(index + 1), stride: 1, into: &lengths)
        try readRaw(anglesVariable, frames: index..<(index + 1), stride: 1, into: &angles)
        let l = Vec3(lengths[0], lengths[1], lengths[2]) * lengthsVariable.scale
        let a = Vec3(angles[0], angles[1], angles[2]) * anglesVariable.scale
        if l.x == 0 && l.y == 0 && l.z == 0 { return nil }
        do {
            return try Cell.fromLengthsAndAngles(l, a)
        } catch {
            throw TrajectoryError("\(path): frame \(index): cell lengths \(l.plainDescription) and angles \(a.plainDescription) do not form a cell (\(error))")
        }
    }

    // MARK: Bulk access

    /// Units a bulk read returns.
    public enum ValueUnits: Sendable {
        /// As on file after `scale_factor`: Å, Å/ps, kcal/mol/Å, ps.
        case file
        /// Internal: Å, Å/fs, eV/Å, fs (extras and cell variables are the same in both).
        case `internal`
    }

    /// Values of `variable` for `frames` (every `stride`-th), flat and frame-major
    /// (`frame * width + k`; for vectors per atom `(frame * atomCount + atom) * 3 + axis`).
    public func readDoubles(_ variable: String, frames: Range<Int>? = nil, stride: Int = 1,
                            units: ValueUnits = .file) throws -> [Double] {
        let v = try lookup(variable)
        let range = frames ?? 0..<frameCount
        try checkRange(range)
        let count = selectedCount(range, stride)
        var out = [Double](repeating: 0, count: count * v.width)
        try readRaw(v, frames: range, stride: stride, into: &out)
        let (multiplier, divisor) = unitFactor(variable, units)
        let factor = v.scale * multiplier
        if factor != 1 || divisor != 1 { for k in out.indices { out[k] = out[k] * factor / divisor } }
        return out
    }

    /// As `readDoubles`, in single precision (half the memory for large coordinate sets).
    public func readFloats(_ variable: String, frames: Range<Int>? = nil, stride: Int = 1,
                           units: ValueUnits = .file) throws -> [Float] {
        let v = try lookup(variable)
        let range = frames ?? 0..<frameCount
        try checkRange(range)
        let count = selectedCount(range, stride)
        var out = [Float](repeating: 0, count: count * v.width)
        try readRaw(v, frames: range, stride: stride, into: &out)
        let (multiplier, divisor) = unitFactor(variable, units)
        let factor = Float(v.scale * multiplier / divisor)
        if factor != 1 { for k in out.indices { out[k] *= factor } }
        return out
    }

    /// Times of the frames in fs (internal units).
    public func times(frames: Range<Int>? = nil) throws -> [Double] {
        guard timeVariable != nil else { return [Double](repeating: 0, count: (frames ?? 0..<frameCount).count) }
        return try readDoubles("time", frames: frames, units: .internal)
    }

    /// Values per frame of a variable (3·atoms for coordinates, 1 for time, ...).
    public func width(of variable: String) throws -> Int { try lookup(variable).width }

    /// The `units` attribute of a variable.
    public func units(of variable: String) throws -> String? { try lookup(variable).units }

    func lookup(_ name: String) throws -> Variable {
        switch name {
        case "coordinates": return coordinatesVariable
        case "time": if let v = timeVariable { return v }
        case "velocities": if let v = velocitiesVariable { return v }
        case "forces": if let v = forcesVariable { return v }
        case "cell_lengths": if let v = cellLengthsVariable { return v }
        case "cell_angles": if let v = cellAnglesVariable { return v }
        default: if let v = extraVariables[name] { return v }
        }
        throw TrajectoryError("\(path): no variable '\(name)' (variables: \(variableNames.joined(separator: ", ")))")
    }

    /// File units → requested units as (multiplier, divisor).
    private func unitFactor(_ name: String, _ units: ValueUnits) -> (Double, Double) {
        guard units == .internal else { return (1, 1) }
        switch name {
        case "velocities": return (1, AmberNetCDF.velocityToFile)
        case "forces": return (1, AmberNetCDF.forceToFile)
        case "time": return (Units.femtosecondsPerPicosecond, 1)
        default: return (1, 1)
        }
    }

    private func selectedCount(_ range: Range<Int>, _ stride: Int) -> Int {
        range.isEmpty ? 0 : (range.count - 1) / max(stride, 1) + 1
    }

    private func checkRange(_ range: Range<Int>) throws {
        guard range.lowerBound >= 0, range.upperBound <= frameCount else {
            throw TrajectoryError("\(path): frames \(range.lowerBound)..<\(range.upperBound) requested, the file has \(frameCount)")
        }
    }

    /// One libnetcdf call for the whole selection; libnetcdf converts the stored type.
    func readRaw<T>(_ v: Variable, frames: Range<Int>, stride: Int, into out: inout [T]) throws {
        guard stride >= 1 else { throw TrajectoryError("\(path): stride \(stride) must be at least 1") }
        let count = selectedCount(frames, stride)
        guard count > 0 else { return }
        let perFrame = v.perFrame
        var start = [Int](repeating: 0, count: v.shape.count)
        var counts = v.shape
        var strides = [Int](repeating: 1, count: v.shape.count)
        if perFrame {
            start[0] = frames.lowerBound
            counts[0] = count
            strides[0] = stride
        }
        let status: Int32 = out.withUnsafeMutableBytes { raw in
            if T.self == Float.self {
                let p = raw.baseAddress?.assumingMemoryBound(to: Float.self)
                return v.shape.isEmpty ? nc_get_var_float(file.ncid, v.id, p)
                    : nc_get_vars_float(file.ncid, v.id, start, counts, strides, p)
            } else {
                let p = raw.baseAddress?.assumingMemoryBound(to: Double.self)
                return v.shape.isEmpty ? nc_get_var_double(file.ncid, v.id, p)
                    : nc_get_vars_double(file.ncid, v.id, start, counts, strides, p)
            }
        }
        guard status == NC_NOERR else {
            throw TrajectoryError("\(path): cannot read '\(v.name)' for frames \(frames.lowerBound)..<\(frames.upperBound) (truncated file?): \(NetCDFFile.message(status))")
        }
    }
}
