import Foundation

/// A taper applied to a correlation function on `[0, T_corr]` before its cosine transform.
///
/// Every window equals 1 at zero lag, so the windowed spectrum keeps the integral `C(0)/2` and
/// the VDOS normalisation does not depend on the choice. All but `.none` fall to (nearly) zero
/// at the maximum lag, which suppresses the ringing of a truncated correlation.
public enum Window: String, CaseIterable, Sendable {
    /// `cos²(π t / 2T)`: the right half of a Hann window of length 2T.
    case hann
    /// `exp(−t² / 2σ²)` with `σ = T/3`, which is 0.011 at the maximum lag.
    case gaussian
    /// `0.42 + 0.5 cos(π t/T) + 0.08 cos(2π t/T)`: the right half of a Blackman window.
    case blackman
    /// No taper (a rectangular cut at the maximum lag).
    case none

    /// The window's value at lag `lag` for a maximum lag `maxLag` (both in samples).
    public func value(lag: Int, maxLag: Int) -> Double {
        guard maxLag > 0 else { return 1 }
        let x = Double(lag) / Double(maxLag)
        switch self {
        case .hann:
            let c = cos(0.5 * Double.pi * x)
            return c * c
        case .gaussian:
            return exp(-0.5 * (3 * x) * (3 * x))
        case .blackman:
            return 0.42 + 0.5 * cos(Double.pi * x) + 0.08 * cos(2 * Double.pi * x)
        case .none:
            return 1
        }
    }

    /// The window's values for lags `0...maxLag`.
    public func values(maxLag: Int) -> [Double] {
        (0...max(0, maxLag)).map { value(lag: $0, maxLag: maxLag) }
    }
}
