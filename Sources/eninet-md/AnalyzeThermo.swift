import Analysis
import ArgumentParser
import Foundation

struct AnalyzeThermo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "thermo",
        abstract: "Averages of a thermodynamic log with statistical errors from block averages.",
        discussion: """
        Reads the log `eninet-md run` writes (CSV, or aligned columns under a `#` header) and \
        writes one CSV row per column: quantity,count,mean,stderr,std,inefficiency,min,max. \
        The error comes from the spread of --blocks consecutive block means; the statistical \
        inefficiency (values per independent sample) should be well below the block length.
        """)

    @Argument(help: "Thermodynamic log (CSV or whitespace columns with a header).")
    var log: String

    @Option(name: .customLong("discard-fs"), parsing: .unconditional, help: ArgumentHelp("Skip rows with time_fs below this (equilibration).", valueName: "fs"))
    var discard: Double?

    @Option(name: .customLong("blocks"), parsing: .unconditional, help: "Blocks for the standard error.")
    var blocks: Int = 10

    @Option(name: .customLong("columns"), help: ArgumentHelp("Comma-separated columns to average (default: all but step and time_fs).", valueName: "list"))
    var columns: String?

    @Option(name: .customLong("csv"), help: ArgumentHelp("Output table (CSV).", valueName: "out.csv"))
    var csv: String

    @Option(name: .customLong("svg"), help: ArgumentHelp("Plot of --plot against time (SVG).", valueName: "out.svg"))
    var svg: String?

    @Option(name: .customLong("plot"), help: "Column to plot.")
    var plot: String = "temperature_K"

    func run() throws {
        guard blocks >= 2 else { throw ValidationError("--blocks must be at least 2") }
        try AtomicFile.checkWritable(csv)
        if let svg { try AtomicFile.checkWritable(svg) }
        try AtomicFile.checkDistinct(outputs: [("--csv", csv)] + (svg.map { [("--svg", $0)] } ?? []), inputs: [("log", log)])
        var table = try ThermoLog.read(path: log)
        if let t0 = discard {
            guard t0.isFinite else { throw ValidationError("--discard-fs must be a finite time; got \(t0)") }
            let time = try table.column("time_fs")
            guard let first = time.firstIndex(where: { $0 >= t0 }) else {
                throw ValidationError("\(log): no rows at or after \(t0) fs")
            }
            table = try table.dropping(rows: first)
        }
        let names = try columns.map { list in
            try list.split(separator: ",").map { name -> String in
                let n = name.trimmingCharacters(in: .whitespaces)
                _ = try table.column(n)
                return n
            }
        } ?? table.names.filter { $0 != "step" && $0 != "time_fs" }
        guard names.count > 0 else { throw ValidationError("--columns names no column") }
        if let repeated = names.indices.first(where: { names[..<$0].contains(names[$0]) }) {
            throw ValidationError("--columns names '\(names[repeated])' twice")
        }
        guard blocks <= table.rowCount else {
            throw ValidationError("\(log): --blocks \(blocks) is more than its \(table.rowCount) rows")
        }
        let averages = try names.compactMap { ThermoAverage.compute(name: $0, values: try table.column($0), blocks: blocks) }
        // The plot is formed before either file is written, so that a bad --plot leaves neither.
        let chart = try svg.map { _ in
            let x = (try? table.column("time_fs")) ?? (0..<table.rowCount).map(Double.init)
            let y = try table.column(plot)
            return SVGPlot(title: "\(plot) — \(URL(fileURLWithPath: log).lastPathComponent)",
                           xLabel: "time (fs)", yLabel: plot, series: [.init(label: plot, x: x, y: y)])
        }
        var files = [(text: ThermoAverage.csv(averages), path: csv)]
        if let svg, let chart { files.append((chart.render(), svg)) }
        try AtomicFile.writeAll(files)
        print("\(table.rowCount) rows of \(log), \(blocks) blocks")
        for a in averages {
            let err = a.standardError.map { String(format: " ± %.4g", $0) } ?? ""
            print("\(a.name): " + String(format: "%.6g", a.mean) + err + String(format: " (std %.4g)", a.standardDeviation))
        }
        print("wrote \(csv)" + (svg.map { " and \($0)" } ?? ""))
    }
}
