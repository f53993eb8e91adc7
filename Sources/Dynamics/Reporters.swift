import Foundation
import Geometry

/// Writes the thermodynamic log: one line per report, CSV or aligned columns.
///
/// Columns: step, time_fs, potential_eV, kinetic_eV, total_eV, temperature_K, pressure_bar
/// (empty/"-" without a fully periodic cell), conserved_eV; with `volume`, also volume_A3 and
/// density_g_cm3 (for runs whose cell changes).
public final class ThermoLogReporter: Reporter {
    public enum Format: Sendable { case csv, columns }
    public let stride: Int
    public let format: Format
    /// Whether the volume and density columns are written.
    public let volume: Bool
    private let write: (String) throws -> Void
    private var wroteHeader = false
    /// False when the lines continue a log that already has its header (a restarted run).
    public var writesHeader = true

    /// - Parameter write: receives each line including its newline (a file, stdout, a buffer).
    public init(stride: Int, format: Format = .csv, volume: Bool = false, write: @escaping (String) throws -> Void) {
        self.stride = stride
        self.format = format
        self.volume = volume
        self.write = write
    }

    public static let columns = ["step", "time_fs", "potential_eV", "kinetic_eV", "total_eV",
                                 "temperature_K", "pressure_bar", "conserved_eV"]

    /// The columns of a log with or without the volume and density.
    public static func columns(volume: Bool) -> [String] {
        volume ? columns + ["volume_A3", "density_g_cm3"] : columns
    }

    public func report(_ simulation: Simulation) throws {
        if !wroteHeader {
            wroteHeader = true
            if writesHeader {
            switch format {
            case .csv: try write(Self.columns(volume: volume).joined(separator: ",") + "\n")
            case .columns: try write("#" + Self.columns(volume: volume).map { pad($0, 15) }.joined() + "\n")
            }
            }
        }
        let t = simulation.thermo
        let missing = format == .csv ? "" : "-"
        var fields: [String] = [
            String(t.step), String(format: "%.4f", t.time),
            String(format: "%.10g", t.potentialEnergy), String(format: "%.10g", t.kineticEnergy),
            String(format: "%.10g", t.totalEnergy), String(format: "%.6g", t.temperature),
            t.pressure.map { String(format: "%.6g", $0) } ?? missing,
            String(format: "%.10g", t.conservedEnergy),
        ]
        if volume {
            fields.append(t.volume.map { String(format: "%.8g", $0) } ?? missing)
            fields.append(t.density.map { String(format: "%.6g", $0) } ?? missing)
        }
        switch format {
        case .csv: try write(fields.joined(separator: ",") + "\n")
        case .columns: try write(" " + fields.map { pad($0, 15) }.joined() + "\n")
        }
    }

    /// Right-aligned in `width`; a longer value gets a space before it, since the columns are
    /// right-aligned and a full-width value would otherwise run into the one before it.
    private func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? " " + s : String(repeating: " ", count: width - s.count) + s
    }
}

/// A progress line on stderr (steps/s, ns/day, ETA), rewritten in place; silent when stderr
/// is not a terminal.
public final class ProgressReporter: Reporter {
    public let stride: Int
    private let enabled: Bool
    private var startStep = 0
    private var startTime: ContinuousClock.Instant? = nil

    public init(stride: Int = 100, force: Bool = false) {
        self.stride = stride
        self.enabled = force || isatty(STDERR_FILENO) != 0
    }

    public func report(_ simulation: Simulation) throws {
        guard enabled else { return }
        let now = ContinuousClock.now
        guard let start = startTime else {
            startTime = now
            startStep = simulation.state.step
            return
        }
        let elapsed = now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        let done = simulation.state.step - startStep
        guard seconds > 0, done > 0 else { return }
        let rate = Double(done) / seconds
        let nsPerDay = rate * simulation.integrator.timestep * 86400 * 1e-6
        let remaining = Double(simulation.targetStep - simulation.state.step) / rate
        let line = String(format: "\rstep %d/%d  %.1f steps/s  %.3f ns/day  ETA ",
                          simulation.state.step, simulation.targetStep, rate, nsPerDay) + Self.duration(remaining) + "   "
        FileHandle.standardError.write(Data(line.utf8))
    }

    public func runFinished(_ simulation: Simulation) throws {
        if enabled && startTime != nil { FileHandle.standardError.write(Data("\n".utf8)) }
        startTime = nil
    }

    static func duration(_ s: Double) -> String {
        guard s.isFinite else { return "?" }
        let t = Int(s.rounded())
        return String(format: "%d:%02d:%02d", t / 3600, (t / 60) % 60, t % 60)
    }
}
