import XCTest
@testable import Tensors

/// Every operation against finite differences, first and second order, in Double.
final class OperationGradientTests: XCTestCase {
    typealias T = Tensor<Double>
    func r(_ shape: [Int], _ range: ClosedRange<Double> = -1...1, seed: UInt64 = 1) -> T {
        GradientCheck.random(shape, range, seed: seed)
    }

    func testArithmeticWithBroadcasting() throws {
        let a = r([4, 3, 5], seed: 1), b = r([4, 1, 5], seed: 2), c = r([5], seed: 3)
        let d = r([4, 3, 1], 0.5...2, seed: 4)
        try GradientCheck.check([a, b]) { try $0[0] + $0[1] }
        try GradientCheck.check([a, b]) { try $0[0] - $0[1] }
        try GradientCheck.check([a, b]) { try $0[0] * $0[1] }
        try GradientCheck.check([a, c]) { try $0[0] * $0[1] }
        try GradientCheck.check([a, d]) { try $0[0] / $0[1] }
        try GradientCheck.check([d, a]) { try $0[0] * $0[1] * $0[1] }
        // Rows of four channels against one value per row (the kernel's loop over one outer
        // axis, with rows of a literal length), both operand orders, and an odd row count.
        let rows4 = r([7, 4], seed: 41), perRow = r([7, 1], 0.5...2, seed: 42)
        let x4 = rows4.scalars, v = perRow.scalars
        XCTAssertEqual(try (rows4 - perRow).scalars, (0..<28).map { x4[$0] - v[$0 / 4] })
        XCTAssertEqual(try (perRow - rows4).scalars, (0..<28).map { v[$0 / 4] - x4[$0] })
        XCTAssertEqual(try (rows4 / perRow).scalars, (0..<28).map { x4[$0] / v[$0 / 4] })
        try GradientCheck.check([rows4, perRow]) { try $0[0] * $0[1] }
        try GradientCheck.check([rows4, perRow]) { try $0[1] - $0[0] }
        try GradientCheck.check([rows4, perRow]) { try $0[0] / $0[1] }
        // The product-sum of such rows to one value per row, their sum and the copy of a value per row to them.
        let other4 = r([7, 4], seed: 43), y4 = other4.scalars
        func rowSums(_ term: (Int) -> Double) -> [Double] {
            (0..<7).map { o -> Double in
                var sum = 0.0
                for c in 0..<4 { sum += term(4 * o + c) }
                return sum
            }
        }
        XCTAssertEqual(try T.productSum(rows4, other4, toShape: [7, 1]).scalars, rowSums { x4[$0] * y4[$0] })
        XCTAssertEqual(try rows4.sum(axis: 1, keepingDimensions: true).scalars, rowSums { x4[$0] })
        XCTAssertEqual(try perRow.expanded(to: [7, 4]).scalars, (0..<28).map { v[$0 / 4] })
        try GradientCheck.check([rows4, other4]) { try T.productSum($0[0], $0[1], toShape: [7, 1]) }
        try GradientCheck.check([rows4]) { try $0[0].sum(axis: 1, keepingDimensions: true).sin() }
        try GradientCheck.check([perRow]) { try $0[0].expanded(to: [7, 4]).sin() }
        // The fused product-then-sum of broadcast backwards, directly.
        let e = r([4, 3, 5], seed: 8)
        try GradientCheck.check([a, e]) { try T.productSum($0[0], $0[1], toShape: [4, 1, 5]) }
        try GradientCheck.check([a, e]) { try T.productSum($0[0], $0[1], toShape: [3, 5]) }
        try GradientCheck.check([a, e]) { try T.productSum($0[0], $0[1], toShape: [4, 1, 1]) }
        XCTAssertEqual(try T.productSum(a, e, toShape: [1, 3, 1]).scalars.map { ($0 * 1e12).rounded() },
                       try (a * e).sum(toShape: [1, 3, 1]).scalars.map { ($0 * 1e12).rounded() })
    }

