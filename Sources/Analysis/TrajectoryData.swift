import Foundation
import Geometry
import Trajectory

/// What the analyses need from a trajectory, as flat frame-major arrays in internal units
/// (Å, Å/fs, e·Å, fs), together with what is missing.
///
/// The analyses themselves take plain arrays; this type is the one place that knows which
/// file variables they come from and says, when something is absent, what to do about it.
public struct TrajectoryData: Sendable {
    public var path: String
    public var atomCount: Int
    public var frameCount: Int
    /// Time of each frame (fs), when the file stores it.
    public var times: [Double]?
    /// `frames × atoms × 3` (Å).
    public var positions: [Double]?
    /// `frames × atoms × 3` (Å/fs).
    public var velocities: [Double]?
    /// The cell of each frame; empty when the system is not periodic.
    public var cells: [Cell?]
    /// `frames × 3` (e·Å).
    public var dipoles: [Double]?
    /// Element symbols from the file, when it has them (NetCDF trajectories do not).
    public var symbols: [String]?
    /// Masses from the file (amu), when it has them.
    public var masses: [Double]?

    public init(path: String, atomCount: Int, frameCount: Int, times: [Double]? = nil, positions: [Double]? = nil,
                velocities: [Double]? = nil, cells: [Cell?] = [], dipoles: [Double]? = nil, symbols: [String]? = nil,
                masses: [Double]? = nil) {
        self.path = path
        self.atomCount = atomCount
        self.frameCount = frameCount
        self.times = times
        self.positions = positions
        self.velocities = velocities
        self.cells = cells
        self.dipoles = dipoles
        self.symbols = symbols
        self.masses = masses
    }

    /// Frames from a structure file (extended XYZ, XYZ, PDB): positions, velocities when every
    /// frame has them, cells, a `dipole` info entry as the dipole series, `time_fs` or `time`
    /// (fs) as the times.
    public init(structures: [Structure], path: String) throws {
        guard let first = structures.first else { throw AnalysisError("\(path): no frames") }
        let n = first.count
        var positions: [Double] = []
        positions.reserveCapacity(structures.count * n * 3)
        var velocities: [Double]? = []
        var dipoles: [Double]? = []
        var times: [Double]? = []
        var cells: [Cell?] = []
        for (f, s) in structures.enumerated() {
            guard s.count == n else { throw AnalysisError("\(path): frame \(f) has \(s.count) atoms; frame 0 has \(n)") }
            guard s.symbols == first.symbols else { throw AnalysisError("\(path): frame \(f) lists different elements from frame 0") }
            for r in s.positions { positions += [r.x, r.y, r.z] }
            if let v = s.velocities, velocities != nil { for x in v { velocities? += [x.x, x.y, x.z] } } else { velocities = nil }
            if let d = s.info["dipole"], d.count == 3, dipoles != nil { dipoles? += d } else { dipoles = nil }
            if let t = s.info["time_fs"] ?? s.info["time"], t.count == 1, times != nil { times?.append(t[0]) } else { times = nil }
            cells.append(s.cell)
        }
        if cells.allSatisfy({ $0 == nil }) { cells = [] }
        self.init(path: path, atomCount: n, frameCount: structures.count, times: times, positions: positions,
                  velocities: velocities, cells: cells, dipoles: dipoles, symbols: first.symbols, masses: first.masses)
    }

    /// The shortest frame spacing accepted (fs). Far below any time step; a spacing of
    /// 10⁻²⁰ fs made lags of 10²³ frames, past `Int`, and 5·10⁻³²⁴ fs gave NaN diffusion coefficients.
    public static let shortestFrameSpacing = 1e-6

