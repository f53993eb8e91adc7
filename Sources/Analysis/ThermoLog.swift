import Foundation

/// A thermodynamic log: named numeric columns, one row per report.
///
/// Reads both forms the Dynamics log reporter writes: CSV with a header row
/// (`step,time_fs,potential_eV,...`) and aligned columns with a `#` header. Empty cells and
/// `-` (e.g. the pressure of a non-periodic run) are missing values (NaN).
public struct ThermoLog: Sendable {
    public var path: String
    public var names: [String]
    /// Column-major: `columns[c][row]`.
    public var columns: [[Double]]

    public var rowCount: Int { columns.first?.count ?? 0 }

    public init(path: String, names: [String], columns: [[Double]]) {
        self.path = path
        self.names = names
        self.columns = columns
    }

    public static func read(path: String) throws -> ThermoLog {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw AnalysisError("\(path): cannot read the log")
        }
        return try parse(text, path: path)
    }

    public static func parse(_ text: String, path: String = "<log>") throws -> ThermoLog {
        var names: [String]? = nil
        var columns: [[Double]] = []
        var isCSV = false
        // Block averages and --discard-fs assume rows in time order; two logs joined after a
        // restart repeat or go back in time.
        var timeColumn: Int? = nil
        var previousTime: (value: Double, line: Int)? = nil
        // "\r\n" is one Character to Swift: a split on "\n" alone left a Windows log one line long.
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        func nextContentLine(after index: Int) -> String? {
            lines[(index + 1)...].lazy.map { $0.trimmingCharacters(in: .whitespaces) }.first { !$0.isEmpty }
        }
        for (index, rawLine) in lines.enumerated() {
            let lineNumber = index + 1
            var line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            if names == nil {
                // The console form of `run` (its standard output, kept with `> run.out`) opens
                // with "# title: ..." lines; the header is the last "#" line before the numbers.
                if line.hasPrefix("#"), let next = nextContentLine(after: index), next.hasPrefix("#") { continue }
                if line.hasPrefix("#") { line.removeFirst() }
                isCSV = line.contains(",")
                let header = split(line, csv: isCSV)
                guard !header.isEmpty, header.allSatisfy({ Double($0) == nil }) else {
                    throw AnalysisError("\(path):\(lineNumber): expected a header of column names, got '\(line)'")
                }
                // A second column of one name would be unreachable by name, and averaged as the first.
                var firstColumn: [String: Int] = [:]
                for (c, name) in header.enumerated() {
                    if let earlier = firstColumn[name] {
                        throw AnalysisError("\(path):\(lineNumber): column '\(name)' is named twice (columns \(earlier + 1) and \(c + 1))")
                    }
                    firstColumn[name] = c
                }
                names = header
                timeColumn = firstColumn["time_fs"]
                columns = [[Double]](repeating: [], count: header.count)
                continue
            }
            if line.hasPrefix("#") { continue }
            let cells = split(line, csv: isCSV)
            guard cells.count == columns.count else {
                throw AnalysisError("\(path):\(lineNumber): \(cells.count) values; the header names \(columns.count) columns")
            }
            for (c, cell) in cells.enumerated() {
                if cell.isEmpty || cell == "-" { columns[c].append(.nan); continue }
                guard let v = Double(cell) else {
                    throw AnalysisError("\(path):\(lineNumber): column '\(names?[c] ?? "")': '\(cell)' is not a number")
                }
                // An empty cell or "-" is a value not reported; "nan" or "inf" is a run gone wrong,
                // whose averages would silently leave it out.
                guard v.isFinite else {
                    throw AnalysisError("\(path):\(lineNumber): column '\(names?[c] ?? "")': '\(cell)' is not finite (the run failed there? keep the rows before it, or mark a missing value with an empty cell or '-')")
                }
                if c == timeColumn {
                    if let previous = previousTime, v <= previous.value {
                        throw AnalysisError("\(path):\(lineNumber): time_fs \(cell) does not follow \(previous.value) at line \(previous.line); rows must be in time order (two runs' logs joined? keep one copy of each step)")
                    }
                    previousTime = (v, lineNumber)
                }
                columns[c].append(v)
            }
        }
        guard let header = names else { throw AnalysisError("\(path): the log is empty") }
        guard !(columns.first?.isEmpty ?? true) else { throw AnalysisError("\(path): the log has a header but no rows") }
        return ThermoLog(path: path, names: header, columns: columns)
    }

    private static func split(_ line: String, csv: Bool) -> [String] {
        if csv {
            return line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        }
        return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
    }

    /// The column named `name`.
    public func column(_ name: String) throws -> [Double] {
        guard let c = names.firstIndex(of: name) else {
            throw AnalysisError("\(path): no column '\(name)' (columns: \(names.joined(separator: ", ")))")
        }
        return columns[c]
    }

    /// Rows from `first` on.
    public func dropping(rows first: Int) throws -> ThermoLog {
        guard first >= 0, first < rowCount else {
            throw AnalysisError("\(path): discarding \(first) of \(rowCount) rows leaves none")
        }
        return ThermoLog(path: path, names: names, columns: columns.map { Array($0[first...]) })
    }
}

/// Mean, fluctuation and statistical error of a correlated time series.
public struct ThermoAverage: Sendable {
    public var name: String
    /// Values used (missing ones skipped).
    public var count: Int
    public var mean: Double
    /// Standard deviation of the values (the fluctuation, not the error).
    public var standardDeviation: Double
    /// Standard error of the mean from block averages (nil with fewer than 2 blocks).
    public var standardError: Double?
    /// Statistical inefficiency `s = blockLength · var(block means) / var(values)`: roughly
    /// how many consecutive values make one independent sample.
    public var inefficiency: Double?
    public var minimum: Double
    public var maximum: Double

    /// Averages `values` (NaN skipped), with the error from `blocks` consecutive block means.
    /// Blocks must be longer than the correlation time for the error to be right; the
    /// inefficiency shows whether they are (it should be well below the block length).
    public static func compute(name: String, values: [Double], blocks: Int) -> ThermoAverage? {
        let x = values.filter { $0.isFinite }
        guard !x.isEmpty else { return nil }
        let n = Double(x.count)
        let mean = x.reduce(0, +) / n
        let variance = x.count > 1 ? x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1) : 0
        let (_, error) = BlockStatistics.blockAverage(x, blocks: blocks)
        var inefficiency: Double? = nil
        if let e = error, variance > 0 {
            // var(mean) = s·σ²/N.
            inefficiency = e * e * n / variance
        }
        return ThermoAverage(name: name, count: x.count, mean: mean, standardDeviation: variance.squareRoot(),
                             standardError: error, inefficiency: inefficiency,
                             minimum: x.min() ?? .nan, maximum: x.max() ?? .nan)
    }

    /// CSV of averages: `quantity,count,mean,stderr,std,inefficiency,min,max` (each quantity's
    /// unit is in its name, e.g. `temperature_K`).
    public static func csv(_ averages: [ThermoAverage]) -> String {
        var out = "quantity,count,mean,stderr,std,inefficiency,min,max\n"
        for a in averages {
            let cells = [a.name, String(a.count), DataTable.format(a.mean), a.standardError.map(DataTable.format) ?? "",
                         DataTable.format(a.standardDeviation), a.inefficiency.map(DataTable.format) ?? "",
                         DataTable.format(a.minimum), DataTable.format(a.maximum)]
            out += cells.joined(separator: ",") + "\n"
        }
        return out
    }
}
