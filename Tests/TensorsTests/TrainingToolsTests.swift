import Foundation
import XCTest
@testable import Tensors

final class TrainingToolsTests: XCTestCase {
    typealias T = Tensor<Double>

    /// Two Adam steps against the update rule evaluated by hand.
    func testAdamMatchesUpdateRule() throws {
        let w = try T(shape: [2], scalars: [1.0, -2.0], requiresGrad: true)
        let opt = Adam<Double>(parameters: [w], learningRate: 0.1, weightDecay: 0.5)
        let g1 = try T(shape: [2], scalars: [0.3, -0.4]), g2 = try T(shape: [2], scalars: [-0.2, 0.1])
        try opt.step(gradients: [g1])
        try opt.step(gradients: [g2])
        var expected = [1.0, -2.0]
        var m = [0.0, 0.0], v = [0.0, 0.0]
        for (t, g) in [[0.3, -0.4], [-0.2, 0.1]].enumerated() {
            for i in 0..<2 {
                let gi = g[i] + 0.5 * expected[i]
                m[i] = 0.9 * m[i] + 0.1 * gi
                v[i] = 0.999 * v[i] + 0.001 * gi * gi
                let mh = m[i] / (1 - pow(0.9, Double(t + 1))), vh = v[i] / (1 - pow(0.999, Double(t + 1)))
                expected[i] -= 0.1 * mh / (vh.squareRoot() + 1e-8)
            }
        }
        XCTAssertEqual(w.scalars[0], expected[0], accuracy: 1e-14)
        XCTAssertEqual(w.scalars[1], expected[1], accuracy: 1e-14)
    }

    /// AdamW decays the weight itself: with a zero gradient, w ← w (1 − lr·λ).
    func testAdamWDecouplesWeightDecay() throws {
        let w = try T(shape: [1], scalars: [3.0], requiresGrad: true)
        let opt = Adam<Double>.adamW(parameters: [w], learningRate: 0.1, weightDecay: 0.2)
        try opt.step(gradients: [T.zeros([1])])
        XCTAssertEqual(w.item, 3.0 * (1 - 0.02), accuracy: 1e-15)
    }

    /// Adam minimises a quadratic to its known minimum.
    func testAdamFitsLeastSquares() throws {
        let a = try T(shape: [3, 2], scalars: [1, 2, 3, 4, 5, 7])
        let b = try T(shape: [3, 1], scalars: [1, 0, 2])
        let x = T.zeros([2, 1])
        try x.setRequiresGrad(true)
        let opt = Adam<Double>(parameters: [x], learningRate: 0.05)
        for _ in 0..<3000 {
            let loss = try (matmul(a, x) - b).square().sum()
            try opt.step(gradients: grad(of: loss, wrt: [x]))
        }
        // Normal equations (AᵀA) x = Aᵀb solved by hand: AᵀA = [[35, 49], [49, 69]], Aᵀb = [11, 16].
        let det = 35.0 * 69 - 49 * 49
        XCTAssertEqual(x.scalars[0], (69 * 11 - 49 * 16) / det, accuracy: 1e-6)
        XCTAssertEqual(x.scalars[1], (35 * 16 - 49 * 11) / det, accuracy: 1e-6)
    }

    func testClipGradientNorm() throws {
        let g = [try T(shape: [2], scalars: [3, 0]), try T(shape: [1], scalars: [4])]
        let (clipped, norm) = clipGradientNorm(g, maxNorm: 1)
        XCTAssertEqual(norm, 5, accuracy: 1e-12)
        XCTAssertEqual(clipped[0].scalars[0], 0.6, accuracy: 1e-6)
        XCTAssertEqual(clipped[1].scalars[0], 0.8, accuracy: 1e-6)
        XCTAssertEqual(g[0].scalars, [3, 0], "inputs unchanged")
        XCTAssertEqual(clipGradientNorm(g, maxNorm: 10).gradients[1].scalars, [4])
    }

