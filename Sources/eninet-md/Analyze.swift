import Analysis
import ArgumentParser
import Foundation

/// `eninet-md analyze ...`: spectra, structure and transport from a trajectory.
struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Analyse a trajectory: vdos, ir, rdf, msd; a thermodynamic log: thermo; a training log: training.",
        discussion: """
        Reads an AMBER NetCDF trajectory (from this engine or any AMBER-convention program) or a \
        multi-frame extended XYZ / XYZ / PDB file, and writes a CSV table (first column the \
        abscissa, every header cell `name_unit`) and, with --svg, a plot. AMBER NetCDF stores no \
        element symbols: give --topology FILE or --elements for analyses that need them.
        """,
        subcommands: [AnalyzeVDOS.self, AnalyzeIR.self, AnalyzeRDF.self, AnalyzeMSD.self, AnalyzeThermo.self, AnalyzeTraining.self])
}

/// The elements of a trajectory's atoms, which AMBER NetCDF does not store.
struct AtomElementOptions: ParsableArguments {
    @Option(name: .customLong("topology"), help: ArgumentHelp("Structure file (.extxyz/.xyz/.pdb) whose atoms, in order, name the elements of the trajectory's atoms.", valueName: "file"))
    var topology: String?

    @Option(name: .customLong("elements"), help: ArgumentHelp("Element of every atom, comma-separated; `Sym*n` repeats (e.g. C,C,O,H*6 or Cu*108).", valueName: "list"))
    var elements: String?
}

/// Options every analysis shares: the trajectory, its atoms and the output files.
struct TrajectoryInputOptions: ParsableArguments {
    @Argument(help: "Trajectory: AMBER NetCDF (.nc) or multi-frame .extxyz/.xyz/.pdb.")
    var trajectory: String

    @OptionGroup var atomElements: AtomElementOptions

    @Option(name: .customLong("frame-dt-fs"), parsing: .unconditional, help: ArgumentHelp("Time between stored frames (fs); default: from the file's time variable.", valueName: "fs"))
    var frameSpacing: Double?

    @Option(name: .customLong("first-frame"), parsing: .unconditional, help: ArgumentHelp("First frame to use (0-based).", valueName: "n"))
    var firstFrame: Int = 0

    @Option(name: .customLong("last-frame"), parsing: .unconditional, help: ArgumentHelp("Frame after the last one to use (default: all).", valueName: "n"))
    var lastFrame: Int?

    @Option(name: .customLong("stride"), parsing: .unconditional, help: ArgumentHelp("Use every n-th frame.", valueName: "n"))
    var stride: Int = 1

    @Option(name: .customLong("csv"), help: ArgumentHelp("Output table (CSV).", valueName: "out.csv"))
    var csv: String

    @Option(name: .customLong("svg"), help: ArgumentHelp("Output plot (SVG).", valueName: "out.svg"))
    var svg: String?

    @Option(name: .customLong("overlay"), help: ArgumentHelp("With --svg: also draw the second column of this CSV (e.g. the same analysis of a reference trajectory) against its first, labelled with its file name (repeatable).", valueName: "other.csv"))
    var overlays: [String] = []

    func validate() throws {
        guard stride >= 1 else { throw ValidationError("--stride must be at least 1") }
        guard firstFrame >= 0 else { throw ValidationError("--first-frame must be at least 0") }
        if let l = lastFrame, l <= firstFrame { throw ValidationError("--last-frame must be after --first-frame") }
        try AtomicFile.checkWritable(csv)
        if let svg { try AtomicFile.checkWritable(svg) }
        try AtomicFile.checkDistinct(outputs: [("--csv", csv)] + (svg.map { [("--svg", $0)] } ?? []),
                                     inputs: [("trajectory", trajectory)] + overlays.map { ("--overlay file", $0) }
                                         + (atomElements.topology.map { [("--topology file", $0)] } ?? []))
    }

    /// The frames --first-frame and --last-frame select, every `--stride`-th of them unless
    /// `everyFrame`.
    func load(positions: Bool = false, velocities: Bool = false, dipoles: Bool = false, cells: Bool = false,
              everyFrame: Bool = false) throws -> TrajectoryData {
        let frames: Range<Int>? = (firstFrame == 0 && lastFrame == nil) ? nil : firstFrame..<(lastFrame ?? Int.max)
        return try TrajectoryFile.load(path: trajectory, request: LoadRequest(positions: positions, velocities: velocities,
                                                                             dipoles: dipoles, cells: cells, frames: frames,
                                                                             stride: everyFrame ? 1 : stride))
    }

