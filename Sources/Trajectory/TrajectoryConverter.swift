import Foundation
import Geometry

/// File kinds `TrajectoryConverter` reads and writes, chosen by extension.
public enum TrajectoryFileKind: Equatable, Sendable {
    /// `.nc`: AMBER NetCDF trajectory.
    case amberTrajectory
    /// `.ncrst`, `.rst7`: AMBER NetCDF restart (NetCDF, not AMBER's ASCII restart).
    case amberRestart
    /// `.xyz`, `.extxyz`, `.pdb`: structure text files.
    case structure(StructureFormat)

    public init?(path: String) {
        switch URL(fileURLWithPath: path).pathExtension.lowercased() {
        case "nc", "netcdf", "ncdf": self = .amberTrajectory
        case "ncrst", "rst7": self = .amberRestart
        default:
            guard let format = StructureFormat(path: path) else { return nil }
            self = .structure(format)
        }
    }
}

/// Which frames to convert: Python-style `start:end` (end exclusive, negative counts from
/// the end) and a stride.
public struct FrameSelection: Equatable, Sendable {
    public var start: Int?
    public var end: Int?
    public var stride: Int

    public init(start: Int? = nil, end: Int? = nil, stride: Int = 1) {
        self.start = start
        self.end = end
        self.stride = stride
    }

    public static let all = FrameSelection()

    /// Parses `"10:20"`, `"10:"`, `":-1"`, `"7"` (one frame), `":"`.
    public init(parsing text: String, stride: Int = 1) throws {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        func number(_ s: String) throws -> Int? {
            guard !s.isEmpty else { return nil }
            guard let v = Int(s) else { throw TrajectoryError("--frames '\(text)': '\(s)' is not an integer (use START:END, e.g. 0:100)") }
            // Far past any file, and small enough that k + 1 cannot overflow.
            guard v.magnitude < 1 << 62 else { throw TrajectoryError("--frames '\(text)': '\(s)' is out of range") }
            return v
        }
        switch parts.count {
        case 1:
            guard let k = try number(parts[0]) else { throw TrajectoryError("--frames is empty") }
            self.init(start: k, end: k == -1 ? nil : k + 1, stride: stride)
        case 2:
            self.init(start: try number(parts[0]), end: try number(parts[1]), stride: stride)
        default:
            throw TrajectoryError("--frames '\(text)': expected START:END")
        }
        guard stride >= 1 else { throw TrajectoryError("--stride \(stride) must be at least 1") }
    }

    /// The selected indices among `count` frames.
    public func indices(count: Int) -> StrideTo<Int> {
        func resolve(_ k: Int?, _ fallback: Int) -> Int {
            guard let k else { return fallback }
            return min(max(k < 0 ? count + k : k, 0), count)
        }
        let lo = resolve(start, 0), hi = resolve(end, count)
        return Swift.stride(from: lo, to: max(lo, hi), by: max(stride, 1))
    }

    /// A frame range to read when it is known without the frame count.
    var knownRange: Range<Int>? {
        guard (start ?? 0) >= 0, let end, end >= 0 else { return nil }
        return (start ?? 0)..<max(start ?? 0, end)
    }
}

/// Converts between AMBER NetCDF trajectories, AMBER NetCDF restarts and structure files
/// (extended XYZ, XYZ, PDB), converting units at the boundaries.
///
/// Structure → NetCDF: times from the `time_fs` info key, otherwise frame index ×
/// `frameIntervalFs`; `energy` becomes `potential_energy` and `dipole` stays `dipole`;
/// velocities and forces are written when every selected frame has them.
/// NetCDF → structure: NetCDF stores no elements, so `symbolsFrom` (a structure file with
/// the same atoms in the same order) is required; `potential_energy` becomes `energy` and
/// time is kept as `time_fs`.
/// A restart output takes the last selected frame.
public enum TrajectoryConverter {
    public struct Options: Sendable {
        public var frames: FrameSelection
        /// Structure file naming the atoms of a NetCDF input.
        public var symbolsFrom: String?
        /// Time between structure frames without `time_fs`, fs.
        public var frameIntervalFs: Double
        public var keepVelocities: Bool
        public var keepForces: Bool

