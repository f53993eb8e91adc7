import CFFTW
import Geometry

/// One named curve of a spectrum or profile, with optional standard errors.
public struct Curve: Sendable {
    /// Column name without unit, e.g. `vdos_total`, `vdos_H`, `g_Cu-Cu`.
    public var name: String
    public var values: [Double]
    /// Standard error of each value (from block averages), when computed.
    public var errors: [Double]?

    public init(name: String, values: [Double], errors: [Double]? = nil) {
        self.name = name
        self.values = values
        self.errors = errors
    }
}

/// A spectrum on a uniform wavenumber grid `ν̃_k = k·spacing`, `k = 0, 1, ...`.
public struct Spectrum: Sendable {
    /// Wavenumbers (cm⁻¹).
    public var frequencies: [Double]
    /// The curves, first the total.
    public var curves: [Curve]
    /// Unit of every curve, as written into CSV headers (e.g. `per_cm-1`).
    public var unit: String
    /// Grid spacing (cm⁻¹): `1 / (c · M · Δt)` for a transform of M points.
    public var spacing: Double
    /// Resolution (cm⁻¹): `1 / (c · T_corr)`.
    public var resolution: Double
    /// Highest frequency the sampling resolves (cm⁻¹): `1 / (2 c Δt)`.
    public var nyquist: Double

    public init(frequencies: [Double], curves: [Curve], unit: String, spacing: Double, resolution: Double, nyquist: Double) {
        self.frequencies = frequencies
        self.curves = curves
        self.unit = unit
        self.spacing = spacing
        self.resolution = resolution
        self.nyquist = nyquist
    }

    /// The curve named `name`, if present.
    public func curve(_ name: String) -> Curve? { curves.first { $0.name == name } }

    /// Only the points with `ν̃ ≤ maxFrequency`.
    public func truncated(maxFrequency: Double) -> Spectrum {
        let n = frequencies.firstIndex { $0 > maxFrequency * (1 + 1e-12) } ?? frequencies.count
        var s = self
        s.frequencies = Array(frequencies[..<n])
        s.curves = curves.map { Curve(name: $0.name, values: Array($0.values[..<n]), errors: $0.errors.map { Array($0[..<n]) }) }
        return s
    }

    /// The integral of curve `name` over the grid (trapezoidal rule), in the curve's unit × cm⁻¹.
    public func integral(of name: String) -> Double? {
        guard let c = curve(name) else { return nil }
        return Quadrature.trapezoid(c.values, spacing: spacing)
    }

    /// The frequency (cm⁻¹) of the largest value of curve `name` within `range`.
    public func peak(of name: String, in range: ClosedRange<Double>) -> Double? {
        guard let c = curve(name) else { return nil }
        var best: (frequency: Double, value: Double)? = nil
        for (k, f) in frequencies.enumerated() where range.contains(f) {
            if let b = best, b.value >= c.values[k] { continue }
            best = (f, c.values[k])
        }
        return best?.frequency
    }

    /// The table: `frequency_cm-1`, then each curve and its error column, with units.
    public var table: DataTable {
        var columns = [DataTable.Column(name: "frequency", unit: "cm-1", values: frequencies)]
        for c in curves {
            columns.append(.init(name: c.name, unit: unit, values: c.values))
            if let e = c.errors { columns.append(.init(name: c.name + "_stderr", unit: unit, values: e)) }
        }
        return DataTable(columns: columns)
    }
}

/// Numerical integration on uniform grids.
public enum Quadrature {
    /// `∫ f` by the trapezoidal rule on points `spacing` apart.
    public static func trapezoid(_ f: [Double], spacing: Double) -> Double {
        guard f.count > 1 else { return 0 }
        var s = 0.5 * (f[0] + f[f.count - 1])
        for k in 1..<(f.count - 1) { s += f[k] }
        return s * spacing
    }
}

/// The one-sided cosine transform of a windowed, mirrored correlation function.
///
/// For `C(j)`, `j = 0...L`, a window `w` and `M` transform points this computes
/// `S_k = Δt · [w(0)C(0) + 2 Σ_{j=1..L} w(j) C(j) cos(2π k j / M)]` for `k = 0...M/2`: the
/// Fourier transform of `w(|t|)·C(|t|)` on `[−T_corr, T_corr]`, sampled at `ν_k = k/(MΔt)`.
/// Because `C(−t) = C(t)` the transform is real; `M > 2L` zero-pads, which only interpolates.
/// The trapezoidal integral of `S` over `[0, ν_Nyquist]` is `C(0)/2` exactly, so the window
/// (equal to 1 at zero lag) never changes a spectrum's normalisation.
public enum CosineTransform {
    public static func transform(_ correlation: [Double], window: Window, points: Int, sampleSpacing: Double) throws -> [Double] {
        let maxLag = correlation.count - 1
        guard maxLag >= 0, points >= 2 * maxLag, points % 2 == 0 else {
            throw AnalysisError("a cosine transform of \(maxLag + 1) lags needs an even number of points ≥ \(2 * maxLag); got \(points)")
        }
        guard let input = fftw_alloc_real(points), let output = fftw_alloc_complex(points / 2 + 1) else {
            throw AnalysisError("cannot allocate a \(points)-point transform")
        }
        defer {
            fftw_free(input)
            fftw_free(output)
        }
        guard let plan = fftw_plan_dft_r2c_1d(Int32(points), input, output, UInt32(FFTW_ESTIMATE)) else {
            throw AnalysisError("FFTW could not plan a \(points)-point transform")
        }
        defer { fftw_destroy_plan(plan) }
        input.initialize(repeating: 0, count: points)
        let w = window.values(maxLag: maxLag)
        input[0] = correlation[0] * w[0]
        if maxLag > 0 {
            for j in 1...maxLag {
                let v = correlation[j] * w[j]
                input[j] += v
                input[points - j] += v
            }
        }
        fftw_execute(plan)
        let out = UnsafeMutableRawPointer(output).assumingMemoryBound(to: Double.self)
        return (0...(points / 2)).map { out[2 * $0] * sampleSpacing }
    }
}

/// Conversions between time sampling and wavenumbers.
public enum SpectralUnits {
    /// Speed of light in cm/fs.
    public static let speedOfLight = Units.speedOfLightCmPerFs
    /// Nyquist wavenumber (cm⁻¹) for frames `dt` fs apart: `1/(2cΔt)`.
    public static func nyquist(frameSpacing dt: Double) -> Double { 1 / (2 * speedOfLight * dt) }
    /// Resolution (cm⁻¹) of a correlation kept to `T_corr` fs: `1/(c T_corr)`.
    public static func resolution(correlationTime t: Double) -> Double { 1 / (speedOfLight * t) }
}
