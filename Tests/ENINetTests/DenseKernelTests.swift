import XCTest
import Foundation
@testable import ENINet

/// The hand-written products that replace OpenBLAS for an inner dimension or an output width
/// of 4 (the triplet features' width) against a plain triple loop, with widths that leave remainders, strided
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

    /// The four-column product (edge features to the triplet width) in blocks of eight rows and
    /// a remainder, for the inner dimensions the networks use and odd ones, with strides.
    func testFourColumnProductMatchesAPlainLoop() {
        for (m, k) in [(1, 32), (8, 4), (23, 32), (306, 96), (17, 5)] {
            for beta in [0.0, 1.0] {
                check(Double.self, m: m, n: 4, k: k, lda: k + 2, ldc: 7, beta: beta, tolerance: 1e-12)
                check(Float.self, m: m, n: 4, k: k, lda: k, ldc: 4, beta: Float(beta), tolerance: 2e-5)
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

    /// The cutoff's cosine and sine on eight lanes agree with the library's on [0, π] to Float
    /// round-off (Float) or exactly (Double), and the cutoffs built from them, with the value and
    /// slope zero beyond the radius, agree with the scalar form lane for lane, tail included.
    func testCutoffCosineAndSineMatchTheLibrary() {
        for i in 0..<2001 {
            let a = Float.pi * Float(i) / 2000
            let (c, s) = Float.cosineAndSine(halfTurn: SIMD8<Float>(repeating: a))
            let cosine = Foundation.cos(Double(a)), sine = Foundation.sin(Double(a))
            XCTAssertEqual(Double(c[0]), cosine, accuracy: 2e-7, "a = \(a)")
            // Relative for the sine, which is small at both ends (short bonds, the cutoff).
            XCTAssertEqual(Double(s[0]), sine, accuracy: 1e-9 + 3e-7 * abs(sine), "a = \(a)")
        }
        let angles = SIMD8<Double>(0, 0.1, 0.5, 1, 1.5, 2, 3, Double.pi)
        let (cd, sd) = Double.cosineAndSine(halfTurn: angles)
        for lane in 0..<8 {
            XCTAssertEqual(cd[lane], Foundation.cos(angles[lane]))
            XCTAssertEqual(sd[lane], Foundation.sin(angles[lane]))
        }
        func check<T: ENINetFloat>(_: T.Type, tolerance: T) {
            let lengths: [T] = (0..<21).map { T($0) * T(0.27) }  // 0 … 5.4 across a radius of 5, 8 + 8 + 5
            var values = [T](repeating: -1, count: lengths.count), slopes = values
            lengths.withUnsafeBufferPointer { x in values.withUnsafeMutableBufferPointer { v in slopes.withUnsafeMutableBufferPointer { d in
                HandScheduledNetwork<T>.cutoffs(x.baseAddress!, count: x.count, radius: 5, values: v.baseAddress!, derivatives: d.baseAddress!)
            } } }
            for (i, x) in lengths.enumerated() {
                let (value, slope) = HandScheduledNetwork<T>.cutoff(x, 5)
                XCTAssertEqual(values[i], value, accuracy: tolerance, "r = \(x)")
                XCTAssertEqual(slopes[i], slope, accuracy: tolerance, "r = \(x)")
                if x > 5 { XCTAssertEqual(values[i], 0); XCTAssertEqual(slopes[i], 0) }
            }
        }
        check(Float.self, tolerance: 2e-7)
        check(Double.self, tolerance: 0)
    }

    /// Eight rows of four channels transposed by shuffles land where lane-by-lane stores put
    /// them, in both precisions.
    func testEightTripletRowsTransposeLikeLaneStores() {
        func check<T: ENINetFloat>(_: T.Type) {
            let rows: [SIMD4<T>] = (0..<8).map { (i: Int) -> SIMD4<T> in
                let first = T(10 * i)
                return SIMD4<T>(first, first + 1, first + 2, first + 3)
            }
            var bySetting = EightTriplets<T>()
            for i in 0..<8 { bySetting.setQuad(i, rows[i]) }
            let byShuffling = EightTriplets<T>(rows: { rows[$0] })
            XCTAssertEqual(byShuffling.c0, bySetting.c0)
            XCTAssertEqual(byShuffling.c1, bySetting.c1)
            XCTAssertEqual(byShuffling.c2, bySetting.c2)
            XCTAssertEqual(byShuffling.c3, bySetting.c3)
            XCTAssertEqual(byShuffling.channelSum[5], T(4 * 50 + 6))
            for i in 0..<8 { XCTAssertEqual(byShuffling.quad(i), rows[i]) }
        }
        check(Float.self)
        check(Double.self)
    }

    func testEightTripletsStoredAndReadBackByLane() {
        func check<T: ENINetFloat>(_: T.Type) {
            var block = EightTriplets<T>()
            for i in 0..<8 { block.setQuad(i, SIMD4<T>(T(10 * i), T(10 * i + 1), T(10 * i + 2), T(10 * i + 3))) }
            // Guard elements on both sides catch a store outside the block's 32.
            let buffer = UnsafeMutablePointer<T>.allocate(capacity: 40)
            defer { buffer.deallocate() }
            buffer.initialize(repeating: -1, count: 40)
            block.store(buffer + 4)
            for k in 0..<4 { XCTAssertEqual(buffer[k], -1); XCTAssertEqual(buffer[36 + k], -1) }
            for i in 0..<8 {
                XCTAssertEqual(EightTriplets<T>.quad(i, of: buffer + 4), block.quad(i), "lane \(i)")
                XCTAssertEqual(EightTriplets<T>.quad(i, of: buffer + 4)[2], T(10 * i + 2))
            }
        }
        check(Float.self)
        check(Double.self)
    }
}