        public init(frames: FrameSelection = .all, symbolsFrom: String? = nil, frameIntervalFs: Double = 1,
                    keepVelocities: Bool = true, keepForces: Bool = true) {
            self.frames = frames
            self.symbolsFrom = symbolsFrom
            self.frameIntervalFs = frameIntervalFs
            self.keepVelocities = keepVelocities
            self.keepForces = keepForces
        }
    }

    /// Converts `input` to `output`; returns the number of frames written.
    @discardableResult
    public static func convert(input: String, output: String, options: Options = Options()) throws -> Int {
        guard let inKind = TrajectoryFileKind(path: input) else {
            throw TrajectoryError("\(input): unknown format (use .nc, .ncrst/.rst7, .xyz/.extxyz or .pdb)")
        }
        guard let outKind = TrajectoryFileKind(path: output) else {
            throw TrajectoryError("\(output): unknown output format (use .nc, .ncrst/.rst7, .xyz/.extxyz or .pdb)")
        }
        func canonical(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path }
        guard canonical(input) != canonical(output) else {
            throw TrajectoryError("\(output): output and input are the same file")
        }
        if let symbols = options.symbolsFrom, canonical(symbols) == canonical(output) {
            throw TrajectoryError("\(output): output and --symbols-from are the same file")
        }
        let source = try FrameSource(path: input, kind: inKind, options: options)
        let indices = Array(options.frames.indices(count: source.count))
        guard !indices.isEmpty else { throw TrajectoryError("\(input): no frames selected (the file has \(source.count))") }

        switch outKind {
        case .amberTrajectory:
            let first = try source.frame(indices[0])
            let velocities = options.keepVelocities && source.hasVelocities
            let forces = options.keepForces && source.hasForces
            var extras: [AmberExtraVariable] = []
            for extra in [AmberExtraVariable.potentialEnergy, .kineticEnergy, .temperature, .dipole]
            where source.extraNames.contains(extra.name) {
                extras.append(extra)
            }
            try replacingFile(at: output, temporarySuffix: ".convert.tmp") { temporary in
                let writer = try AmberTrajectoryWriter(path: temporary, atomCount: first.positions.count, velocities: velocities,
                                                       forces: forces, periodic: first.cell != nil, extras: extras,
                                                       title: "converted from \(URL(fileURLWithPath: input).lastPathComponent)")
                for k in indices {
                    var frame = try source.frame(k)
                    if !velocities { frame.velocities = nil }
                    if !forces { frame.forces = nil }
                    if writer.isPeriodic && frame.cell == nil {
                        throw TrajectoryError("\(input): frame \(k) has no cell but frame \(indices[0]) has one")
                    }
                    if !writer.isPeriodic && frame.cell != nil {
                        throw TrajectoryError("\(input): frame \(k) has a cell but frame \(indices[0]) has none")
                    }
                    try writer.write(frame)
                }
                try writer.close()
            }
        case .amberRestart:
            let frame = try source.frame(indices[indices.count - 1])
            try AmberRestart(time: frame.time, positions: frame.positions,
                             velocities: options.keepVelocities ? frame.velocities : nil, cell: frame.cell,
                             title: "converted from \(URL(fileURLWithPath: input).lastPathComponent)").write(to: output)
            return 1
        case .structure(let format):
            let symbols = try source.symbols(options: options, input: input)
            var structures: [Structure] = []
            for k in indices {
                let frame = try source.frame(k)
                guard symbols.count == frame.positions.count else {
                    throw TrajectoryError("\(options.symbolsFrom ?? input): \(symbols.count) atoms, but frame \(k) of \(input) has \(frame.positions.count)")
                }
                structures.append(try source.structure(k, frame: frame, symbols: symbols, options: options))
            }
            try StructureFile.write(structures, to: output, format: format)
        }
        return indices.count
    }

    /// Uniform frame access over the three input kinds.
    struct FrameSource {
        var count: Int
        var hasVelocities: Bool
        var hasForces: Bool
        var extraNames: Set<String>
        var reader: AmberTrajectoryReader?
        var restart: AmberRestart?
        var structures: [Structure] = []
        var structureOffset = 0
        var frameIntervalFs: Double
        let path: String