    /// The per-channel weighted sum of vectors: values against broadcast `*` and `+`, and both
    /// backwards (the fused first-order one and the differentiable one) against differences.
    /// Four channels take the kernels' `SIMD4` path, five the general one.
    func testWeightedSum() throws {
        for channels in [5, 4] {
            let v0 = r([4, 3, channels], seed: 11), v1 = r([4, 3, channels], seed: 12), unit = r([4, 3, 1], seed: 13)
            let w0 = r([4, 1, channels], seed: 14), w1 = r([4, 1, channels], seed: 15), w2 = r([4, 1, channels], seed: 16)
            let fused = try T.weightedSum([v0, v1, unit], weights: [w0, w1, w2])
            let composed = try v0 * w0 + v1 * w1 + unit * w2
            XCTAssertEqual(fused.shape, [4, 3, channels])
            for (a, b) in zip(fused.scalars, composed.scalars) { XCTAssertEqual(a, b, accuracy: 1e-14) }
            try GradientCheck.check([v0, v1, unit, w0, w1, w2]) {
                try T.weightedSum([$0[0], $0[1], $0[2]], weights: [$0[3], $0[4], $0[5]])
            }
            // The result feeding a nonlinearity, so that the second order passes through the forward too.
            try GradientCheck.check([unit, v1, w0, w1]) {
                try T.weightedSum([$0[0], $0[1]], weights: [$0[2], $0[3]]).tanh()
            }
            // A constant vector among the inputs: its gradient is not asked for.
            let constant = T.ones([4, 3, channels])
            try GradientCheck.check([w0]) { try T.weightedSum([constant], weights: [$0[0]]).sin() }
        }
        let v0 = r([4, 3, 5], seed: 11), w0 = r([4, 1, 5], seed: 14), w1 = r([4, 1, 5], seed: 15)
        XCTAssertThrowsError(try T.weightedSum([v0], weights: [r([4, 5], seed: 17)]))
        XCTAssertThrowsError(try T.weightedSum([r([4, 2, 5], seed: 18)], weights: [w0, w1]))
        XCTAssertThrowsError(try T.weightedSum([r([4, 3, 2], seed: 19)], weights: [w0]))
    }

    func testVectorChannelContractions() throws {
        let a = r([4, 3, 5], seed: 21), v = r([4, 3, 5], seed: 22), unit = r([4, 3, 1], seed: 23), w = r([4, 1, 5], seed: 24)
        let dot = try T.spatialDot(a, v), sharedDot = try T.spatialDot(a, unit), channels = try T.channelDot(a, w)
        XCTAssertEqual(dot.shape, [4, 1, 5])
        XCTAssertEqual(channels.shape, [4, 3, 1])
        for (p, q) in zip(dot.scalars, try (a * v).sum(axis: 1, keepingDimensions: true).scalars) { XCTAssertEqual(p, q, accuracy: 1e-14) }
        for (p, q) in zip(sharedDot.scalars, try (a * unit).sum(axis: 1, keepingDimensions: true).scalars) { XCTAssertEqual(p, q, accuracy: 1e-14) }
        for (p, q) in zip(channels.scalars, try (a * w).sum(axis: 2, keepingDimensions: true).scalars) { XCTAssertEqual(p, q, accuracy: 1e-14) }
        // First and second order, also through a nonlinearity so that the second order is not zero.
        try GradientCheck.check([a, v]) { try T.spatialDot($0[0], $0[1]).tanh() }
        try GradientCheck.check([a, unit]) { try T.spatialDot($0[0], $0[1]).sin() }
        try GradientCheck.check([a, w]) { try T.channelDot($0[0], $0[1]).tanh() }
        // The second backward of weightedSum runs through both contractions.
        try GradientCheck.check([unit, w]) { try T.weightedSum([$0[0]], weights: [$0[1]]).square().sum(axis: 2) }
        XCTAssertThrowsError(try T.spatialDot(a, r([4, 2, 5], seed: 25)))
        XCTAssertThrowsError(try T.spatialDot(a, r([4, 3, 2], seed: 26)))
        XCTAssertThrowsError(try T.channelDot(a, r([4, 3, 5], seed: 27)))
        XCTAssertThrowsError(try T.channelDot(r([4, 5], seed: 28), w))
    }

