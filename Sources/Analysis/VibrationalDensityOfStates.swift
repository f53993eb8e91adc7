import Foundation
import Geometry

/// The vibrational density of states from atomic velocities.
///
/// Mass-weighted (the default), following `spectra.md`:
/// `g(ν̃) = (2/k_BT) Σ_i m_i ∫ ⟨v_i(0)·v_i(t)⟩ e^{−2πiνt} dt`, in states per cm⁻¹, so that
/// `∫_0^∞ g dν̃` is the number of degrees of freedom. With no temperature given, `T` is the
/// kinetic temperature of the trajectory over `degreesOfFreedom` (3N unless told otherwise),
/// which makes the integral exactly that number; with a temperature given, the integral
/// measures how well the trajectory is equipartitioned at that temperature.
///
/// Unweighted: the velocity autocorrelation without masses, scaled so that it also integrates
/// to the degrees of freedom (`g = 2·dof · Σ_i ∫⟨v_i(0)·v_i(t)⟩… / Σ_i ⟨v_i²⟩`); its peaks sit
/// where the mass-weighted ones do, with different heights.
///
/// Per-element curves use the total's prefactor, so they add up to the total.
public enum VibrationalDensityOfStates {
    public struct Options: Sendable {
        public var spectral: SpectralOptions
        public var massWeighted: Bool
        /// Temperature (K) in the prefactor; nil: the trajectory's kinetic temperature.
        public var temperature: Double?
        /// Degrees of freedom for the normalisation; nil: 3N.
        public var degreesOfFreedom: Int?

        public init(spectral: SpectralOptions, massWeighted: Bool = true, temperature: Double? = nil,
                    degreesOfFreedom: Int? = nil) {
            self.spectral = spectral
            self.massWeighted = massWeighted
            self.temperature = temperature
            self.degreesOfFreedom = degreesOfFreedom
        }
    }

    public struct Result: Sendable {
        /// Curves `vdos_total`, then (with more than one element) `vdos_<element>` in order of
        /// first appearance; unit `per_cm-1`.
        public var spectrum: Spectrum
        /// Kinetic temperature of the velocities over `degreesOfFreedom` (K).
        public var kineticTemperature: Double
        public var degreesOfFreedom: Int
    }