    /// Element symbols from --elements, --topology or the file.
    func symbols(for data: TrajectoryData) throws -> [String] {
        let listed = try atomElements.elements.map { try parseElementList($0, atomCount: data.atomCount) }
        let fromTopology = try atomElements.topology.map { try TrajectoryFile.topologySymbols(path: $0) }
        return try data.resolveSymbols(elements: listed, topology: fromTopology, topologyPath: atomElements.topology)
    }

    /// Frame spacing, times the stride when it comes from --frame-dt-fs (stored times already
    /// include it).
    func spacing(for data: TrajectoryData) throws -> Double {
        try data.frameSpacing(override: frameSpacing.map { $0 * Double(stride) })
    }

    func write(_ table: DataTable, plot: SVGPlot) throws {
        var plot = plot
        if !overlays.isEmpty {
            guard svg != nil else { throw ValidationError("--overlay needs --svg") }
            plot.series = plot.series.map { series in
                var s = series
                s.label = URL(fileURLWithPath: trajectory).lastPathComponent + (series.label.isEmpty ? "" : " " + series.label)
                return s
            }
            plot.series += try overlays.map(Self.overlaySeries)
        }
        // A result that overflowed (a frame spacing of 1e300 fs, a correction at 1e-300 K) is
        // no spectrum; writing it with "inf" cells and exiting 0 would pass it on.
        for column in table.columns {
            if let row = column.values.firstIndex(where: { !$0.isFinite }) {
                throw InputError("\(csv): not written: column '\(column.header)' is \(column.values[row]) at row \(row + 1) (the result overflowed; check --frame-dt-fs, --temperature-K and the trajectory's numbers)")
            }
        }
        var files = [(text: table.csv(), path: csv)]
        if let svg { files.append((plot.render(), svg)) }
        try AtomicFile.writeAll(files)
    }

    /// The first two columns of a CSV with a header line, as a plot series.
    static func overlaySeries(path: String) throws -> SVGPlot.Series {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ValidationError("\(path): cannot read (\(error.localizedDescription))")
        }
        var x: [Double] = [], y: [Double] = []
        for (index, line) in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated().dropFirst() {
            let fields = line.split(separator: ",")
            guard fields.count >= 2, let a = Double(fields[0].trimmingCharacters(in: .whitespaces)),
                  let b = Double(fields[1].trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("\(path):\(index + 1): expected two numbers in the first two columns")
            }
            // Drawn as a gap, a nan or inf read as a missing stretch of the other spectrum.
            guard a.isFinite, b.isFinite else {
                throw ValidationError("\(path):\(index + 1): the first two columns must be finite numbers; got \(fields[0]), \(fields[1])")
            }
            x.append(a); y.append(b)
        }
        guard !x.isEmpty else { throw ValidationError("\(path): no rows after the header") }
        return SVGPlot.Series(label: URL(fileURLWithPath: path).lastPathComponent, x: x, y: y)
    }
}

/// Options of the correlation-based spectra.
struct SpectrumOptions: ParsableArguments {
    @Option(name: .customLong("max-lag-fs"), parsing: .unconditional, help: ArgumentHelp("Correlation length T_corr (fs); resolution 33356/T_corr cm-1. Default: the smaller of 2000 fs and half the trajectory.", valueName: "fs"))
    var maxLag: Double?

    @Option(name: .customLong("window"), help: "Taper of the correlation: hann (cos²), gaussian (σ = T_corr/3), blackman, none.")
    var window: String = "hann"

    @Option(name: .customLong("padding"), parsing: .unconditional, help: "Zero-padding factor of the transform (interpolates the frequency grid).")
    var padding: Int = 4

    @Option(name: .customLong("blocks"), parsing: .unconditional, help: ArgumentHelp("Blocks for standard errors (0: none). Default: 4 when each block is at least twice T_corr, else none.", valueName: "n"))
    var blocks: Int?

    @Option(name: .customLong("max-freq-cm1"), parsing: .unconditional, help: ArgumentHelp("Highest wavenumber written (cm-1); an error above the Nyquist frequency 16678/Δt[fs]. Default: the smaller of 4500 cm-1 and Nyquist.", valueName: "cm-1"))
    var maxFrequency: Double?

    @Flag(name: .customLong("subtract-mean"), help: "Subtract each series' mean before correlating.")
    var subtractMean = false

