import Foundation
import Geometry

/// Positions made continuous across periodic boundaries.
public enum Unwrapping {
    /// Unwraps frame-major positions (`frames × atomCount × 3`, Å): each frame-to-frame
    /// displacement is replaced by its minimum image in that frame's cell, then summed. Exact
    /// as long as no atom moves more than half a cell width between frames. Frames without a
    /// periodic cell are taken as they are.
    public static func unwrap(_ positions: [Double], atomCount: Int, cells: [Cell?]) throws -> [Double] {
        let width = 3 * atomCount
        guard atomCount > 0, positions.count % width == 0 else {
            throw AnalysisError("unwrap: \(positions.count) values do not make whole frames of \(atomCount) atoms")
        }
        let frames = positions.count / width
        guard cells.count == frames || cells.count == 1 || cells.isEmpty else {
            throw AnalysisError("unwrap: \(cells.count) cells for \(frames) frames")
        }
        var out = positions
        guard frames > 1 else { return out }
        for t in 1..<frames {
            let cell = cells.isEmpty ? nil : cells[cells.count == 1 ? 0 : t]
            for i in 0..<atomCount {
                let o = t * width + 3 * i, p = o - width
                var d = Vec3(positions[o] - positions[p], positions[o + 1] - positions[p + 1], positions[o + 2] - positions[p + 2])
                if let c = cell, c.pbc.any { d = c.minimumImage(d) }
                out[o] = out[p] + d.x
                out[o + 1] = out[p + 1] + d.y
                out[o + 2] = out[p + 2] + d.z
            }
        }
        return out
    }

    /// Unwrapped positions with the centre of mass held at its frame-0 place: each frame's
    /// mass-weighted mean displacement is subtracted from every atom (removes a drift of the
    /// whole system, e.g. from a net momentum, before an MSD).
    public static func removingCenterOfMassMotion(_ unwrapped: [Double], atomCount: Int, masses: [Double]) throws -> [Double] {
        let width = 3 * atomCount
        guard atomCount > 0, unwrapped.count % width == 0, masses.count == atomCount else {
            throw AnalysisError("centre-of-mass removal: \(unwrapped.count) values, \(masses.count) masses for \(atomCount) atoms")
        }
        let total = masses.reduce(0, +)
        guard total > 0 else { throw AnalysisError("centre-of-mass removal: masses sum to \(total)") }
        let frames = unwrapped.count / width
        func centre(_ t: Int) -> Vec3 {
            var c = Vec3.zero
            for i in 0..<atomCount {
                let o = t * width + 3 * i
                c += masses[i] * Vec3(unwrapped[o], unwrapped[o + 1], unwrapped[o + 2])
            }
            return c / total
        }
        let origin = centre(0)
        var out = unwrapped
        for t in 0..<frames {
            let shift = centre(t) - origin
            for i in 0..<atomCount {
                let o = t * width + 3 * i
                out[o] -= shift.x
                out[o + 1] -= shift.y
                out[o + 2] -= shift.z
            }
        }
        return out
    }

    /// Velocities by central differences of unwrapped positions, `(r(t+1) − r(t−1)) / 2Δt`:
    /// `frames − 2` frames (Å/fs), the first for frame 1.
    public static func centralDifferenceVelocities(_ unwrapped: [Double], atomCount: Int, frameSpacing dt: Double) -> [Double] {
        let width = 3 * atomCount
        let frames = unwrapped.count / max(1, width)
        guard frames >= 3 else { return [] }
        var v = [Double](repeating: 0, count: (frames - 2) * width)
        for t in 1..<(frames - 1) {
            for c in 0..<width {
                v[(t - 1) * width + c] = (unwrapped[(t + 1) * width + c] - unwrapped[(t - 1) * width + c]) / (2 * dt)
            }
        }
        return v
    }
}

