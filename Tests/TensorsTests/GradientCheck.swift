import XCTest
@testable import Tensors

/// A small seeded generator so that every run checks the same numbers.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Finite-difference checks of first and second derivatives in Double.
enum GradientCheck {
    typealias T = Tensor<Double>

    /// Max |a − n| over max(|n|, floor): the relative error the issue asks to be below 1e-6.
    static func relativeError(_ analytic: [Double], _ numeric: [Double], floor: Double = 1e-3) -> Double {
        var diff = 0.0, scale = floor
        for (a, n) in zip(analytic, numeric) {
            diff = max(diff, abs(a - n))
            scale = max(scale, abs(n))
        }
        return diff / scale
    }

    /// Central differences of the scalar `f` with respect to every element of every input.
    static func numericGradient(_ inputs: [T], step: Double = 1e-6, _ f: () throws -> Double) rethrows -> [[Double]] {
        var out: [[Double]] = []
        for x in inputs {
            var g = [Double](repeating: 0, count: x.count)
            for i in 0..<x.count {
                let saved = x[flat: i]
                x.withUnsafeMutableBufferPointer { $0[i] = saved + step }
                let fp = try f()
                x.withUnsafeMutableBufferPointer { $0[i] = saved - step }
                let fm = try f()
                x.withUnsafeMutableBufferPointer { $0[i] = saved }
                g[i] = (fp - fm) / (2 * step)
            }
            out.append(g)
        }
        return out
    }

    /// Checks `d/dx sum(w · f(x))` (first order) and `d/dx sum(v · ∂/∂x sum(w · f(x)))` (second
    /// order, through `createGraph: true`) against finite differences. Returns the two errors.
    @discardableResult
    static func check(_ inputs: [T], secondOrder: Bool = true, seed: UInt64 = 7,
                      file: StaticString = #filePath, line: UInt = #line,
                      _ f: ([T]) throws -> T) throws -> (first: Double, second: Double) {
        var rng = SplitMix64(seed: seed)
        let probe = try f(inputs)
        let w = T.randomUniform(probe.shape, in: 0.5...1.5, using: &rng)
        let vs = inputs.map { T.randomUniform($0.shape, in: -1...1, using: &rng) }

        func loss() throws -> T { try (f(inputs) * w).sum() }
        let analytic = try grad(of: loss(), wrt: inputs)
        let numeric = try numericGradient(inputs) { try loss().item }
        var first = 0.0
        for (a, n) in zip(analytic, numeric) { first = max(first, relativeError(a.scalars, n)) }
        XCTAssertLessThan(first, 1e-6, "first-order gradient", file: file, line: line)

        var second = 0.0
        if secondOrder {
            // S(x) = Σ v · ∂L/∂x depends on x through the gradient itself.
            func gradientScalar(createGraph: Bool) throws -> T {
                let g = try grad(of: loss(), wrt: inputs, createGraph: createGraph)
                var s = T(0)
                for (gi, vi) in zip(g, vs) { s = try s + (gi * vi).sum() }
                return s
            }
            let s = try gradientScalar(createGraph: true)
            let analytic2: [T]
            if s.requiresGrad {
                analytic2 = try grad(of: s, wrt: inputs)
            } else {
                analytic2 = inputs.map { T.zeros($0.shape) }
            }
            let numeric2 = try numericGradient(inputs) { try gradientScalar(createGraph: false).item }
            for (a, n) in zip(analytic2, numeric2) { second = max(second, relativeError(a.scalars, n)) }
            XCTAssertLessThan(second, 1e-6, "second-order gradient", file: file, line: line)
        }
        if ProcessInfo.processInfo.environment["GRADCHECK_VERBOSE"] != nil { print("gradcheck first \(first) second \(second) at line \(line)") }
        return (first, second)
    }

    static func random(_ shape: [Int], _ range: ClosedRange<Double> = -1...1, seed: UInt64) -> T {
        var rng = SplitMix64(seed: seed)
        return T.randomUniform(shape, in: range, using: &rng, requiresGrad: true)
    }
}
