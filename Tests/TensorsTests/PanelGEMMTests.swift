import XCTest
@testable import Tensors

/// Products with a B packed once into column panels (``PanelMatrix``) equal a plain sum over the
/// inner dimension: every panel width (16, and 8 last), tiles of six rows with a partial last one,
/// several blocks of rows, strided A and C, beta 0 and 1, on one thread and shared among two.
final class PanelGEMMTests: XCTestCase {
    struct Case { let m: Int, n: Int, k: Int, lda: Int, ldb: Int, ldc: Int }

    private let cases = [
        Case(m: 21, n: 256, k: 256, lda: 256, ldb: 256, ldc: 256),   // md17's atoms
        Case(m: 63, n: 264, k: 33, lda: 35, ldb: 270, ldc: 266),     // a last panel of eight, strides
        Case(m: 1, n: 24, k: 700, lda: 700, ldb: 24, ldc: 24),       // one row, a tile with five repeated
        Case(m: 5, n: 136, k: 8, lda: 8, ldb: 136, ldc: 140),        // fewer rows than a tile
        Case(m: 401, n: 144, k: 129, lda: 131, ldb: 144, ldc: 150),  // three blocks of rows, the last partial
    ]

    private func check(threads: Int) throws {
        let saved = (TensorThreads.count, TensorThreads.blasCount), smallKernels = SmallKernelGEMM.isEnabled
        defer { TensorThreads.set(blas: saved.1, loops: saved.0); SmallKernelGEMM.isEnabled = smallKernels }
        TensorThreads.set(threads)
        // Panels are built on kernel sets without OpenBLAS's small-matrix kernels; this runs them on any.
        SmallKernelGEMM.isEnabled = false
        for c in cases {
            var state: UInt64 = 0x9E37_79B9_7F4A_7C15 &* UInt64(c.m * 1000 + c.n)
            func next() -> Float {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return Float(Int(state >> 40) % 2001 - 1000) / 1000
            }
            let a = (0..<(c.m * c.lda)).map { _ in next() }, b = (0..<(c.k * c.ldb)).map { _ in next() }
            let start = (0..<(c.m * c.ldc)).map { _ in next() }
            let packed = try XCTUnwrap(b.withUnsafeBufferPointer { PanelMatrix($0.baseAddress!, rows: c.k, columns: c.n, ldb: c.ldb) })
            for accumulate in [false, true] {
                var y = start
                a.withUnsafeBufferPointer { ap in y.withUnsafeMutableBufferPointer { yp in
                    packed.product(rows: c.m, a: ap.baseAddress!, lda: c.lda, accumulate: accumulate, c: yp.baseAddress!, ldc: c.ldc)
                } }
                var worst: Double = 0
                for i in 0..<c.m {
                    for j in 0..<c.ldc {
                        guard j < c.n else {
                            XCTAssertEqual(y[i * c.ldc + j], start[i * c.ldc + j], "\(c) wrote column \(j) past n")
                            continue
                        }
                        var sum = accumulate ? Double(start[i * c.ldc + j]) : 0
                        for q in 0..<c.k { sum += Double(a[i * c.lda + q]) * Double(b[q * c.ldb + j]) }
                        worst = max(worst, abs(Double(y[i * c.ldc + j]) - sum))
                    }
                }
                // Float sums of k products of magnitude ≤ 1.
                XCTAssertLessThan(worst, 2e-6 * Double(c.k), "\(c), accumulate \(accumulate), \(threads) threads")
            }
        }
    }

    func testPanelProductsEqualTheDirectSum() throws { try check(threads: 1) }

    func testPanelProductsOverTwoThreadsEqualTheDirectSum() throws { try check(threads: 2) }

    /// Panels only where a kernel takes them and they help.
    func testPanelsAreBuiltOnlyForFloatProductsTheyServe() {
        let smallKernels = SmallKernelGEMM.isEnabled
        defer { SmallKernelGEMM.isEnabled = smallKernels }
        let b = [Float](repeating: 1, count: 256 * 264), d = [Double](repeating: 1, count: 256 * 256)
        SmallKernelGEMM.isEnabled = true
        XCTAssertNil(b.withUnsafeBufferPointer { PanelMatrix($0.baseAddress!, rows: 256, columns: 256) },
                     "a kernel set with small-matrix kernels")
        SmallKernelGEMM.isEnabled = false
        func float(_ k: Int, _ n: Int) -> PanelMatrix<Float>? { b.withUnsafeBufferPointer { PanelMatrix($0.baseAddress!, rows: k, columns: n) } }
        XCTAssertNotNil(float(256, 256))
        XCTAssertNotNil(float(8, 264), "B of 8 × 264: wider than the in-place tiles take")
        XCTAssertNil(float(256, 260), "columns not a multiple of 8")
        XCTAssertNil(float(4, 256), "an inner dimension below 8")
        XCTAssertNil(float(32, 32), "a B the in-place tiles read from the cache")
        XCTAssertNil(d.withUnsafeBufferPointer { PanelMatrix($0.baseAddress!, rows: 256, columns: 256) }, "Double")
    }
}