/// Mean-squared displacement and the self-diffusion coefficient.
///
/// `MSD(τ) = ⟨|r(t+τ) − r(t)|²⟩` over atoms and all time origins, computed with the FFT:
/// `MSD(m) = 1/(N−m) Σ_t [r(t+m)² + r(t)²] − 2 C(m)` with `C` the unbiased position
/// autocorrelation, which costs O(N log N) per series instead of O(N²). Positions must be
/// unwrapped (`Unwrapping.unwrap`). `D` comes from a least-squares line through
/// `MSD = 6Dτ + b` on the fit range (Einstein relation in three dimensions).
public enum MeanSquaredDisplacement {
    /// How near a lag (in frames) a fit bound must come to meet it: with single-precision
    /// times the lags sit at 160.0000024 fs, and a fit asked to end at 160 fs dropped that lag
    /// and gave another D than the default range ending at the same lag.
    public static let lagTolerance = 1e-3
    public struct Options: Sendable {
        /// Largest lag (frames).
        public var maxLag: Int
        /// Fit range for D (fs); nil: from 20 % to 80 % of the largest lag.
        public var fitRange: ClosedRange<Double>?
        /// Blocks for the error of D (0 or 1: none).
        public var blocks: Int
        public var threads: Int
        public init(maxLag: Int, fitRange: ClosedRange<Double>? = nil, blocks: Int = 0, threads: Int = 1) {
            self.maxLag = maxLag
            self.fitRange = fitRange
            self.blocks = blocks
            self.threads = threads
        }
    }

    public struct Diffusion: Sendable {
        /// Group name: `total` or an element.
        public var name: String
        /// Å²/fs (1 Å²/fs = 0.1 cm²/s).
        public var coefficient: Double
        public var standardError: Double?
        public var intercept: Double
    }

    public struct Result: Sendable {
        /// Lag times (fs).
        public var lagTimes: [Double]
        /// `msd_total`, then (with more than one element) `msd_<element>` (Å²).
        public var curves: [Curve]
        public var diffusion: [Diffusion]
        public var fitRange: ClosedRange<Double>

        public var table: DataTable {
            var columns = [DataTable.Column(name: "time", unit: "fs", values: lagTimes)]
            for c in curves {
                columns.append(.init(name: c.name, unit: "A2", values: c.values))
                if let e = c.errors { columns.append(.init(name: c.name + "_stderr", unit: "A2", values: e)) }
            }
            return DataTable(columns: columns)
        }
    }