    @Option(name: .customLong("threads"), parsing: .unconditional, help: "Worker threads over atoms.")
    var threads: Int = 1

    func validate() throws { try ThreadOptions.check(threads) }

    func spectralOptions(frames: Int, frameSpacing dt: Double) throws -> SpectralOptions {
        guard let w = Window(rawValue: window.lowercased()) else {
            throw ValidationError("--window must be one of hann, gaussian, blackman, none; got '\(window)'")
        }
        let lag: Int
        if let t = maxLag {
            lag = try lagFrames(maxLagFs: t, frameSpacing: dt)
        } else {
            lag = SpectralOptions.defaultMaxLag(frames: frames, frameSpacing: dt)
        }
        try checkBlocks(blocks)
        let b = blocks ?? SpectralOptions.defaultBlocks(frames: frames, maxLag: lag)
        if let maxFrequency, !(maxFrequency > 0 && maxFrequency.isFinite) {
            throw ValidationError("--max-freq-cm1 must be a positive, finite wavenumber; got \(maxFrequency)")
        }
        let nyquist = SpectralUnits.nyquist(frameSpacing: dt)
        return SpectralOptions(maxLag: lag, window: w, zeroPadding: padding, blocks: b, subtractMean: subtractMean,
                               threads: threads, maxFrequency: maxFrequency ?? min(4500, nyquist))
    }
}

extension Spectrum {
    func describe() -> String {
        String(format: "grid %.3f cm-1, resolution %.2f cm-1, Nyquist %.1f cm-1", spacing, resolution, nyquist)
    }
}

struct AnalyzeVDOS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vdos",
        abstract: "Vibrational density of states from velocities (states per cm-1, total and per element).",
        discussion: """
        g(ν) = (2/k_B T) Σ_i m_i ∫⟨v_i(0)·v_i(t)⟩ e^(-2πiνt) dt, integrating to the degrees of \
        freedom (3N, or --dof). Without --temperature-K, T is the trajectory's kinetic \
        temperature, which makes the integral exactly the degrees of freedom. A trajectory \
        without velocities needs --from-positions (central differences of unwrapped positions).
        """)

    @OptionGroup var input: TrajectoryInputOptions
    @OptionGroup var spectrum: SpectrumOptions

    @Flag(name: .customLong("mass-weighted"), inversion: .prefixedNo, help: "Weight each atom's velocity autocorrelation by its mass (the VDOS proper); --no-mass-weighted gives the plain VACF spectrum, also normalised to the degrees of freedom.")
    var massWeighted = true

    @Option(name: .customLong("temperature-K"), parsing: .unconditional, help: ArgumentHelp("Temperature in the prefactor 2/k_B T (K). Default: the kinetic temperature.", valueName: "K"))
    var temperature: Double?

    @Option(name: .customLong("dof"), parsing: .unconditional, help: "Degrees of freedom for the normalisation (default 3N; 3N-3 when the centre of mass is fixed).")
    var degreesOfFreedom: Int?

    @Flag(name: .customLong("from-positions"), help: "Use central differences of positions when the trajectory has no velocities (or instead of them).")
    var fromPositions = false

    func run() throws {
        let data = try input.load(positions: fromPositions, velocities: !fromPositions, cells: fromPositions)
        let symbols = try input.symbols(for: data)
        let masses = try data.masses(symbols: symbols)
        let dt = try input.spacing(for: data)
        let (velocities, frames) = try data.velocitySeries(fromPositions: fromPositions, frameSpacing: dt)
        let spectral = try spectrum.spectralOptions(frames: frames, frameSpacing: dt)
        let result = try VibrationalDensityOfStates.compute(
            velocities: velocities, atomCount: data.atomCount, frameSpacing: dt, masses: masses, symbols: symbols,
            options: .init(spectral: spectral, massWeighted: massWeighted, temperature: temperature,
                           degreesOfFreedom: degreesOfFreedom))
        let s = result.spectrum
        try input.write(s.table, plot: SVGPlot(table: s.table, title: "Vibrational density of states — \(URL(fileURLWithPath: input.trajectory).lastPathComponent)",
                                               xLabel: "wavenumber (cm⁻¹)", yLabel: "g(ν̃) (states per cm⁻¹)"))
        print("VDOS of \(data.atomCount) atoms, \(frames) frames \(dt) fs apart, T_corr \(Double(spectral.maxLag) * dt) fs, \(spectral.window) window, \(spectral.blocks > 1 ? "\(spectral.blocks) blocks" : "no blocks")")
        print(String(format: "kinetic temperature %.2f K over %d dof; integral to %.0f cm-1: %.4f", result.kineticTemperature,
                     result.degreesOfFreedom, s.frequencies.last ?? 0, s.integral(of: "vdos_total") ?? 0))
        print(s.describe())
        print("wrote \(input.csv)" + (input.svg.map { " and \($0)" } ?? ""))
    }
}

