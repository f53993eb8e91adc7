import Foundation
import Trajectory

/// Named columns of numbers with units: what every analysis writes as CSV and plots as SVG.
public struct DataTable: Sendable {
    public struct Column: Sendable {
        public var name: String
        /// Unit as written in the header (`cm-1`, `A`, `fs`, `per_cm-1`, `1` for dimensionless).
        public var unit: String
        public var values: [Double]
        public init(name: String, unit: String, values: [Double]) {
            self.name = name
            self.unit = unit
            self.values = values
        }
        /// The header cell: `name_unit`, e.g. `frequency_cm-1`.
        public var header: String { unit.isEmpty ? name : "\(name)_\(unit)" }
    }

    public var columns: [Column]
    public init(columns: [Column]) { self.columns = columns }

    /// CSV text: one header row of `name_unit` cells, then one row per point, numbers with 12
    /// significant digits (enough for 1e-9 relative comparisons after a round trip).
    public func csv() -> String {
        var out = columns.map(\.header).joined(separator: ",") + "\n"
        let rows = columns.map(\.values.count).max() ?? 0
        for r in 0..<rows {
            var cells: [String] = []
            cells.reserveCapacity(columns.count)
            for c in columns {
                cells.append(r < c.values.count ? DataTable.format(c.values[r]) : "")
            }
            out += cells.joined(separator: ",") + "\n"
        }
        return out
    }

    static func format(_ v: Double) -> String {
        if v == 0 { return "0" }
        if !v.isFinite { return v.isNaN ? "nan" : (v > 0 ? "inf" : "-inf") }
        return String(format: "%.12g", v)
    }
}

/// Writes a file completely or not at all: the text goes to a temporary name in the same
/// directory, which is then renamed over the target.
public enum AtomicFile {
    /// Throws unless `path`'s directory exists and is writable, so that a long analysis does
    /// not fail only at the end.
    public static func checkWritable(_ path: String) throws {
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw AnalysisError("cannot write \(path): directory \(dir) does not exist")
        }
        guard FileManager.default.isWritableFile(atPath: dir) else {
            throw AnalysisError("cannot write \(path): directory \(dir) is not writable")
        }
    }

    /// Throws unless every output names a file of its own: not an input (`--csv` on the
    /// trajectory replaced it with a table) and not another output (only the last would stay).
    /// Each pair is (option or role, path); symbolic links are followed.
    public static func checkDistinct(outputs: [(String, String)], inputs: [(String, String)]) throws {
        func canonical(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path }
        for (k, (option, path)) in outputs.enumerated() {
            let target = canonical(path)
            if let input = inputs.first(where: { canonical($0.1) == target }) {
                throw AnalysisError("\(option) \(path) is the \(input.0); writing it would destroy the input")
            }
            if let other = outputs[..<k].first(where: { canonical($0.1) == target }) {
                throw AnalysisError("\(option) and \(other.0) name the same file, \(path)")
            }
        }
    }

    public static func write(_ text: String, to path: String) throws {
        try writeAll([(text, path)])
    }

    /// Writes every file or none: each is renamed into place only after the ones after it are,
    /// so that one that cannot be created (an SVG under `/proc`, which reports itself writable to
    /// root) leaves the others as they were, instead of a new CSV beside no plot.
    public static func writeAll(_ files: [(text: String, path: String)]) throws {
        for file in files { try checkWritable(file.path) }
        try writeNested(files[...])
    }

    private static func writeNested(_ files: ArraySlice<(text: String, path: String)>) throws {
        guard let (text, path) = files.first else { return }
        do {
            try replacingFile(at: path, temporarySuffix: ".tmp-\(getpid())") { temporary in
                try text.write(toFile: temporary, atomically: false, encoding: .utf8)
                try writeNested(files.dropFirst())
            }
        } catch let e as AnalysisError {
            throw e
        } catch let e as TrajectoryError {
            throw AnalysisError(e.description)
        } catch {
            throw AnalysisError("cannot write \(path): \(error.localizedDescription)")
        }
    }
}