    public static func compute(unwrappedPositions positions: [Double], atomCount: Int, frameSpacing dt: Double,
                               symbols: [String], options: Options) throws -> Result {
        let width = 3 * atomCount
        guard atomCount > 0, positions.count % width == 0 else {
            throw AnalysisError("MSD: \(positions.count) values do not make whole frames of \(atomCount) atoms")
        }
        guard symbols.count == atomCount else { throw AnalysisError("MSD: \(atomCount) atoms need \(atomCount) element symbols; got \(symbols.count)") }
        let frames = positions.count / width
        let spectral = SpectralOptions(maxLag: options.maxLag, blocks: options.blocks, threads: options.threads)
        try spectral.validate(samples: frames, sampleSpacing: dt, what: "MSD")
        if let bad = positions.firstIndex(where: { !$0.isFinite }) {
            throw AnalysisError("MSD: position of atom \((bad % width) / 3) in frame \(bad / width) is not finite")
        }
        var names: [String] = []
        var groupOfAtom: [Int] = []
        for s in symbols {
            if let g = names.firstIndex(of: s) { groupOfAtom.append(g) } else {
                names.append(s)
                groupOfAtom.append(names.count - 1)
            }
        }
        let groups = (0..<width).map { groupOfAtom[$0 / 3] }
        let atomsPerGroup = names.indices.map { g in Double(groupOfAtom.filter { $0 == g }.count) }

        // MSD is unchanged by a constant shift of each series; removing the mean keeps r² and
        // 2C from cancelling catastrophically for atoms far from the origin.
        var centred = positions
        for c in 0..<width {
            var m = 0.0
            for t in 0..<frames { m += positions[t * width + c] }
            m /= Double(frames)
            for t in 0..<frames { centred[t * width + c] -= m }
        }

        func msd(firstRow: Int, length: Int, engine: CorrelationEngine, matrix: UnsafeBufferPointer<Double>) throws -> [[Double]] {
            var power = [[Double]](repeating: [Double](repeating: 0, count: engine.binCount), count: names.count)
            try engine.accumulatePower(matrix: matrix, rowStride: width, firstRow: firstRow, columns: 0..<width,
                                       weights: [Double](repeating: 1, count: width), groups: groups,
                                       into: &power, threads: options.threads)
            let correlation = try power.map { try engine.correlation(fromPower: $0) }
            // Squared norms per group and frame, and their prefix sums.
            var prefix = [[Double]](repeating: [Double](repeating: 0, count: length + 1), count: names.count)
            for t in 0..<length {
                var sq = [Double](repeating: 0, count: names.count)
                for c in 0..<width {
                    let x = matrix[(firstRow + t) * width + c]
                    sq[groups[c]] += x * x
                }
                for g in names.indices { prefix[g][t + 1] = prefix[g][t] + sq[g] }
            }
            var perGroup: [[Double]] = []
            for g in names.indices {
                perGroup.append((0...options.maxLag).map { m in
                    // Zero by definition; the FFT's round-off gave −2e-15, which a log-scale plot cannot show.
                    guard m > 0 else { return 0 }
                    let n = Double(length - m)
                    let s1 = (prefix[g][length] - prefix[g][m]) + prefix[g][length - m]
                    return (s1 / n - 2 * correlation[g][m]) / atomsPerGroup[g]
                })
            }
            let total = (0...options.maxLag).map { m in
                names.indices.reduce(0.0) { $0 + perGroup[$1][m] * atomsPerGroup[$1] } / Double(atomCount)
            }
            return [total] + perGroup
        }

        let curvesWhole: [[Double]]
        var curvesBlocks: [[[Double]]] = []
        (curvesWhole, curvesBlocks) = try centred.withUnsafeBufferPointer { m in
            let engine = try CorrelationEngine(length: frames, maxLag: options.maxLag)
            let whole = try msd(firstRow: 0, length: frames, engine: engine, matrix: m)
            var blocks: [[[Double]]] = []
            if options.blocks > 1 {
                let len = frames / options.blocks
                let be = try CorrelationEngine(length: len, maxLag: options.maxLag)
                for b in 0..<options.blocks { blocks.append(try msd(firstRow: b * len, length: len, engine: be, matrix: m)) }
            }
            return (whole, blocks)
        }

        let lagTimes = (0...options.maxLag).map { Double($0) * dt }
        let tMax = lagTimes[options.maxLag]
        let fitRange = options.fitRange ?? (0.2 * tMax)...(0.8 * tMax)
        let slack = lagTolerance * dt
        let fitIndices = lagTimes.indices.filter { lagTimes[$0] >= fitRange.lowerBound - slack && lagTimes[$0] <= fitRange.upperBound + slack }
        guard fitIndices.count >= 2 else {
            throw AnalysisError("MSD: the fit range \(fitRange.lowerBound)–\(fitRange.upperBound) fs holds fewer than 2 lags (spacing \(dt) fs, max lag \(tMax) fs)")
        }
        func fit(_ y: [Double]) -> (slope: Double, intercept: Double) {
            let xs = fitIndices.map { lagTimes[$0] }, ys = fitIndices.map { y[$0] }
            let n = Double(xs.count)
            let mx = xs.reduce(0, +) / n, my = ys.reduce(0, +) / n
            var sxy = 0.0, sxx = 0.0
            for k in xs.indices {
                sxy += (xs[k] - mx) * (ys[k] - my)
                sxx += (xs[k] - mx) * (xs[k] - mx)
            }
            let slope = sxy / sxx
            return (slope, my - slope * mx)
        }
        // A one-element system's element curve would repeat the total.
        let curveNames = ["total"] + (names.count > 1 ? names : [])
        var curves: [Curve] = []
        var diffusion: [Diffusion] = []
        for (c, name) in curveNames.enumerated() {
            let errors = BlockStatistics.standardError(curvesBlocks.map { $0[c] })
            curves.append(Curve(name: "msd_\(name)", values: curvesWhole[c], errors: errors))
            let line = fit(curvesWhole[c])
            var dError: Double? = nil
            if curvesBlocks.count > 1 {
                let ds = curvesBlocks.map { fit($0[c]).slope / 6 }
                dError = BlockStatistics.standardError(ds.map { [$0] })?.first
            }
            diffusion.append(Diffusion(name: name, coefficient: line.slope / 6, standardError: dError, intercept: line.intercept))
        }
        return Result(lagTimes: lagTimes, curves: curves, diffusion: diffusion, fitRange: fitRange)
    }
}