    func testScalarOperations() throws {
        let a = r([3, 4], 0.5...2)
        try GradientCheck.check([a]) { (($0[0] + 2) * 3 - 1) / 2 }
        try GradientCheck.check([a]) { 1.5 - $0[0] }
        try GradientCheck.check([a]) { 2 / $0[0] }
        try GradientCheck.check([a]) { -$0[0] }
        try GradientCheck.check([a]) { $0[0].pow(2) }
        try GradientCheck.check([a]) { $0[0].pow(1.7) }
    }

    func testElementwiseFunctions() throws {
        let a = r([3, 7], -2...2), p = r([3, 7], 0.3...3, seed: 5)
        try GradientCheck.check([a]) { $0[0].exp() }
        try GradientCheck.check([p]) { $0[0].log() }
        try GradientCheck.check([p]) { $0[0].sqrt() }
        try GradientCheck.check([a]) { $0[0].sin() }
        try GradientCheck.check([a]) { $0[0].cos() }
        try GradientCheck.check([a]) { $0[0].tanh() }
        try GradientCheck.check([a]) { $0[0].sigmoid() }
        try GradientCheck.check([a]) { $0[0].silu() }
        try GradientCheck.check([a]) { $0[0].softplus() }
        try GradientCheck.check([a]) { $0[0].gaussian(gamma: 1.3) }
        XCTAssertEqual(a.gaussian(gamma: 1.3).scalars, (try a * a * -1.3).exp().scalars)
        let single = try Tensor<Float>(shape: [5], scalars: [-3, -0.4, 0, 0.9, 12])
        XCTAssertEqual(single.gaussian(gamma: 1.5).scalars, (try single * single * -1.5).exp().scalars)
        // The fused backwards of silu and sigmoid, differentiated twice (third order of silu).
        let g = r([3, 7], seed: 9)
        try GradientCheck.check([a, g]) { try T.siluGradient($0[0], $0[1]) }
        try GradientCheck.check([a, g]) { try T.sigmoidGradient($0[0], $0[1]) }
        // One input asked for at a time (the fused second-order pass writes one output), and a
        // broadcast incoming gradient (the composed fallback).
        try GradientCheck.check([a]) { try T.siluGradient($0[0], g) }
        try GradientCheck.check([g]) { try T.siluGradient(a, $0[0]) }
        try GradientCheck.check([a]) { try T.sigmoidGradient($0[0], g) }
        try GradientCheck.check([g]) { try T.sigmoidGradient(a, $0[0]) }
        let row = r([1, 7], seed: 10)
        try GradientCheck.check([a, row]) { try T.siluGradient($0[0], $0[1]) }
        try GradientCheck.check([a, row]) { try T.sigmoidGradient($0[0], $0[1]) }
        try GradientCheck.check([a]) { $0[0].square() }
        try GradientCheck.check([p]) { $0[0].reciprocal() }
        // Kinked functions: the inputs keep clear of the kinks.
        try GradientCheck.check([p]) { try ($0[0] - 1.5).relu() * $0[0] }
        try GradientCheck.check([a]) { try $0[0].abs() * $0[0] }
        try GradientCheck.check([a]) { try $0[0].clamped(min: -0.5, max: 0.7) * $0[0] }
    }

    func testReductions() throws {
        let a = r([4, 3, 5])
        try GradientCheck.check([a]) { try $0[0].sum(axis: 1) }
        try GradientCheck.check([a]) { try $0[0].sum(axes: [0, 2], keepingDimensions: true) }
        try GradientCheck.check([a]) { try $0[0].mean(axis: -1) }
        try GradientCheck.check([a]) { $0[0].sum().square() }
        try GradientCheck.check([a]) { $0[0].mean() }
        try GradientCheck.check([a]) { try $0[0].sum(toShape: [3, 1]) }
        try GradientCheck.check([a]) { try $0[0].max(axis: 2) * $0[0].sum(axis: 2) }
        try GradientCheck.check([a]) { try $0[0].min(axis: 0, keepingDimensions: true) * $0[0] }
    }