    /// The spacing of the frames (fs): `override` if given, else from the stored times, which
    /// must be evenly spaced (to 1 % of the spacing: times are often single precision).
    public func frameSpacing(override: Double? = nil) throws -> Double {
        if let dt = override {
            guard dt >= Self.shortestFrameSpacing, dt.isFinite else {
                throw AnalysisError("--frame-dt-fs must be at least \(Self.shortestFrameSpacing) fs and finite; got \(dt)")
            }
            return dt
        }
        guard let t = times else {
            throw AnalysisError("\(path) stores no frame times; give the time between frames with --frame-dt-fs")
        }
        guard t.count >= 2 else {
            throw AnalysisError("\(path): only \(t.count) frame selected; a spacing needs two (or give --frame-dt-fs)")
        }
        // A NaN fails every comparison, so the spacing check below would pass it.
        if let k = t.firstIndex(where: { !$0.isFinite }) {
            throw AnalysisError("\(path): frame \(k) has time \(t[k]) fs; give --frame-dt-fs to set the spacing")
        }
        let dt = (t[t.count - 1] - t[0]) / Double(t.count - 1)
        guard dt > 0 else {
            throw AnalysisError("\(path): frame times do not increase (first \(t[0]) fs, last \(t[t.count - 1]) fs); give --frame-dt-fs")
        }
        guard dt >= Self.shortestFrameSpacing, dt.isFinite else {
            throw AnalysisError("\(path): frames \(dt) fs apart (from the time variable); give --frame-dt-fs")
        }
        // The typical (median) step finds the odd one out; the mean over the whole run is the
        // more precise spacing when all agree.
        let steps = (1..<t.count).map { t[$0] - t[$0 - 1] }
        let typical = steps.sorted()[steps.count / 2]
        // AMBER stores time in single precision: at 200 ps a 1 fs step is known only to about
        // 2 % (each time is rounded to 2⁻²⁴ of itself), which is not an uneven spacing. Times
        // that are all single-precision numbers get that allowance; the spacing itself comes
        // from the first and last times, and is refused when their rounding leaves it unsure
        // by more than 0.1 % (2 fs frames 1 µs into a run read as 1.875 fs).
        let latest = max(abs(t[0]), abs(t[t.count - 1]))
        // Stored in ps (NetCDF) or fs (extended XYZ), read here in fs.
        let singlePrecision = t.allSatisfy { Double(Float($0)) == $0 || Double(Float($0 / 1000)) == $0 / 1000 }
        let rounding = singlePrecision ? latest * 0x1p-24 : 0
        if 4 * rounding > 1e-3 * (t[t.count - 1] - t[0]) {
            throw AnalysisError(String(format: "%@: its times are single-precision numbers near %.6g fs, stored to ±%.3g fs, too coarse for frames %.4g fs apart; give --frame-dt-fs", path, latest, rounding, dt))
        }
        let tolerance = 0.01 * typical + 2 * rounding
        for k in 1..<t.count where abs(steps[k - 1] - typical) > tolerance {
            throw AnalysisError("\(path): frames are not evenly spaced: frame \(k) is \(steps[k - 1]) fs after frame \(k - 1), the usual spacing is \(typical) fs (give --frame-dt-fs to set it)")
        }
        return dt
    }

    /// Element symbols: `--elements` if given, else those of `--topology`, else the file's own.
    public func resolveSymbols(elements: [String]?, topology: [String]?, topologyPath: String? = nil) throws -> [String] {
        if let e = elements {
            guard e.count == atomCount else {
                throw AnalysisError("--elements lists \(e.count) atoms; \(path) has \(atomCount)")
            }
            return e
        }
        if let t = topology {
            guard t.count == atomCount else {
                throw AnalysisError("topology \(topologyPath ?? "") has \(t.count) atoms; \(path) has \(atomCount)")
            }
            return t
        }
        if let s = symbols { return s }
        throw AnalysisError("\(path) stores no element symbols (AMBER NetCDF has none); give --topology FILE (a structure file with the same atoms, e.g. .extxyz/.xyz/.pdb) or --elements C,C,O,H,...")
    }

    /// Standard masses of the elements (or the file's own masses).
    public func masses(symbols: [String]) throws -> [Double] {
        if let m = masses, m.count == atomCount { return m }
        return try symbols.enumerated().map { i, s in
            guard let z = Elements.atomicNumber(of: s), let m = Elements.mass(of: z) else {
                throw AnalysisError("atom \(i): unknown element symbol '\(s)'")
            }
            return m
        }
    }

    /// Velocities for a VDOS: the stored ones, or with `fromPositions` central differences of
    /// unwrapped positions (two frames fewer). Returns the frame-major values and frame count.
    public func velocitySeries(fromPositions: Bool, frameSpacing dt: Double) throws -> (values: [Double], frames: Int) {
        if !fromPositions {
            guard let v = velocities else {
                throw AnalysisError("\(path) has no velocities, which a VDOS needs; pass --from-positions to use central differences of the positions instead (exact only if frames are close together: the frames here are \(String(format: "%g", dt)) fs apart)")
            }
            return (v, frameCount)
        }
        let unwrapped = try unwrappedPositions()
        guard frameCount >= 3 else { throw AnalysisError("\(path): finite differences need at least 3 frames; it has \(frameCount)") }
        return (Unwrapping.centralDifferenceVelocities(unwrapped, atomCount: atomCount, frameSpacing: dt), frameCount - 2)
    }

