import Foundation
import Geometry

/// The infrared absorption line shape from a dipole time series.
///
/// The dipole's time derivative `Ṁ` is taken by central differences,
/// `Ṁ(n) = (M(n+1) − M(n−1)) / 2Δt`, and the spectrum is the cosine transform of its
/// autocorrelation, `I(ν̃) = c ∫ ⟨Ṁ(0)·Ṁ(t)⟩ e^{−2πiνt} dt` in (e·Å/fs)² per cm⁻¹. In the
/// harmonic-correction picture of `spectra.md` this is `α(ω)n(ω)` up to the constant
/// `β/(6cVε₀)` (left out: a molecule in vacuum has no volume). The derivative form avoids the
/// ω² amplification of noise that transforming `M` itself and multiplying by ω² would bring.
/// Quantum correction factors multiply this classical line shape.
public enum InfraredSpectrum {
    /// Quantum correction factors `Q(ω)` with `x = βħω` (`spectra.md`).
    public enum Correction: String, CaseIterable, Sendable {
        /// Classical: 1.
        case none
        /// `2 / (1 + e^{−x})`.
        case standard
        /// `x / (1 − e^{−x})`.
        case harmonic
        /// `e^{x/2}`.
        case schofield

        /// The factor at wavenumber `ν̃` (cm⁻¹) and temperature `T` (K).
        public func factor(wavenumber: Double, temperature: Double) -> Double {
            let x = Units.hbarEVfs * 2 * Double.pi * SpectralUnits.speedOfLight * wavenumber / (Units.boltzmann * temperature)
            switch self {
            case .none: return 1
            case .standard: return 2 / (1 + exp(-x))
            case .harmonic: return x == 0 ? 1 : x / (-expm1(-x))
            case .schofield: return exp(0.5 * x)
            }
        }
    }

    public struct Options: Sendable {
        public var spectral: SpectralOptions
        public var correction: Correction
        /// Needed by every correction except `.none` (K).
        public var temperature: Double?
        public init(spectral: SpectralOptions, correction: Correction = .none, temperature: Double? = nil) {
            self.spectral = spectral
            self.correction = correction
            self.temperature = temperature
        }
    }

    /// The dipole derivative by central differences: `frames − 2` samples of 3 values (e·Å/fs).
    public static func dipoleDerivative(_ dipoles: [Double], frameSpacing dt: Double) -> [Double] {
        let frames = dipoles.count / 3
        guard frames >= 3 else { return [] }
        var out = [Double](repeating: 0, count: 3 * (frames - 2))
        for n in 1..<(frames - 1) {
            for k in 0..<3 { out[3 * (n - 1) + k] = (dipoles[3 * (n + 1) + k] - dipoles[3 * (n - 1) + k]) / (2 * dt) }
        }
        return out
    }

    /// - Parameter dipoles: frame-major, `frames × 3` values (e·Å).
    /// - Returns: curves `ir_classical` and, with a correction, `ir_<correction>` (listed first);
    ///   unit `e2A2fs-2_per_cm-1`.
    public static func compute(dipoles: [Double], frameSpacing: Double, options: Options) throws -> Spectrum {
        guard dipoles.count % 3 == 0 else { throw AnalysisError("IR: the dipole series must have 3 values per frame; got \(dipoles.count) values") }
        let frames = dipoles.count / 3
        if let bad = dipoles.firstIndex(where: { !$0.isFinite }) {
            throw AnalysisError("IR: the dipole of frame \(bad / 3) is not finite")
        }
        guard frames >= 4 else { throw AnalysisError("IR: a dipole series of \(frames) frames is too short; need at least 4") }
        var temperature = 0.0
        if options.correction != .none {
            guard let t = options.temperature else {
                throw AnalysisError("IR: the \(options.correction.rawValue) quantum correction needs a temperature; pass --temperature-K")
            }
            guard t > 0, t.isFinite else { throw AnalysisError("IR: --temperature-K must be positive and finite; got \(t) K") }
            temperature = t
        }
        let derivative = dipoleDerivative(dipoles, frameSpacing: frameSpacing)
        let spectral = options.spectral
        try spectral.validate(samples: frames - 2, sampleSpacing: frameSpacing, what: "IR")
        let (whole, blocks) = try GroupCorrelator(options: spectral).run(
            matrix: derivative, rows: frames - 2, rowStride: 3, weights: [1, 1, 1], groups: [0, 0, 0], groupCount: 1)
        let points = spectral.transformPoints
        let spacing = 1 / (SpectralUnits.speedOfLight * Double(points) * frameSpacing)
        let factors = (0...(points / 2)).map {
            options.correction.factor(wavenumber: Double($0) * spacing, temperature: temperature)
        }
        // e^(βħω/2) at 1 K passes Double's range by 1,500 cm⁻¹ and wrote columns of inf.
        if let bad = factors.firstIndex(where: { !$0.isFinite }) {
            throw AnalysisError(String(format: "IR: the %@ correction at %g K overflows from %.0f cm⁻¹ on; raise --temperature-K or use --correction harmonic",
                                       options.correction.rawValue, temperature, Double(bad) * spacing))
        }
        func spectra(_ c: [[Double]]) throws -> [[Double]] {
            let classical = try CosineTransform.transform(c[0], window: spectral.window, points: points, sampleSpacing: frameSpacing)
                .map { $0 * SpectralUnits.speedOfLight }
            if options.correction == .none { return [classical] }
            return [zip(classical, factors).map { $0 * $1 }, classical]
        }
        let main = try spectra(whole)
        let perBlock = try blocks.map { try spectra($0) }
        var names = ["ir_classical"]
        if options.correction != .none { names.insert("ir_\(options.correction.rawValue)", at: 0) }
        let curves = names.indices.map { c in
            Curve(name: names[c], values: main[c], errors: BlockStatistics.standardError(perBlock.map { $0[c] }))
        }
        var spectrum = VibrationalDensityOfStates.makeSpectrum(curves: curves, points: points, frameSpacing: frameSpacing,
                                                               maxLag: spectral.maxLag, unit: "e2A2fs-2_per_cm-1")
        if let f = spectral.maxFrequency { spectrum = spectrum.truncated(maxFrequency: f) }
        return spectrum
    }
}