    /// - Parameters:
    ///   - velocities: frame-major, `frames × atomCount × 3` values (Å/fs).
    ///   - frameSpacing: time between frames (fs).
    ///   - masses: amu, one per atom.
    ///   - symbols: element of each atom, for the per-element curves.
    public static func compute(velocities: [Double], atomCount: Int, frameSpacing: Double, masses: [Double],
                               symbols: [String], options: Options) throws -> Result {
        let width = 3 * atomCount
        guard atomCount > 0, velocities.count % width == 0 else {
            throw AnalysisError("VDOS: \(velocities.count) velocity values do not make whole frames of \(atomCount) atoms")
        }
        guard masses.count == atomCount, symbols.count == atomCount else {
            throw AnalysisError("VDOS: \(atomCount) atoms need \(atomCount) masses and element symbols; got \(masses.count) and \(symbols.count)")
        }
        if let bad = masses.firstIndex(where: { !($0 > 0) || !$0.isFinite }) {
            throw AnalysisError("VDOS: atom \(bad) has mass \(masses[bad]); masses must be positive")
        }
        let frames = velocities.count / width
        let spectral = options.spectral
        try spectral.validate(samples: frames, sampleSpacing: frameSpacing, what: "VDOS")
        let dof = options.degreesOfFreedom ?? 3 * atomCount
        // More than 3N has no meaning, and 2⁶³ printed as -1 dof with an integral of 8·10¹⁸.
        guard dof > 0, dof <= 3 * atomCount else {
            throw AnalysisError("VDOS: degrees of freedom must be from 1 to 3N = \(3 * atomCount); got \(dof)")
        }
        if let t = options.temperature, !(t > 0 && t.isFinite) {
            throw AnalysisError("VDOS: the temperature must be positive and finite; got \(t) K")
        }

        // One pass over the data: reject NaN/inf with its frame and atom, and sum Σ m v².
        var massVelocitySquared = 0.0
        try velocities.withUnsafeBufferPointer { v in
            for t in 0..<frames {
                var frameSum = 0.0
                for i in 0..<atomCount {
                    let o = t * width + 3 * i
                    let s = v[o] * v[o] + v[o + 1] * v[o + 1] + v[o + 2] * v[o + 2]
                    guard s.isFinite else { throw AnalysisError("VDOS: velocity of atom \(i) in frame \(t) is not finite") }
                    frameSum += masses[i] * s
                }
                massVelocitySquared += frameSum
            }
        }
        // ⟨Σ m v²⟩ in eV is 2·KE = dof·k_B·T.
        let twiceKinetic = massVelocitySquared / Double(frames) * Units.energyPerMassVelocitySquared
        let kineticTemperature = twiceKinetic / (Double(dof) * Units.boltzmann)

        var groupNames: [String] = []
        var groupOfAtom: [Int] = []
        for s in symbols {
            if let g = groupNames.firstIndex(of: s) { groupOfAtom.append(g) } else {
                groupNames.append(s)
                groupOfAtom.append(groupNames.count - 1)
            }
        }
        var weights = [Double](repeating: 0, count: width)
        var groups = [Int](repeating: 0, count: width)
        for i in 0..<atomCount {
            for k in 0..<3 {
                weights[3 * i + k] = options.massWeighted ? masses[i] : 1
                groups[3 * i + k] = groupOfAtom[i]
            }
        }

        let (whole, blocks) = try GroupCorrelator(options: spectral).run(
            matrix: velocities, rows: frames, rowStride: width, weights: weights, groups: groups,
            groupCount: groupNames.count)
        let totalAtZero = whole.reduce(0) { $0 + $1[0] }
        guard totalAtZero > 0 else { throw AnalysisError("VDOS: all velocities are zero") }

        // Prefactor turning Δt·Σ w C into states per cm⁻¹ (Δt in fs times c in cm/fs gives cm).
        let prefactor: Double
        if options.massWeighted {
            let kT = Units.boltzmann * (options.temperature ?? kineticTemperature)
            guard kT > 0 else { throw AnalysisError("VDOS: the temperature must be positive") }
            prefactor = 2 / kT * Units.energyPerMassVelocitySquared * SpectralUnits.speedOfLight
        } else {
            prefactor = 2 * Double(dof) / totalAtZero * SpectralUnits.speedOfLight
        }

        let points = spectral.transformPoints
        func spectra(_ correlations: [[Double]]) throws -> [[Double]] {
            let per = try correlations.map {
                try CosineTransform.transform($0, window: spectral.window, points: points, sampleSpacing: frameSpacing)
                    .map { $0 * prefactor }
            }
            var total = [Double](repeating: 0, count: points / 2 + 1)
            for p in per { for k in total.indices { total[k] += p[k] } }
            return [total] + per
        }
        let main = try spectra(whole)
        let blockSpectra = try blocks.map { try spectra($0) }
        // A one-element system's element curve would repeat the total.
        let names = ["vdos_total"] + (groupNames.count > 1 ? groupNames.map { "vdos_\($0)" } : [])
        var curves: [Curve] = []
        for (c, name) in names.enumerated() {
            let err = BlockStatistics.standardError(blockSpectra.map { $0[c] })
            curves.append(Curve(name: name, values: main[c], errors: err))
        }
        var spectrum = makeSpectrum(curves: curves, points: points, frameSpacing: frameSpacing, maxLag: spectral.maxLag,
                                    unit: "per_cm-1")
        if let f = spectral.maxFrequency { spectrum = spectrum.truncated(maxFrequency: f) }
        return Result(spectrum: spectrum, kineticTemperature: kineticTemperature, degreesOfFreedom: dof)
    }

    static func makeSpectrum(curves: [Curve], points: Int, frameSpacing: Double, maxLag: Int, unit: String) -> Spectrum {
        let spacing = 1 / (SpectralUnits.speedOfLight * Double(points) * frameSpacing)
        let frequencies = (0...(points / 2)).map { Double($0) * spacing }
        return Spectrum(frequencies: frequencies, curves: curves, unit: unit, spacing: spacing,
                        resolution: SpectralUnits.resolution(correlationTime: Double(maxLag) * frameSpacing),
                        nyquist: SpectralUnits.nyquist(frameSpacing: frameSpacing))
    }
}