    /// The dipole series for an IR spectrum.
    public func dipoleSeries() throws -> [Double] {
        guard let d = dipoles else {
            throw AnalysisError("\(path) has no dipole series, which an IR spectrum needs; add one with `eninet-md dipoles --model MODEL \(path)` or store it during MD with the deck's dipole option")
        }
        return d
    }

    /// Positions unwrapped across periodic boundaries, from frame to frame, of frames 0, `step`,
    /// 2 `step`, ... (unwrapped before they are thinned).
    public func unwrappedPositions(keepingEvery step: Int = 1) throws -> [Double] {
        guard let p = positions else { throw AnalysisError("\(path) has no coordinates") }
        let all = cells.isEmpty ? p : try Unwrapping.unwrap(p, atomCount: atomCount, cells: cells)
        guard step > 1 else { return all }
        let w = 3 * atomCount
        return Swift.stride(from: 0, to: frameCount, by: step).flatMap { all[($0 * w)..<(($0 + 1) * w)] }
    }

    /// Positions of frame `f` as vectors.
    public func frame(_ f: Int) throws -> [Vec3] {
        guard let p = positions else { throw AnalysisError("\(path) has no coordinates") }
        let o = f * atomCount * 3
        return (0..<atomCount).map { Vec3(p[o + 3 * $0], p[o + 3 * $0 + 1], p[o + 3 * $0 + 2]) }
    }

    /// Only frames `range` (with a stride), for subsetting after loading.
    public func selecting(frames range: Range<Int>, stride step: Int = 1) throws -> TrajectoryData {
        guard step >= 1 else { throw AnalysisError("--stride must be at least 1; got \(step)") }
        guard range.lowerBound >= 0, range.upperBound <= frameCount, !range.isEmpty else {
            throw AnalysisError("\(path) has \(frameCount) frames; the range \(range.lowerBound)..<\(range.upperBound) selects none or lies outside")
        }
        let picked = Array(Swift.stride(from: range.lowerBound, to: range.upperBound, by: step))
        let w = atomCount * 3
        func take(_ a: [Double]?, _ width: Int) -> [Double]? {
            a.map { a in picked.flatMap { a[($0 * width)..<(($0 + 1) * width)] } }
        }
        var out = self
        out.frameCount = picked.count
        out.times = times.map { t in picked.map { t[$0] } }
        out.positions = take(positions, w)
        out.velocities = take(velocities, w)
        out.dipoles = take(dipoles, 3)
        out.cells = cells.isEmpty ? [] : picked.map { cells[$0] }
        return out
    }
}

/// Parses `--elements`: comma-separated symbols, each optionally repeated as `Sym*count`
/// (`O,H,H` or `Cu*108` or `O*8,H*16`).
/// More atoms than any trajectory this program reads whole (a position alone would take 2.4 GB).
private let maximumListedAtoms = 100_000_000

///
/// With `atomCount` (the trajectory's), a list that runs past it is refused as soon as it does,
/// before the rest is built: `H*99999999` for a 9-atom file built 3 GB of symbols first.
public func parseElementList(_ text: String, atomCount: Int? = nil) throws -> [String] {
    let limit = min(maximumListedAtoms, atomCount ?? maximumListedAtoms)
    var out: [String] = []
    for raw in text.split(separator: ",") {
        let item = raw.trimmingCharacters(in: .whitespaces)
        let parts = item.split(separator: "*")
        guard let sym = parts.first.map(String.init), Elements.atomicNumber(of: sym) != nil else {
            throw AnalysisError("--elements: '\(item)' is not an element symbol")
        }
        var count = 1
        if parts.count == 2 {
            guard let c = Int(parts[1]), c > 0 else { throw AnalysisError("--elements: bad repeat count in '\(item)'") }
            // Checked before the list is built: H*9000000000000000000 asked for 10²⁰ bytes and aborted.
            guard c <= limit - out.count else {
                if let atomCount, atomCount < maximumListedAtoms {
                    throw AnalysisError("--elements: '\(item)' makes more than the trajectory's \(atomCount) atoms")
                }
                throw AnalysisError("--elements: '\(item)' makes more than \(maximumListedAtoms) atoms")
            }
            count = c
        } else if parts.count > 2 {
            throw AnalysisError("--elements: cannot read '\(item)'")
        }
        out += [String](repeating: sym, count: count)
    }
    guard !out.isEmpty else { throw AnalysisError("--elements is empty") }
    return out
}