        init(path: String, kind: TrajectoryFileKind, options: Options) throws {
            self.path = path
            frameIntervalFs = options.frameIntervalFs
            switch kind {
            case .amberTrajectory:
                let r = try AmberTrajectoryReader(path: path)
                reader = r
                count = r.frameCount
                hasVelocities = r.hasVelocities
                hasForces = r.hasForces
                extraNames = Set(r.extraVariableWidths.keys)
            case .amberRestart:
                let r = try AmberRestart.read(path: path)
                restart = r
                count = 1
                hasVelocities = r.velocities != nil
                hasForces = false
                extraNames = []
            case .structure(let format):
                let range = options.frames.knownRange
                structures = try StructureFile.read(path: path, frames: range, format: format)
                structureOffset = range?.lowerBound ?? 0
                count = structureOffset + structures.count
                hasVelocities = structures.allSatisfy { $0.velocities != nil }
                hasForces = structures.allSatisfy { $0.forces != nil }
                var names = Set<String>()
                if structures.allSatisfy({ $0.info["energy"]?.count == 1 }) { names.insert("potential_energy") }
                if structures.allSatisfy({ $0.info["dipole"]?.count == 3 }) { names.insert("dipole") }
                extraNames = names
            }
        }

        /// Frame `k`, refused when a number in it is not finite (a NaN position went into a
        /// restart, where the run would start from it).
        func frame(_ k: Int) throws -> Frame {
            let frame = try unchecked(k)
            guard frame.time.isFinite else { throw TrajectoryError("\(path): frame \(k): its time is \(frame.time)") }
            for (name, vectors) in [("position", frame.positions), ("velocity", frame.velocities ?? []), ("force", frame.forces ?? [])] {
                if let atom = vectors.firstIndex(where: { !($0.x.isFinite && $0.y.isFinite && $0.z.isFinite) }) {
                    throw TrajectoryError("\(path): frame \(k), atom \(atom): the \(name) is not finite")
                }
            }
            return frame
        }

        private func unchecked(_ k: Int) throws -> Frame {
            if let reader { return try reader.frame(k) }
            if let restart {
                return Frame(time: restart.time, positions: restart.positions, velocities: restart.velocities, cell: restart.cell)
            }
            let s = structures[k - structureOffset]
            var extras: [String: [Double]] = [:]
            if let e = s.info["energy"] { extras["potential_energy"] = e }
            if let d = s.info["dipole"] { extras["dipole"] = d }
            let time = s.info["time_fs"]?.first ?? Double(k) * frameIntervalFs
            return Frame(time: time, positions: s.positions, velocities: s.velocities, forces: s.forces, cell: s.cell, extras: extras)
        }

        func symbols(options: Options, input: String) throws -> [String] {
            if !structures.isEmpty { return structures[0].symbols }
            guard let from = options.symbolsFrom else {
                throw TrajectoryError("\(input): NetCDF files store no elements; pass --symbols-from FILE (an .xyz/.extxyz/.pdb with the same atoms in the same order)")
            }
            return try StructureFile.readFirst(path: from).symbols
        }

        func structure(_ k: Int, frame: Frame, symbols: [String], options: Options) throws -> Structure {
            if !structures.isEmpty {
                var s = structures[k - structureOffset]
                if !options.keepVelocities { s.velocities = nil }
                if !options.keepForces { s.forces = nil }
                return s
            }
            var numbers: [Int] = []
            for symbol in symbols {
                guard let z = Elements.atomicNumber(of: symbol) else {
                    throw TrajectoryError("\(options.symbolsFrom ?? "symbols"): unknown element '\(symbol)'")
                }
                numbers.append(z)
            }
            var info: [String: [Double]] = ["time_fs": [frame.time]]
            for (name, values) in frame.extras { info[name == "potential_energy" ? "energy" : name] = values }
            return Structure(symbols: symbols, atomicNumbers: numbers, positions: frame.positions, cell: frame.cell,
                             velocities: options.keepVelocities ? frame.velocities : nil,
                             forces: options.keepForces ? frame.forces : nil, info: info)
        }
    }
}
