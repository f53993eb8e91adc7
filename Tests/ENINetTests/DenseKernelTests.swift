import XCTest
import Foundation
@testable import ENINet

/// The hand-written product that replaces OpenBLAS for an inner dimension of 4 (the triplet
/// features' width) against a plain triple loop, with widths that leave remainders, strided
/// rows, and both `C = A·B` and `C += A·B`; columns of `C` beyond `n` stay untouched.
final class DenseKernelTests: XCTestCase {
    private func check<T: ENINetFloat>(_: T.Type, m: Int, n: Int, k: Int, lda: Int, ldc: Int, beta: T, tolerance: Double) {
        // Fixed, irregular values in [-1, 1], so that a failure reproduces.
        func values(_ count: Int, _ phase: Double) -> [T] { (0..<count).map { T(sin(Double($0) * 0.731 + phase)) } }
        let a = values(m * lda, 0.1), b = values(k * n, 1.3), c0 = values(m * ldc, 2.7)
        var c = c0
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
            Dense.gemm(m: m, n: n, k: k, ap.baseAddress!, bp.baseAddress!, transposeB: false, beta: beta, cp.baseAddress!, lda: lda, ldc: ldc)
        } } }
        var worst = 0.0
        for r in 0..<m {
            for o in 0..<ldc {
                var expected = Double(c0[r * ldc + o])
                if o < n {
                    expected *= Double(beta)
                    for q in 0..<k { expected += Double(a[r * lda + q]) * Double(b[q * n + o]) }
                }
                worst = max(worst, abs(Double(c[r * ldc + o]) - expected))
            }
        }
        XCTAssertLessThan(worst, tolerance, "\(T.self) m \(m) n \(n) k \(k) lda \(lda) ldc \(ldc) beta \(beta)")
    }

    func testNarrowProductMatchesAPlainLoop() {
        for (m, n) in [(1, 8), (9, 256), (306, 37)] {
            for beta in [0.0, 1.0] {
                check(Double.self, m: m, n: n, k: 4, lda: 6, ldc: n + 3, beta: beta, tolerance: 1e-12)
                check(Float.self, m: m, n: n, k: 4, lda: 4, ldc: n, beta: Float(beta), tolerance: 1e-5)
            }
        }
    }

    /// The eight-lane Float sigmoid equals `1 / (1 + exp(−x))` with the library's `exp`, bit for
    /// bit on `|x| ≤ 87`, is within 2 ulp-scale of the Double sigmoid, saturates beyond, and
    /// passes NaN on.
    func testFloatSigmoidMatchesTheGeneralExponential() {
        var values: [Float] = [-87, -86.99, -50, -10, -1, -0.5, -1e-6, 0, 1e-6, 0.25, 1, 3.3, 10, 40, 86.99, 87]
        for i in 0..<4000 { values.append(-87 + 174 * Float(i) / 3999) }
        while values.count % 8 != 0 { values.append(0.125) }
        for start in stride(from: 0, to: values.count, by: 8) {
            let x = SIMD8<Float>(values[start..<start + 8])
            let fast = Float.sigmoid(x), general = 1 / (1 + Float.tensorExp(-x))
            for lane in 0..<8 {
                XCTAssertEqual(fast[lane].bitPattern, general[lane].bitPattern, "x = \(x[lane])")
                let exact = 1 / (1 + Foundation.exp(-Double(x[lane])))
                XCTAssertEqual(Double(fast[lane]), exact, accuracy: 3e-7 * exact, "x = \(x[lane])")
            }
        }
        let extremes = Float.sigmoid(SIMD8<Float>(-1000, -100, -88, 88, 100, 1000, .infinity, -.infinity))
        for lane in 0..<3 { XCTAssertLessThanOrEqual(extremes[lane], 2e-38) }
        for lane in 3..<6 { XCTAssertEqual(extremes[lane], 1) }
        XCTAssertEqual(extremes[6], 1)
        XCTAssertLessThanOrEqual(extremes[7], 2e-38)
        XCTAssertTrue(Float.sigmoid(SIMD8<Float>(repeating: .nan))[0].isNaN)
    }

    /// The Gaussians' `exp` equals the library's `exp` bit for bit on [−87, 0] and gives at most
    /// 2e-38 below (Float); in Double it is the library's `exp` itself.
    func testDecayingExponentialMatchesTheGeneralExponential() {
        var values: [Float] = [-87, -86.99, -50, -10, -1, -0.5, -1e-6, 0]
        for i in 0..<4000 { values.append(-87 * Float(i) / 3999) }
        for start in stride(from: 0, to: values.count, by: 8) {
            let x = SIMD8<Float>(values[start..<start + 8])
            let fast = Float.decayingExponential(x), general = Float.tensorExp(x)
            for lane in 0..<8 {
                XCTAssertEqual(fast[lane].bitPattern, general[lane].bitPattern, "x = \(x[lane])")
                let exact = Foundation.exp(Double(x[lane]))
                XCTAssertEqual(Double(fast[lane]), exact, accuracy: 3e-7 * exact, "x = \(x[lane])")
            }
        }
        let far = Float.decayingExponential(SIMD8<Float>(-87.5, -88, -100, -150, -1000, -1e30, -.infinity, -103))
        for lane in 0..<8 { XCTAssertGreaterThanOrEqual(far[lane], 0); XCTAssertLessThanOrEqual(far[lane], 2e-38) }
        let xd = SIMD8<Double>(-700, -100, -20, -1, -0.1, -1e-9, 0, -3)
        let yd = Double.decayingExponential(xd)
        for lane in 0..<8 { XCTAssertEqual(yd[lane], Foundation.exp(xd[lane])) }
    }
}