struct AnalyzeIR: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ir",
        abstract: "Infrared line shape from the trajectory's dipole series.",
        discussion: """
        I(ν̃) = c ∫⟨Ṁ(0)·Ṁ(t)⟩ e^(-2πiνt) dt with Ṁ by central differences of the stored \
        `dipole` variable ((e·Å/fs)² per cm-1), times a quantum correction factor. The dipole \
        series comes from a dipole model evaluated during MD or added afterwards with \
        `eninet-md dipoles`.
        """)

    @OptionGroup var input: TrajectoryInputOptions
    @OptionGroup var spectrum: SpectrumOptions

    @Option(name: .customLong("correction"), help: "Quantum correction: none (classical), standard 2/(1+e^(-βħω)), harmonic βħω/(1-e^(-βħω)), schofield e^(βħω/2).")
    var correction: String = "none"

    @Option(name: .customLong("temperature-K"), parsing: .unconditional, help: ArgumentHelp("Temperature of the quantum correction (K); required unless --correction none.", valueName: "K"))
    var temperature: Double?

    func run() throws {
        guard let q = InfraredSpectrum.Correction(rawValue: correction.lowercased()) else {
            throw ValidationError("--correction must be one of none, standard, harmonic, schofield; got '\(correction)'")
        }
        let data = try input.load(dipoles: true)
        let dipoles = try data.dipoleSeries()
        let dt = try input.spacing(for: data)
        let spectral = try spectrum.spectralOptions(frames: data.frameCount - 2, frameSpacing: dt)
        let s = try InfraredSpectrum.compute(dipoles: dipoles, frameSpacing: dt,
                                             options: .init(spectral: spectral, correction: q, temperature: temperature))
        try input.write(s.table, plot: SVGPlot(table: s.table, title: "IR spectrum — \(URL(fileURLWithPath: input.trajectory).lastPathComponent)",
                                               xLabel: "wavenumber (cm⁻¹)", yLabel: "intensity ((e·Å/fs)² per cm⁻¹)"))
        print("IR from \(data.frameCount) dipoles \(dt) fs apart, T_corr \(Double(spectral.maxLag) * dt) fs, correction \(q.rawValue)")
        print(s.describe())
        print("wrote \(input.csv)" + (input.svg.map { " and \($0)" } ?? ""))
    }
}

struct AnalyzeRDF: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rdf",
        abstract: "Radial distribution functions per element pair, with running coordination numbers.",
        discussion: """
        g_ab(r) = ⟨V n_ab(r)⟩ / (N_a (N_b − δ_ab) 4πr²dr), counting every periodic image (any \
        cell shape). Columns: r_A, g_total (several elements), then per pair g_a-b and n_a-b \
        (mean number of b within r of an a). Non-periodic frames have no volume: give --volume \
        for g, otherwise the table holds the local density rho_a-b (Å⁻³).
        """)

    @OptionGroup var input: TrajectoryInputOptions

    @Option(name: .customLong("r-max"), parsing: .unconditional, help: ArgumentHelp("Largest distance (Å). Default: half the smallest cell width, or 10 Å without a cell.", valueName: "A"))
    var rMax: Double?

    @Option(name: .customLong("bin-width"), parsing: .unconditional, help: ArgumentHelp("Histogram bin (Å).", valueName: "A"))
    var binWidth: Double = 0.02

    @Option(name: .customLong("volume"), parsing: .unconditional, help: ArgumentHelp("Volume (Å³) for normalising g of a non-periodic system.", valueName: "A3"))
    var volume: Double?

    func run() throws {
        let data = try input.load(positions: true, cells: true)
        let symbols = try input.symbols(for: data)
        // A cell periodic along no axis (a Lattice with pbc="F F F") is no cell to the RDF: it was
        // still taken for the default r_max and for refusing --volume, so g could not be had.
        let periodicCells = data.cells.compactMap { $0 }.filter { $0.pbc.any }
        let defaultRMax = periodicCells.map { 0.5 * $0.perpendicularWidths.min() }.min() ?? 10
        // A periodic frame is normalised by its cell's volume; --volume was read past silently.
        if let volume, !periodicCells.isEmpty {
            throw ValidationError("--volume \(volume) Å³ is for trajectories without a periodic cell; \(input.trajectory) has one, whose volume normalises g")
        }
        let rdf = try RadialDistribution(symbols: symbols, rMax: rMax ?? defaultRMax, binWidth: binWidth, volume: volume)
        for f in 0..<data.frameCount {
            try rdf.add(positions: try data.frame(f), cell: data.cells.isEmpty ? nil : data.cells[f], frame: f)
        }
        let table = rdf.table
        var plotted = table
        plotted.columns = table.columns.filter { $0.name == "r" || $0.name.hasPrefix("g_") || $0.name.hasPrefix("rho_") }
        var plot = SVGPlot(table: plotted, title: "Radial distribution — \(URL(fileURLWithPath: input.trajectory).lastPathComponent)",
                           xLabel: "r (Å)", yLabel: rdf.hasVolume ? "g(r)" : "ρ(r) (Å⁻³)")
        if rdf.hasVolume { plot.referenceLines = [1] }
        try input.write(table, plot: plot)
        print("RDF of \(data.atomCount) atoms over \(data.frameCount) frames, r ≤ \(rdf.rMax) Å in \(rdf.binCount) bins")
        let r = rdf.radii
        for (p, (a, b)) in rdf.pairs.enumerated() {
            guard let g = rdf.g(pair: p), let k = g.indices.max(by: { g[$0] < g[$1] }) else { continue }
            print("\(rdf.elements[a])-\(rdf.elements[b]): " + String(format: "highest peak g = %.3f at r = %.3f Å", g[k], r[k]))
        }
        print("wrote \(input.csv)" + (input.svg.map { " and \($0)" } ?? ""))
    }
}