    func testParameterSetNamesAndLoading() throws {
        let p = ParameterSet<Float>()
        try p.add("a.weight", shape: [2, 3])
        try p.add("a.bias", shape: [2])
        XCTAssertThrowsError(try p.add("a.bias", shape: [2]))
        XCTAssertEqual(p.names, ["a.weight", "a.bias"])
        XCTAssertEqual(p.scalarCount, 8)
        try p.load("a.weight", shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(p["a.weight"]?.scalars, [1, 2, 3, 4, 5, 6])
        XCTAssertThrowsError(try p.load("a.weight", shape: [3, 2], scalars: [1, 2, 3, 4, 5, 6]))
        XCTAssertThrowsError(try p.load("missing", shape: [1], scalars: [1]))
        XCTAssertTrue(p.tensors.allSatisfy(\.requiresGrad))
    }

    /// `backward()` accumulates into `.grad` of leaves across calls, like PyTorch.
    func testBackwardAccumulates() throws {
        let x = try T(shape: [2], scalars: [1, 2], requiresGrad: true)
        try (x * x).sum().backward()
        try (x * 3).sum().backward()
        XCTAssertEqual(x.grad?.scalars, [2 + 3, 4 + 3])
    }

    /// Without recording, results keep no history; recording keeps exactly the inputs.
    func testNoGradModeBuildsNoGraph() throws {
        let x = try T(shape: [2], scalars: [1, 2], requiresGrad: true)
        let y = try GradMode.withoutGradients { try (x * x).exp() }
        XCTAssertFalse(y.requiresGrad)
        XCTAssertTrue(y.inputs.isEmpty)
        let z = try (x * x).exp()
        XCTAssertTrue(z.requiresGrad)
        XCTAssertEqual(z.inputs.count, 1)
        // Gradients taken without createGraph have no history either.
        let g = try grad(of: z.sum(), wrt: [x])[0]
        XCTAssertFalse(g.requiresGrad)
    }

    /// `grad` follows only the paths that lead to the requested tensors.
    func testGradientWithRespectToIntermediateAndUnused() throws {
        let x = try T(shape: [2], scalars: [1, 2], requiresGrad: true)
        let unused = try T(shape: [3], scalars: [1, 2, 3], requiresGrad: true)
        let h = x * 2
        let y = try (h * h).sum()
        let g = try grad(of: y, wrt: [h, x, unused])
        XCTAssertEqual(g[0].scalars, [4, 8])
        XCTAssertEqual(g[1].scalars, [8, 16])
        XCTAssertEqual(g[2].scalars, [0, 0, 0])
    }
}

final class CustomOperationTests: XCTestCase {
    typealias T = Tensor<Double>

    /// A user-defined op (a cube, with its backward written in tensor operations) passes the
    /// first- and second-order checks like the built-in ones.
    func testCustomOperationIsDifferentiableTwice() throws {
        func cube(_ x: T) throws -> T {
            try T.custom("cube", inputs: [x], shape: x.shape, values: x.scalars.map { $0 * $0 * $0 }) { g, y, _ in
                let x = y.inputs[0]
                return [try g * x * x * 3]
            }
        }
        let x = GradientCheck.random([5], -2...2, seed: 3)
        try GradientCheck.check([x]) { try cube($0[0]) }
        XCTAssertThrowsError(try T.custom("bad", inputs: [x], shape: [2], values: [1]) { _, _, _ in [nil] })
    }

    /// Precision conversion keeps values and drops history.
    func testConvertingBetweenPrecisions() throws {
        let d = try T(shape: [3], scalars: [0.1, -2.5, 1e-3], requiresGrad: true)
        let f = Tensor<Float>(converting: d)
        XCTAssertEqual(f.scalars, [0.1, -2.5, 1e-3])
        XCTAssertFalse(f.requiresGrad)
        XCTAssertEqual(Tensor<Double>(converting: f).scalars.map { Float($0) }, f.scalars)
    }
}
