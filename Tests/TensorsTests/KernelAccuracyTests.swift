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

    /// (1 + 2⁻¹²)² − (1 + 2⁻¹¹) is 2⁻²⁴ exactly; the product alone rounds to 1 + 2⁻¹¹ (a tie,
    /// to even), so only a fused multiply-add keeps the 2⁻²⁴. FMA builds must fuse, others not.
    func testAddingTimesIsFusedExactlyWhenTheBuildTargetsFMA() {
        let a: Float = 1 + 0x1p-12, c: Float = -(1 + 0x1p-11)
        let expected: Float = FusedMultiplyAdd.isInstruction ? 0x1p-24 : 0
        XCTAssertEqual(c.adding(a, times: a), expected)
        XCTAssertEqual(SIMD8<Float>(repeating: c).adding(SIMD8(repeating: a), times: a), SIMD8(repeating: expected))
        let d: Double = 1 + 0x1p-27, e: Double = -(1 + 0x1p-26)
        XCTAssertEqual(e.adding(d, times: d), FusedMultiplyAdd.isInstruction ? 0x1p-54 : 0)
        #if arch(x86_64)
        // The package fuses wherever it targets the building CPU: one with AVX2, FMA, BMI2 and
        // F16C, unless ENINETMD_PORTABLE is set (Package.swift).
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.split(separator: "\n")
            .first { $0.hasPrefix("flags") }.map { Set($0.split(separator: " ").map(String.init)) } ?? []
        if ProcessInfo.processInfo.environment["ENINETMD_PORTABLE"] == nil, flags.isSuperset(of: ["avx2", "fma", "bmi2", "f16c"]) {
            XCTAssertTrue(FusedMultiplyAdd.isInstruction)
        }
        #endif
    }

    /// The eight-lane exp gives the scalar one's results bit for bit, special cases included.
    func testEightLaneExpEqualsTheScalarOne() {
        var inputs: [Float] = stride(from: Float(-110), to: 90, by: 0.0371).map { $0 }
        inputs += [0, -0.0, -104, -104.01, 88.72, 88.73, 88.75, 200, -200, .infinity, -.infinity, .nan, 1e-30, -1e-30]
        while inputs.count % 8 != 0 { inputs.append(1) }
        for start in stride(from: 0, to: inputs.count, by: 8) {
            let lanes = SIMD8<Float>(inputs[start..<start + 8])
            let wide = vectorizableExp(lanes)
            for i in 0..<8 {
                let scalar = vectorizableExp(lanes[i])
                XCTAssertTrue(wide[i] == scalar || (wide[i].isNaN && scalar.isNaN), "exp(\(lanes[i])): \(wide[i]) vs \(scalar)")
            }
        }
        let d = Double.tensorExp(SIMD8<Double>(-3, -1, 0, 0.5, 1, 2, 700, -800))
        for (i, x) in [-3.0, -1, 0, 0.5, 1, 2, 700, -800].enumerated() { XCTAssertEqual(d[i], Foundation.exp(x)) }
    }

    /// Within [−87, 87] the exp without special cases gives the general one's results bit for bit.
    func testNormalRangeExpEqualsTheGeneralOne() {
        var inputs: [Float] = stride(from: Float(-87), through: 87, by: 0.0293).map { $0 }
        inputs += [-87, 87, 0, -0.0, 1e-30, -1e-30, 86.99, -86.99]
        while inputs.count % 8 != 0 { inputs.append(1) }
        for start in stride(from: 0, to: inputs.count, by: 8) {
            let lanes = SIMD8<Float>(inputs[start..<start + 8])
            let bounded = Float.tensorExpInNormalRange(lanes), general = Float.tensorExp(lanes)
            for i in 0..<8 { XCTAssertEqual(bounded[i].bitPattern, general[i].bitPattern, "exp(\(lanes[i]))") }
        }
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

    /// Operands of different ranks (the shorter shape padded with leading ones), an output
    /// shape that is neither operand's, an empty axis against a broadcast one, and shapes that
    /// do not broadcast; and reductions whose axes repeat or count from the end, against the
    /// same reduction with each axis once.
    func testBroadcastOfDifferentRanksAndRepeatedReductionAxes() throws {
        var rng = SplitMix64(seed: 33)
        for (shapeA, shapeB) in [([4], [5, 3, 4]), ([5, 3, 4], [3, 1]), ([3, 1], [1, 4]), ([2, 1, 4], [3, 1]), ([], [2, 3])] {
            let a = Tensor<Double>.randomUniform(shapeA, in: -1...1, using: &rng)
            let b = Tensor<Double>.randomUniform(shapeB, in: -1...1, using: &rng)
            let y = try a * b
            let rank = max(shapeA.count, shapeB.count)
            let paddedA = [Int](repeating: 1, count: rank - shapeA.count) + shapeA
            let paddedB = [Int](repeating: 1, count: rank - shapeB.count) + shapeB
            let out = zip(paddedA, paddedB).map { max($0, $1) }
            XCTAssertEqual(y.shape, out, "\(shapeA) * \(shapeB)")
            func flat(_ index: [Int], _ shape: [Int]) -> Int { zip(index, shape).reduce(0) { $0 * $1.1 + ($1.1 == 1 ? 0 : $1.0) } }
            let av = a.scalars, bv = b.scalars, yv = y.scalars
            var index = [Int](repeating: 0, count: rank)
            for q in 0..<out.reduce(1, *) {
                var rem = q
                for d in stride(from: rank - 1, through: 0, by: -1) { index[d] = rem % out[d]; rem /= out[d] }
                XCTAssertEqual(yv[q], av[flat(index, paddedA)] * bv[flat(index, paddedB)], "\(shapeA) * \(shapeB) at \(index)")
            }
        }
        let empty = try Tensor<Double>.zeros([0, 3]) + Tensor<Double>.zeros([1, 3])
        XCTAssertEqual(empty.shape, [0, 3])
        XCTAssertThrowsError(try Tensor<Double>.zeros([2, 3]) * Tensor<Double>.zeros([3, 2]))
        XCTAssertThrowsError(try Tensor<Double>.zeros([0, 3]) + Tensor<Double>.zeros([2, 3]))

        let x = Tensor<Double>.randomUniform([3, 4, 5], in: -1...1, using: &rng)
        let once = try x.sum(axes: [0, 2]).scalars
        XCTAssertEqual(once.count, 4)
        for axes in [[2, 0, 2], [0, -1], [-3, 2, 0]] {
            let repeated = try x.sum(axes: axes)
            XCTAssertEqual(repeated.shape, [4], "axes \(axes)")
            for (u, v) in zip(repeated.scalars, once) { XCTAssertEqual(u, v, accuracy: 1e-13, "axes \(axes)") }
        }
        XCTAssertEqual(try x.sum(axes: [1, 1, 2], keepingDimensions: true).shape, [3, 1, 1])
        XCTAssertThrowsError(try x.sum(axes: [3]))
    }

    /// Rows of four against one value per row, in either order, run two rows to an eight-lane
    /// operation for `+ − × ÷`: an odd row count leaves a last row to the scalar loop, and 9001
    /// rows are split over the threads there are. Both precisions, against element-by-element
    /// arithmetic (the same single rounding, so equal).
    func testFourWideRowsAgainstOneValuePerRowMatchElementArithmetic() throws {
        func check<T: TensorScalar>(_: T.Type) throws {
            var rng = SplitMix64(seed: 45)
            for rows in [1, 2, 7, 9001] {
                let wide = Tensor<T>.randomUniform([rows, 4], in: 0.5...2, using: &rng)
                let perRow = Tensor<T>.randomUniform([rows, 1], in: 0.5...2, using: &rng)
                let w = wide.scalars, p = perRow.scalars
                let cases: [(String, Tensor<T>, (T, T) -> T)] = [
                    ("+", try wide + perRow, { $0 + $1 }), ("−", try wide - perRow, { $0 - $1 }),
                    ("×", try wide * perRow, { $0 * $1 }), ("÷", try wide / perRow, { $0 / $1 }),
                ]
                let swapped: [(String, Tensor<T>, (T, T) -> T)] = [
                    ("+", try perRow + wide, { $0 + $1 }), ("−", try perRow - wide, { $0 - $1 }),
                    ("×", try perRow * wide, { $0 * $1 }), ("÷", try perRow / wide, { $0 / $1 }),
                ]
                for (name, y, f) in cases {
                    XCTAssertEqual(y.shape, [rows, 4])
                    let got = y.scalars
                    for i in 0..<(rows * 4) where got[i] != f(w[i], p[i / 4]) {
                        XCTFail("\(T.self) [\(rows), 4] \(name) [\(rows), 1] at \(i): \(got[i]) against \(f(w[i], p[i / 4]))")
                        break
                    }
                }
                for (name, y, f) in swapped {
                    XCTAssertEqual(y.shape, [rows, 4])
                    let got = y.scalars
                    for i in 0..<(rows * 4) where got[i] != f(p[i / 4], w[i]) {
                        XCTFail("\(T.self) [\(rows), 1] \(name) [\(rows), 4] at \(i): \(got[i]) against \(f(p[i / 4], w[i]))")
                        break
                    }
                }
            }
        }
        try check(Float.self)
        try check(Double.self)
    }

    /// One value per row copied along the row (`expanded`), the row filled with it: rows of the
    /// literal lengths 4 and 8 and of 7, a rank-3 source whose axes merge, and enough rows to be
    /// split over the threads there are.
    func testExpandingOneValuePerRowFillsEachRow() throws {
        var rng = SplitMix64(seed: 46)
        for (source, target) in [([9001, 1], [9001, 4]), ([5, 3, 1], [5, 3, 8]), ([2, 1], [2, 7]), ([3, 1, 1], [3, 2, 5])] {
            let x = Tensor<Double>.randomUniform(source, in: -1...1, using: &rng)
            let y = try x.expanded(to: target)
            XCTAssertEqual(y.shape, target)
            let width = target.reduce(1, *) / x.count
            let v = x.scalars, got = y.scalars
            for i in 0..<got.count where got[i] != v[i / width] {
                XCTFail("\(source) to \(target) at \(i): \(got[i]) against \(v[i / width])")
                break
            }
        }
    }

    /// Every broadcast pattern of two rank-3 and rank-4 operands, with rows of 1 to 9 elements
    /// (4 and 8 take literal-length loops, rank 3 and up with short rows walks blocks), against
    /// an index-by-index loop; and the channel sums of `productSum` and `weightedSum` at 4 and 8
    /// channels against their compositions.
    func testShortRowBroadcastsMatchIndexLoops() throws {
        var rng = SplitMix64(seed: 21)
        for rank in [3, 4] {
            for inner in 1...9 {
                let full = Array([5, 3, 2].prefix(rank - 1)) + [inner]
                // Each axis of each operand either full or broadcast (size 1).
                for mask in 0..<(1 << (2 * rank)) {
                    let shapeA = full.enumerated().map { mask >> $0.offset & 1 == 1 ? 1 : $0.element }
                    let shapeB = full.enumerated().map { mask >> (rank + $0.offset) & 1 == 1 ? 1 : $0.element }
                    let a = Tensor<Float>.randomUniform(shapeA, in: -1...1, using: &rng)
                    let b = Tensor<Float>.randomUniform(shapeB, in: -1...1, using: &rng)
                    let y = try a * b, z = try a - b
                    let out = zip(shapeA, shapeB).map { max($0, $1) }
                    XCTAssertEqual(y.shape, out)
                    let av = a.scalars, bv = b.scalars, yv = y.scalars, zv = z.scalars
                    func flat(_ index: [Int], _ shape: [Int]) -> Int {
                        zip(index, shape).reduce(0) { $0 * $1.1 + ($1.1 == 1 ? 0 : $1.0) }
                    }
                    var index = [Int](repeating: 0, count: rank)
                    for q in 0..<out.reduce(1, *) {
                        var rem = q
                        for d in stride(from: rank - 1, through: 0, by: -1) { index[d] = rem % out[d]; rem /= out[d] }
                        let x = av[flat(index, shapeA)], w = bv[flat(index, shapeB)]
                        XCTAssertEqual(yv[q], x * w, "\(shapeA) * \(shapeB) at \(index)")
                        XCTAssertEqual(zv[q], x - w, "\(shapeA) - \(shapeB) at \(index)")
                    }
                }
            }
        }
        // Reductions over the middle axis, with row lengths around the 32-element blocks and
        // lengths that leave a partial block.
        for inner in [2, 3, 4, 5, 8, 12, 16, 31, 33] {
            for length in [1, 7, 8, 9, 63] {
                let x = Tensor<Double>.randomUniform([3, length, inner], in: -1...1, using: &rng)
                let xv = x.scalars
                let sum = try x.sum(axis: 1).scalars, hi = try x.max(axis: 1).scalars, lo = try x.min(axis: 1).scalars
                for o in 0..<3 {
                    for i in 0..<inner {
                        let column = (0..<length).map { xv[(o * length + $0) * inner + i] }
                        XCTAssertEqual(sum[o * inner + i], column.reduce(0, +), accuracy: 1e-13, "sum inner \(inner) length \(length)")
                        XCTAssertEqual(hi[o * inner + i], column.max() ?? .nan, "max inner \(inner) length \(length)")
                        XCTAssertEqual(lo[o * inner + i], column.min() ?? .nan, "min inner \(inner) length \(length)")
                    }
                }
            }
        }
        // Large enough to be split over threads (the machine's count; the grain is 2^15 operations).
        let wide = Tensor<Float>.randomUniform([4, 9000, 4], in: -1...1, using: &rng)
        let wideSums = try wide.sum(axis: 1).scalars, wv = wide.scalars
        for o in 0..<4 { for i in 0..<4 {
            var expected: Double = 0
            for l in 0..<9000 { expected += Double(wv[(o * 9000 + l) * 4 + i]) }
            XCTAssertEqual(Double(wideSums[o * 4 + i]), expected, accuracy: 1e-3)
        } }
        let rowsA = Tensor<Float>.randomUniform([6000, 3, 4], in: -1...1, using: &rng)
        let rowsB = Tensor<Float>.randomUniform([6000, 1, 4], in: -1...1, using: &rng)
        let product = try (rowsA * rowsB).scalars, pa = rowsA.scalars, pb = rowsB.scalars
        for q in 0..<product.count {
            let r = q / 12, c = q % 4
            XCTAssertEqual(product[q], pa[q] * pb[r * 4 + c])
        }
        for channels in [3, 4, 8] {
            let v = Tensor<Double>.randomUniform([7, 3, channels], in: -1...1, using: &rng, requiresGrad: true)
            let u = Tensor<Double>.randomUniform([7, 3, channels], in: -1...1, using: &rng, requiresGrad: true)
            let shared = Tensor<Double>.randomUniform([7, 3, 1], in: -1...1, using: &rng, requiresGrad: true)
            let w = (0..<3).map { _ in Tensor<Double>.randomUniform([7, 1, channels], in: -1...1, using: &rng, requiresGrad: true) }
            let summed = try Tensor.productSum(v, u, toShape: [7, 1, channels]).scalars
            let expected = try (v * u).sum(axis: 1, keepingDimensions: true).scalars
            for (p, q) in zip(summed, expected) { XCTAssertEqual(p, q, accuracy: 1e-14) }
            let fused = try Tensor.weightedSum([v, u, shared], weights: w).scalars
            let composed = try (v * w[0] + u * w[1] + shared * w[2]).scalars
            for (p, q) in zip(fused, composed) { XCTAssertEqual(p, q, accuracy: 1e-14) }
            // The first-order backward (one fused pass) against the composition's.
            let seed = Tensor<Double>.randomUniform([7, 3, channels], in: -1...1, using: &rng)
            let inputs = [v, u, shared] + w
            let g1 = try grad(of: (try Tensor.weightedSum([v, u, shared], weights: w) * seed).sum(), wrt: inputs)
            let g2 = try grad(of: (try (v * w[0] + u * w[1] + shared * w[2]) * seed).sum(), wrt: inputs)
            for (x, y) in zip(g1, g2) {
                XCTAssertEqual(x.shape, y.shape)
                for (p, q) in zip(x.scalars, y.scalars) { XCTAssertEqual(p, q, accuracy: 1e-13) }
            }
        }
    }
}