struct AnalyzeMSD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "msd",
        abstract: "Mean-squared displacement (unwrapped) and diffusion coefficients.",
        discussion: """
        MSD(τ) = ⟨|r(t+τ) − r(t)|²⟩ over atoms and time origins (Å², per element and total), \
        from positions unwrapped across periodic boundaries (an atom must not move more than \
        half a cell between frames). D is the slope of a least-squares line through MSD = 6Dτ + b \
        on the fit range, with its standard error from blocks.
        """)

    @OptionGroup var input: TrajectoryInputOptions

    @Option(name: .customLong("max-lag-fs"), parsing: .unconditional, help: ArgumentHelp("Largest lag (fs). Default: a quarter of the trajectory.", valueName: "fs"))
    var maxLag: Double?

    @Option(name: .customLong("fit-start-fs"), parsing: .unconditional, help: ArgumentHelp("Start of the linear fit (fs). Default: 20 % of the largest lag.", valueName: "fs"))
    var fitStart: Double?

    @Option(name: .customLong("fit-end-fs"), parsing: .unconditional, help: ArgumentHelp("End of the linear fit (fs). Default: 80 % of the largest lag.", valueName: "fs"))
    var fitEnd: Double?

    @Option(name: .customLong("blocks"), parsing: .unconditional, help: "Blocks for standard errors (0: none). Default: 4 when each block is longer than the largest lag.")
    var blocks: Int?

    @Option(name: .customLong("threads"), parsing: .unconditional, help: "Worker threads over atoms.")
    var threads: Int = 1

    @Flag(name: .customLong("remove-com-drift"), help: "Subtract the motion of the centre of mass (mass-weighted) from every atom first.")
    var removeDrift = false

    func validate() throws { try ThreadOptions.check(threads) }

    func run() throws {
        // Unwrapped through every frame, then thinned: between frames --stride apart an atom can
        // move more than half a cell, and the nearest image was then the wrong one (a random walk
        // at --stride 50: D 9 % high, outside its own error bar).
        let everyFrame = try input.load(positions: true, cells: true, everyFrame: true)
        let data = try everyFrame.selecting(frames: 0..<everyFrame.frameCount, stride: input.stride)
        let symbols = try input.symbols(for: data)
        let dt = try input.spacing(for: data)
        var unwrapped = try everyFrame.unwrappedPositions(keepingEvery: input.stride)
        if removeDrift {
            unwrapped = try Unwrapping.removingCenterOfMassMotion(unwrapped, atomCount: data.atomCount,
                                                                  masses: try data.masses(symbols: symbols))
        }
        let lag: Int
        if let t = maxLag {
            lag = try lagFrames(maxLagFs: t, frameSpacing: dt)
            guard lag < data.frameCount else {
                throw ValidationError("--max-lag-fs \(t) fs is \(lag) frames of \(dt) fs, but the trajectory has \(data.frameCount) frames")
            }
        } else {
            lag = max(1, (data.frameCount - 1) / 4)
        }
        // A straight line through fewer than two lags is no fit.
        guard lag >= 2 else {
            throw ValidationError(maxLag != nil
                ? "--max-lag-fs gives a largest lag of \(lag) frame of \(dt) fs; the fit needs lags of at least 2 frames"
                : "the trajectory's \(data.frameCount) frames give a largest lag of 1 frame (a quarter of them); the fit needs at least 2 (give --max-lag-fs, or a longer trajectory)")
        }
        try checkBlocks(blocks)
        let b = blocks ?? (data.frameCount / 4 > lag ? 4 : 0)
        var fit: ClosedRange<Double>? = nil
        if fitStart != nil || fitEnd != nil {
            let t = Double(lag) * dt
            for (name, value) in [("--fit-start-fs", fitStart), ("--fit-end-fs", fitEnd)] {
                guard let value else { continue }
                guard value.isFinite, value >= 0 else { throw ValidationError("\(name) must be a finite lag time of 0 fs or more; got \(value)") }
                guard value <= t + MeanSquaredDisplacement.lagTolerance * dt else {
                    throw ValidationError("\(name) \(value) fs is beyond the largest lag, \(t) fs (--max-lag-fs)")
                }
            }
            let lo = fitStart ?? 0.2 * t, hi = fitEnd ?? 0.8 * t
            guard lo < hi else {
                switch (fitStart, fitEnd) {
                case (nil, _): throw ValidationError("--fit-end-fs \(hi) fs is not above the fit's default start, \(lo) fs (20 % of the largest lag); give --fit-start-fs too")
                case (_, nil): throw ValidationError("--fit-start-fs \(lo) fs is not below the fit's default end, \(hi) fs (80 % of the largest lag); give --fit-end-fs too")
                default: throw ValidationError("--fit-start-fs \(lo) fs must be below --fit-end-fs \(hi) fs")
                }
            }
            fit = lo...hi
        }
        let result = try MeanSquaredDisplacement.compute(unwrappedPositions: unwrapped, atomCount: data.atomCount, frameSpacing: dt,
                                                         symbols: symbols, options: .init(maxLag: lag, fitRange: fit, blocks: b,
                                                                                          threads: threads))
        let table = result.table
        try input.write(table, plot: SVGPlot(table: table, title: "Mean-squared displacement — \(URL(fileURLWithPath: input.trajectory).lastPathComponent)",
                                             xLabel: "lag time (fs)", yLabel: "MSD (Å²)"))
        print("MSD of \(data.atomCount) atoms, \(data.frameCount) frames \(dt) fs apart, fit " + String(format: "%.6g–%.6g fs", result.fitRange.lowerBound, result.fitRange.upperBound))
        for d in result.diffusion {
            // 1 Å²/fs = 0.1 cm²/s = 1e4 × 1e-5 cm²/s.
            let err = d.standardError.map { String(format: " ± %.4g", $0 * 1e4) } ?? ""
            print("D_\(d.name) = " + String(format: "%.5g Å²/fs = %.4g", d.coefficient, d.coefficient * 1e4) + err + " ×10⁻⁵ cm²/s")
        }
        print("wrote \(input.csv)" + (input.svg.map { " and \($0)" } ?? ""))
    }
}

/// `--blocks` of the correlation analyses: a negative count ran without error bars, unnoticed.
private func checkBlocks(_ blocks: Int?) throws {
    if let blocks, blocks < 0 { throw ValidationError("--blocks must be 0 (no error bars) or at least 2; got \(blocks)") }
}

/// `--max-lag-fs` in frames. Checked in floating point first: 10³⁰⁰ fs trapped converting to `Int`.
private func lagFrames(maxLagFs t: Double, frameSpacing dt: Double) throws -> Int {
    guard t > 0, t.isFinite else { throw ValidationError("--max-lag-fs must be positive and finite; got \(t)") }
    let frames = (t / dt).rounded()
    guard frames < 1e9 else { throw ValidationError("--max-lag-fs \(t) fs is \(frames) frames of \(dt) fs, more than any trajectory holds") }
    guard frames >= 1 else { throw ValidationError("--max-lag-fs \(t) fs is less than one frame (frames are \(dt) fs apart)") }
    return Int(frames)
}
