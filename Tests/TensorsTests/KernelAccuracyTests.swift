import Foundation
import XCTest
@testable import Tensors

/// The Float kernels that do not call libm agree with it.
final class KernelAccuracyTests: XCTestCase {
    func testFloatExpMatchesDoubleExp() {
        var worst = 0.0
        var x: Float = -87
        while x < 88.5 {
            let exact = Foundation.exp(Double(x))
            worst = max(worst, abs(Double(vectorizableExp(x)) - exact) / exact)
            x += 0.0137
        }
        XCTAssertLessThan(worst, 2.5e-7)
        // Gradual underflow: absolute error at the scale of the smallest subnormal.
        for v in stride(from: Float(-103), to: -87, by: 0.37) {
            let exact = Foundation.exp(Double(v))
            XCTAssertEqual(Double(vectorizableExp(v)), exact, accuracy: 3e-45 + 3e-7 * exact)
        }
        XCTAssertEqual(vectorizableExp(0), 1)
        XCTAssertEqual(vectorizableExp(-200), 0)
        XCTAssertEqual(vectorizableExp(200), .infinity)
        XCTAssertTrue(vectorizableExp(.nan).isNaN)
    }

    func testSigmoidAndSiluInFloatMatchDouble() throws {
        let values: [Float] = stride(from: -30, through: 30, by: 0.25).map { Float($0) }
        let x = try Tensor<Float>(shape: [values.count], scalars: values)
        let s = x.sigmoid().scalars, silu = x.silu().scalars, sp = x.softplus().scalars
        for (i, v) in values.enumerated() {
            let d = Double(v)
            let sig = 1 / (1 + Foundation.exp(-d))
            XCTAssertEqual(Double(s[i]), sig, accuracy: 3e-7 * sig + 1e-30)
            XCTAssertEqual(Double(silu[i]), d * sig, accuracy: 3e-7 * abs(d * sig) + 1e-30)
            XCTAssertEqual(Double(sp[i]), Foundation.log1p(Foundation.exp(d)), accuracy: 3e-7 * max(1, abs(d)))
        }
    }

    /// Threaded loops (forced with a small grain) give the same result as one thread.
    func testBroadcastOnLargeTensorsMatchesScalarLoop() throws {
        var rng = SplitMix64(seed: 9)
        let a = Tensor<Double>.randomUniform([3000, 3, 16], in: -1...1, using: &rng)
        let b = Tensor<Double>.randomUniform([3000, 1, 16], in: -1...1, using: &rng)
        let y = try a * b
        let av = a.scalars, bv = b.scalars, yv = y.scalars
        for r in 0..<3000 { for k in 0..<3 { for c in 0..<16 {
            XCTAssertEqual(yv[(r * 3 + k) * 16 + c], av[(r * 3 + k) * 16 + c] * bv[r * 16 + c])
        } } }
        let index = (0..<3000).map { Int32(($0 * 7) % 50) }
        let scattered = try a.scatterAdd(rows: index, count: 50).scalars
        var expected = [Double](repeating: 0, count: 50 * 48)
        for r in 0..<3000 { for j in 0..<48 { expected[Int(index[r]) * 48 + j] += av[r * 48 + j] } }
        for (u, v) in zip(scattered, expected) { XCTAssertEqual(u, v, accuracy: 1e-12) }
    }
}
