#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The run's random number generator: xoshiro256** (Blackman and Vigna) seeded through
/// SplitMix64, with Gaussian and gamma samplers whose complete state (including the spare
/// Box–Muller normal) can be saved and restored exactly.
public struct RandomStream: RandomNumberGenerator, Sendable, Equatable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64
    /// The second normal of the last Box–Muller pair, not yet handed out.
    private var spareNormal: Double?

    public init(seed: UInt64) {
        var z = seed
        func splitMix() -> UInt64 {
            z &+= 0x9E37_79B9_7F4A_7C15
            var x = z
            x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
            x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
            return x ^ (x >> 31)
        }
        s0 = splitMix(); s1 = splitMix(); s2 = splitMix(); s3 = splitMix()
        spareNormal = nil
    }

    public mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    @inline(__always) private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// Standard normal deviate (Box–Muller; pairs are used fully, the spare is part of the state).
    public mutating func normal() -> Double {
        if let spare = spareNormal {
            spareNormal = nil
            return spare
        }
        let u1 = (Double(next() >> 11) + 1) * 0x1p-53  // (0, 1]: log is finite
        let u2 = uniform()
        let radius = (-2 * log(u1)).squareRoot()
        let angle = 2 * Double.pi * u2
        spareNormal = radius * sin(angle)
        return radius * cos(angle)
    }

    /// Gamma(shape, 1) deviate (Marsaglia and Tsang 2000; shape < 1 through the boost
    /// Gamma(a) = Gamma(a+1)·U^(1/a)).
    public mutating func gamma(shape: Double) -> Double {
        guard shape > 0 else { return 0 }
        if shape < 1 {
            let g = gamma(shape: shape + 1)
            return g * pow(max(uniform(), 0x1p-60), 1 / shape)
        }
        let d = shape - 1.0 / 3.0
        let c = 1 / (9 * d).squareRoot()
        while true {
            var x = 0.0, v = 0.0
            repeat {
                x = normal()
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = uniform()
            if u < 1 - 0.0331 * x * x * x * x { return d * v }
            if log(max(u, 0x1p-60)) < 0.5 * x * x + d * (1 - v + log(v)) { return d * v }
        }
    }

    /// Sum of `degrees` squared standard normals (χ² with `degrees` degrees of freedom).
    public mutating func chiSquared(degrees: Int) -> Double {
        degrees > 0 ? 2 * gamma(shape: 0.5 * Double(degrees)) : 0
    }

    /// The complete state as strings (exact: integers and the bit pattern of the spare normal).
    public func exported(prefix: String = "rng") -> [String: String] {
        var out = [String: String]()
        for (k, v) in [s0, s1, s2, s3].enumerated() { out["\(prefix)_s\(k)"] = String(v, radix: 16) }
        out["\(prefix)_spare"] = spareNormal.map { String($0.bitPattern, radix: 16) } ?? "none"
        return out
    }

    /// Restores a state written by `exported(prefix:)`.
    public init(restoring saved: [String: String], prefix: String = "rng") throws {
        var words = [UInt64]()
        for k in 0..<4 {
            guard let text = saved["\(prefix)_s\(k)"], let w = UInt64(text, radix: 16) else {
                throw DynamicsError.badCheckpoint("missing or malformed key \(prefix)_s\(k)")
            }
            words.append(w)
        }
        guard words.contains(where: { $0 != 0 }) else { throw DynamicsError.badCheckpoint("\(prefix): all-zero xoshiro state") }
        (s0, s1, s2, s3) = (words[0], words[1], words[2], words[3])
        guard let spare = saved["\(prefix)_spare"] else { throw DynamicsError.badCheckpoint("missing key \(prefix)_spare") }
        if spare == "none" {
            spareNormal = nil
        } else if let bits = UInt64(spare, radix: 16) {
            spareNormal = Double(bitPattern: bits)
        } else {
            throw DynamicsError.badCheckpoint("malformed key \(prefix)_spare")
        }
    }
}

/// Exact text encodings of Doubles for integrator state.
enum ExactText {
    static func encode(_ x: Double) -> String { String(x.bitPattern, radix: 16) }
    static func decode(_ saved: [String: String], _ key: String) throws -> Double {
        guard let t = saved[key], let bits = UInt64(t, radix: 16) else {
            throw DynamicsError.badCheckpoint("missing or malformed key \(key)")
        }
        return Double(bitPattern: bits)
    }
}
