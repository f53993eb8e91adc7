import Analysis
import ArgumentParser
import Foundation

/// `eninet-md analyze training LOG.jsonl`: validation errors of a training run against wall time.
struct AnalyzeTraining: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "training",
        abstract: "Validation error against training time, from the JSON-lines log of `eninet-md train`.",
        discussion: """
        Writes one CSV row per epoch: epoch, elapsed time (min), learning rate, training loss and the \
        validation energy/force/dipole errors the log holds. --svg plots the force MAE (or, for dipole \
        models, the dipole MAE) and --energy-svg the energy MAE against time, with the targets given \
        by --force-target and --energy-target as dashed lines.
        """)

    @Argument(help: "Training log (output.log of the training configuration; one JSON object per line).")
    var log: String

    @Option(name: .customLong("csv"), help: ArgumentHelp("Output table (CSV).", valueName: "out.csv"))
    var csv: String

    @Option(name: .customLong("svg"), help: ArgumentHelp("Plot of the force (or dipole) MAE against time (SVG).", valueName: "out.svg"))
    var svg: String?

    @Option(name: .customLong("energy-svg"), help: ArgumentHelp("Plot of the energy MAE against time (SVG).", valueName: "out.svg"))
    var energySVG: String?

    @Option(name: .customLong("force-target"), parsing: .unconditional, help: ArgumentHelp("Dashed line on the force plot (meV/Å).", valueName: "meV/Å"))
    var forceTarget: Double?

    @Option(name: .customLong("energy-target"), parsing: .unconditional, help: ArgumentHelp("Dashed line on the energy plot (meV/atom).", valueName: "meV/atom"))
    var energyTarget: Double?

    func run() throws {
        for path in [csv, svg, energySVG].compactMap({ $0 }) { try AtomicFile.checkWritable(path) }
        try AtomicFile.checkDistinct(outputs: [("--csv", csv)] + (svg.map { [("--svg", $0)] } ?? []) + (energySVG.map { [("--energy-svg", $0)] } ?? []),
                                     inputs: [("log", log)])
        let text: String
        do { text = try String(contentsOfFile: log, encoding: .utf8) } catch {
            throw ValidationError("\(log): cannot read (\(error.localizedDescription))")
        }
        var rows: [[String: Double]] = []
        for (index, line) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated()
        where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw ValidationError("\(log):\(index + 1): not a JSON object")
            }
            var row: [String: Double] = [:]
            for (key, value) in object { if let n = value as? NSNumber { row[key] = n.doubleValue } }
            guard row["epoch"] != nil, row["elapsed_s"] != nil else {
                throw ValidationError("\(log):\(index + 1): 'epoch' or 'elapsed_s' is missing (logs of eninet-md train record both)")
            }
            rows.append(row)
        }
        guard !rows.isEmpty else { throw ValidationError("\(log): no epochs") }
        let minutes = rows.map { ($0["elapsed_s"] ?? 0) / 60 }
        let optional: [(key: String, name: String, unit: String)] = [
            ("validation_energy_mae_meV_per_atom", "validation_energy_mae", "meV_per_atom"),
            ("validation_energy_rmse_meV_per_atom", "validation_energy_rmse", "meV_per_atom"),
            ("validation_force_mae_meV_per_A", "validation_force_mae", "meV_per_A"),
            ("validation_force_rmse_meV_per_A", "validation_force_rmse", "meV_per_A"),
            ("validation_dipole_mae_eA", "validation_dipole_mae", "eA"),
            ("validation_stress_mae_meV_per_A3", "validation_stress_mae", "meV_per_A3"),
        ]
        var columns: [DataTable.Column] = [
            .init(name: "epoch", unit: "", values: rows.map { $0["epoch"] ?? 0 }),
            .init(name: "elapsed", unit: "min", values: minutes),
            .init(name: "learning_rate", unit: "", values: rows.map { $0["learning_rate"] ?? .nan }),
            .init(name: "train_loss", unit: "", values: rows.map { $0["train_loss"] ?? .nan }),
        ]
        for column in optional where rows.allSatisfy({ $0[column.key] != nil }) {
            columns.append(.init(name: column.name, unit: column.unit, values: rows.map { $0[column.key] ?? .nan }))
        }
        try AtomicFile.write(DataTable(columns: columns).csv(), to: csv)
        let name = URL(fileURLWithPath: log).lastPathComponent
        func plot(_ key: String, label: String, target: Double?, to path: String) throws {
            guard rows.allSatisfy({ $0[key] != nil }) else { throw ValidationError("\(log): no '\(key)' in the log to plot") }
            var chart = SVGPlot(title: "\(label), validation — \(name)", xLabel: "training time (min)", yLabel: label,
                                series: [.init(label: "validation", x: minutes, y: rows.map { $0[key] ?? .nan })])
            if let target { chart.referenceLines = [target] }
            try AtomicFile.write(chart.render(), to: path)
        }
        if let svg {
            if rows.allSatisfy({ $0["validation_force_mae_meV_per_A"] != nil }) {
                try plot("validation_force_mae_meV_per_A", label: "force MAE (meV/Å)", target: forceTarget, to: svg)
            } else {
                try plot("validation_dipole_mae_eA", label: "dipole MAE (e·Å)", target: nil, to: svg)
            }
        }
        if let energySVG { try plot("validation_energy_mae_meV_per_atom", label: "energy MAE (meV/atom)", target: energyTarget, to: energySVG) }
        print(String(format: "%d epochs of %@ over %.1f min; wrote %@", rows.count, log, minutes.last ?? 0, csv))
    }
}