    func testShapes() throws {
        let a = r([4, 6]), b = r([4, 2], seed: 2)
        try GradientCheck.check([a]) { try $0[0].reshaped([2, -1, 3]) * $0[0].reshaped([2, 4, 3]) }
        try GradientCheck.check([a]) { try $0[0].transposed() * $0[0].transposed() }
        try GradientCheck.check([a]) { try $0[0].reshaped([2, 2, 6]).permuted([2, 0, 1]).square() }
        try GradientCheck.check([a, b]) { try concat([$0[0], $0[1], $0[0]], axis: 1).square() }
        try GradientCheck.check([a]) {
            let p = try $0[0].split(axis: 1, parts: 3)
            return try p[0] * p[1] + p[2]
        }
        try GradientCheck.check([a]) {
            let p = try $0[0].split(axis: 0, sizes: [1, 3])
            return try p[0] * p[1]
        }
        // The pieces' gradients added in place into one their input already has from a direct
        // use (which the backward pass must copy first, not overwrite).
        try GradientCheck.check([a]) {
            let t = $0[0].tanh()
            let p = try t.split(axis: 1, parts: 3)
            return try concat([p[0] * p[1], p[2], p[2]], axis: 1) * t
        }
        try GradientCheck.check([r([3, 4, 5], seed: 3)]) {
            let p = try $0[0].split(axis: 1, sizes: [1, 3])
            return try (p[1] * p[0]).sin() + $0[0].slice(axis: 1, start: 1, length: 3)
        }
        try GradientCheck.check([a]) { try $0[0].unsqueezed(1).expanded(to: [4, 3, 6]).square() }
    }

    func testMatrixProducts() throws {
        let a = r([5, 3]), b = r([3, 4], seed: 2), at = r([3, 5], seed: 3), bt = r([4, 3], seed: 4)
        try GradientCheck.check([a, b]) { try matmul($0[0], $0[1]).square() }
        try GradientCheck.check([at, b]) { try matmul($0[0], $0[1], transposeA: true).square() }
        try GradientCheck.check([a, bt]) { try matmul($0[0], $0[1], transposeB: true).square() }
        try GradientCheck.check([at, bt]) { try matmul($0[0], $0[1], transposeA: true, transposeB: true).square() }
        let x = r([6, 3, 4], seed: 5), w = r([5, 4], seed: 6), bias = r([5], seed: 7)
        try GradientCheck.check([x, w]) { try linear($0[0], weight: $0[1]).silu() }
        try GradientCheck.check([x, w, bias]) { try linear($0[0], weight: $0[1], bias: $0[2]).silu() }
    }

    func testGatherAndScatter() throws {
        let x = r([5, 3, 2])
        let index: [Int32] = [0, 4, 4, 2, 1, 0, 3, 2]
        try GradientCheck.check([x]) { try $0[0].gather(rows: index).square() }
        let e = r([8, 3], seed: 2)
        try GradientCheck.check([e]) { try $0[0].scatterAdd(rows: index, count: 6).square() }
        XCTAssertThrowsError(try x.gather(rows: [5]))
        XCTAssertThrowsError(try e.scatterAdd(rows: [0, 1], count: 2))
    }

    func testNormLayerNormAndSelect() throws {
        let v = r([4, 3, 5])
        try GradientCheck.check([v]) { try $0[0].norm(axis: 1) }
        try GradientCheck.check([v]) { try $0[0].norm(axis: 1, keepingDimensions: true) * $0[0] }
        let x = r([4, 6], seed: 2), w = r([6], seed: 3), b = r([6], seed: 4)
        try GradientCheck.check([x, w, b]) { try $0[0].layerNorm(weight: $0[1], bias: $0[2]) }
        let mask = x.greater(than: 0)
        try GradientCheck.check([x, b]) { try select(mask, $0[0].exp(), $0[1]) }
        let d = r([4, 6], 0.5...1, seed: 6)
        try GradientCheck.check([x, d]) { try T.divideOrZero($0[0], $0[1]) }
    }

