import Foundation
import Geometry
import Dynamics
import Trajectory

/// Writes frames of a running simulation to an AMBER NetCDF trajectory.
final class TrajectoryReporter: Reporter {
    let stride: Int
    let writer: AmberTrajectoryWriter
    /// Fills the frames' `dipole` variable (a dipole model evaluated on the stored positions).
    let dipole: ((MDState) throws -> Vec3)?
    private(set) var lastWrittenStep: Int?

    /// `lastWrittenStep`: the step of the last frame already in the file a restarted run appends
    /// to, so that a run continued with no step left does not write that frame twice.
    init(writer: AmberTrajectoryWriter, stride: Int, dipole: ((MDState) throws -> Vec3)? = nil, lastWrittenStep: Int? = nil) {
        self.writer = writer
        self.stride = stride
        self.dipole = dipole
        self.lastWrittenStep = lastWrittenStep
    }

    func report(_ simulation: Simulation) throws {
        try write(simulation)
    }

    /// Writes the current state unless it is already the last frame (a run stopped on a
    /// reporting step).
    func write(_ simulation: Simulation) throws {
        let state = simulation.state
        guard lastWrittenStep != state.step else { return }
        let thermo = simulation.thermo
        var extras: [String: [Double]] = ["potential_energy": [thermo.potentialEnergy], "kinetic_energy": [thermo.kineticEnergy],
                                          "temperature": [thermo.temperature]]
        if let dipole {
            let mu = try dipole(state)
            extras[AmberExtraVariable.dipole.name] = [mu.x, mu.y, mu.z]
        }
        let frame = Frame(time: state.time, positions: state.positions,
                          velocities: writer.hasVelocities ? state.velocities : nil,
                          forces: writer.hasForces ? simulation.forces.forces : nil,
                          cell: writer.isPeriodic ? state.cell : nil, extras: extras)
        try writer.write(frame)
        lastWrittenStep = state.step
    }

    func close() throws { try writer.close() }
}

/// Writes restart files that continue the run bit for bit.
final class RestartReporter: Reporter {
    let stride: Int
    let path: String
    let title: String
    private(set) var lastWrittenStep: Int?

    init(path: String, stride: Int, title: String) {
        self.path = path
        self.stride = stride
        self.title = title
    }

    func report(_ simulation: Simulation) throws {
        // Step 0 needs no restart: the deck itself restarts it.
        if simulation.state.step > 0 { try write(simulation) }
    }

    func write(_ simulation: Simulation) throws {
        guard lastWrittenStep != simulation.state.step else { return }
        let checkpoint = simulation.checkpoint()
        let s = checkpoint.state
        try AmberRestart(time: s.time, positions: s.positions, velocities: s.velocities, cell: s.cell,
                         step: s.step, state: checkpoint.integrator, listAnchors: checkpoint.listAnchors, title: title).write(to: path)
        lastWrittenStep = s.step
    }
}

/// Appends lines to a text file, flushing each so that a killed run keeps its log.
final class LogFile {
    private let handle: FileHandle

    init(path: String, append: Bool) throws {
        let fm = FileManager.default
        if !append || !fm.fileExists(atPath: path) {
            guard fm.createFile(atPath: path, contents: nil) else { throw InputError("\(path): cannot create the log file") }
        }
        guard let h = FileHandle(forWritingAtPath: path) else { throw InputError("\(path): cannot open the log file") }
        handle = h
        if append { handle.seekToEndOfFile() }
    }

    func write(_ line: String) throws {
        try handle.write(contentsOf: Data((line.hasSuffix("\n") ? line : line + "\n").utf8))
    }

    /// The CSV log at `path` cut after its row of `step`, or nil when nothing follows that row:
    /// a run restarted from an earlier restart than the log reached writes those steps again
    /// (rows were repeated, which `analyze thermo` refused). The header and rows that are not
    /// steps stay. A file whose first line is not this program's header (another program's
    /// CSV, an empty file) is refused: rows appended to it made a table nothing could read.
    /// Only reads, so that a continuation checks every output before it changes one.
    /// `volume`: whether this run's log has the volume columns; a log that has them is
    /// continued with them, so the returned flag says which header the file has.
    static func rowsKept(path: String, throughStep step: Int, volume: Bool = false) throws -> (rows: String?, volume: Bool) {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw InputError("\(path): cannot read the log to continue it (\(error.localizedDescription))")
        }
        let lines = text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        let header = ThermoLogReporter.columns(volume: volume).joined(separator: ",")
        let withVolume = ThermoLogReporter.columns(volume: true).joined(separator: ",")
        guard let first = lines.first, first == header || first == withVolume else {
            let found = lines.first.map { "'\($0.prefix(60))'" } ?? "nothing (an empty file)"
            throw InputError("\(path): the log to continue starts with \(found), not the header this run writes, '\(header)'; give another output.log")
        }
        let volume = first == withVolume
        // A row cut short by a kill has fewer fields than the header: dropped, so that the
        // continuation's first row does not run on from it.
        let fields = ThermoLogReporter.columns(volume: volume).count
        let kept = lines.enumerated().filter { index, line in
            guard index > 0 else { return true }
            let cells = line.split(separator: ",", omittingEmptySubsequences: false)
            guard cells.count == fields, let rowStep = Int(cells[0]) else { return false }
            return rowStep <= step
        }.map(\.element)
        let cut = kept.map { $0 + "\n" }.joined()
        return (cut == text ? nil : cut, volume)
    }

    /// Replaces the log at `path` with `rows` (from ``rowsKept(path:throughStep:)``).
    static func replace(path: String, with rows: String) throws {
        do { try Data(rows.utf8).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw InputError("\(path): cannot shorten the log (\(error.localizedDescription))")
        }
    }

    deinit { try? handle.close() }
}