    /// The norm of a zero vector has gradient zero (not NaN), as ENINet's initial vectors are zero.
    func testNormOfZeroVector() throws {
        let v = try T(shape: [1, 3, 2], scalars: [0, 1, 0, 2, 0, 2], requiresGrad: true)
        let g = try grad(of: try v.norm(axis: 1).sum(), wrt: [v])[0]
        XCTAssertEqual(g.scalars, [0, 1.0 / 3, 0, 2.0 / 3, 0, 2.0 / 3])
    }

    /// A tensor that feeds many operations gets its gradient contributions summed in one buffer
    /// (in place): the sum must be right to first and second order, and no tensor that anyone
    /// else holds (the caller's seed, passed straight through by `+`; a reshape sharing its
    /// storage) may change.
    func testGradientContributionsSumWithoutTouchingSharedTensors() throws {
        let x = r([3, 4], seed: 21), w = r([3, 4], seed: 22)
        try GradientCheck.check([x]) { v in
            let a = v[0]
            return try a * w + a.silu() + a * a + (a.reshaped([4, 3]) * 2).reshaped([3, 4]) + a.exp()
        }
        let leaf = try T(shape: [2, 2], scalars: [1, 2, 3, 4], requiresGrad: true)
        let seed = try T(shape: [2, 2], scalars: [1, 1, 1, 1])
        let g = try grad(of: try leaf + leaf + leaf + leaf, wrt: [leaf], seed: seed)[0]
        XCTAssertEqual(g.scalars, [4, 4, 4, 4])
        XCTAssertEqual(seed.scalars, [1, 1, 1, 1])
        // A first contribution that is a view of the seed, then others added after it.
        let viewed = try leaf.reshaped([4]).reshaped([2, 2])
        let h = try grad(of: try viewed + leaf * 3 + leaf, wrt: [leaf], seed: seed)[0]
        XCTAssertEqual(h.scalars, [5, 5, 5, 5])
        XCTAssertEqual(seed.scalars, [1, 1, 1, 1])
        // A differentiable gradient whose constant contributions are summed before (or after)
        // one that depends on a parameter: d/dw Σ ∂y/∂x = 1 for y = x·c1 + x·c2 + x·w, in
        // either order of the terms.
        let point = try T(shape: [3], scalars: [0.5, -1, 2], requiresGrad: true)
        let c1 = try T(shape: [3], scalars: [1, 2, 3]), c2 = try T(shape: [3], scalars: [-2, 0.5, 4])
        let parameter = try T(shape: [3], scalars: [0.3, 0.7, -0.2], requiresGrad: true)
        for terms in [[c1, c2, parameter], [parameter, c1, c2]] {
            let y = try (point * terms[0] + point * terms[1] + point * terms[2]).sum()
            let gx = try grad(of: y, wrt: [point], createGraph: true)[0]
            XCTAssertLessThan(zip(gx.scalars, [-0.7, 3.2, 6.8]).map { abs($0 - $1) }.max() ?? 1, 1e-12)
            let gw = try grad(of: gx.sum(), wrt: [parameter])[0]
            XCTAssertEqual(gw.scalars, [1, 1, 1])
        }
    }

    func testShapeErrorsThrow() throws {
        XCTAssertThrowsError(try r([2, 3]) + r([3, 2]))
        XCTAssertThrowsError(try matmul(r([2, 3]), r([2, 3])))
        XCTAssertThrowsError(try r([2, 3]).reshaped([4]))
        XCTAssertThrowsError(try r([2, 3]).sum(axis: 2))
        XCTAssertThrowsError(try grad(of: r([2]), wrt: []))
    }
}
