import XCTest
@testable import Tensors

/// The Float GEMM cut into small-kernel calls gives the product a plain loop gives, in every
/// form ENINet calls it: `A·B` in row blocks with a remainder, `A·Bᵀ` through a transposed copy,
/// `Aᵀ·B` summed over pieces of k, with strides and with beta 0 and 1; and uncut, as on kernel
/// sets without the small kernels, where beta 0 is a zero fill and an accumulating product,
/// weight gradients of the triplet width are sums of outer products (`NarrowGEMM`) and narrow
/// `A·B` runs in register tiles (`TileGEMM`); and, on every kernel set, products with four
/// columns in register loops (`FourColumnGEMM`).
final class SmallKernelGEMMTests: XCTestCase {
    struct Case { let ta: Bool, tb: Bool, m: Int, n: Int, k: Int, lda: Int, ldb: Int, ldc: Int, beta: Float }

    func testBlockedProductsEqualTheDirectSum() {
        let wasEnabled = SmallKernelGEMM.isEnabled
        defer { SmallKernelGEMM.isEnabled = wasEnabled }
        for enabled in [true, false] {
            SmallKernelGEMM.isEnabled = enabled
            checkProducts()
        }
    }

    /// The register tiles (``TileGEMM``) with their rows shared among two threads: the chunks
    /// must cover every row once, whole tiles and the rows after them.
    func testTileProductsOverTwoThreadsEqualTheDirectSum() {
        let wasEnabled = SmallKernelGEMM.isEnabled, threads = TensorThreads.count, blas = TensorThreads.blasCount
        defer { SmallKernelGEMM.isEnabled = wasEnabled; TensorThreads.set(blas: blas, loops: threads) }
        SmallKernelGEMM.isEnabled = false
        TensorThreads.set(2)
        checkProducts()
    }

    func testTileProductsTakeOnlyNarrowCachedOperands() {
        let cases: [(transposed: Bool, m: Int, n: Int, k: Int, taken: Bool, why: String)] = [
            (false, 3060, 32, 32, true, ""), (false, 6, 128, 128, true, ""), (false, 210, 40, 1, true, ""),
            (false, 5, 32, 32, false, "fewer rows than a tile"), (false, 3060, 36, 32, false, "columns not a multiple of 8"),
            (false, 3060, 136, 32, false, "wider than 128 columns"), (false, 3060, 128, 129, false, "B over 64 KB"),
            (false, 3060, 32, 0, false, "no inner dimension"),
            (true, 32, 32, 2450, true, ""), (true, 128, 128, 256, true, ""),
            (true, 32, 32, 255, false, "too few summed rows"), (true, 129, 32, 2450, false, "over 128 rows of C"),
            (true, 32, 4, 2450, false, "columns not a multiple of 8"),
        ]
        for c in cases {
            let taken = c.transposed ? TileGEMM.takesTransposed(m: c.m, n: c.n, k: c.k) : TileGEMM.takes(m: c.m, n: c.n, k: c.k)
            XCTAssertEqual(taken, c.taken, "\(c.transposed ? "Aᵀ·B" : "A·B") \(c.m)×\(c.n)×\(c.k): \(c.why)")
        }
    }

    /// Products with four columns (``FourColumnGEMM``): contiguous `[m, 4] · [4, 4]` in row pairs
    /// with an odd row after them, the eight-row loop with strides, rows after whole blocks and
    /// fewer rows than a block, `A·Bᵀ` through the copied transpose, a transposed B too long
    /// for that copy (left to BLAS), and the dot products of long inner dimensions.
    private func fourColumnCases(beta: Float) -> [Case] {
        [Case(ta: false, tb: false, m: 4375, n: 4, k: 4, lda: 4, ldb: 4, ldc: 4, beta: beta),
         Case(ta: false, tb: true, m: 1, n: 4, k: 4, lda: 4, ldb: 4, ldc: 4, beta: beta),
         Case(ta: false, tb: false, m: 307, n: 4, k: 4, lda: 6, ldb: 5, ldc: 7, beta: beta),
         Case(ta: false, tb: false, m: 918, n: 4, k: 32, lda: 32, ldb: 4, ldc: 4, beta: beta),
         Case(ta: false, tb: false, m: 7, n: 4, k: 17, lda: 19, ldb: 4, ldc: 4, beta: beta),
         Case(ta: false, tb: true, m: 4374, n: 4, k: 16, lda: 16, ldb: 16, ldc: 4, beta: beta),
         Case(ta: false, tb: true, m: 45, n: 4, k: 9, lda: 11, ldb: 13, ldc: 5, beta: beta),
         Case(ta: false, tb: true, m: 20, n: 4, k: 300, lda: 300, ldb: 300, ldc: 4, beta: beta),
         // Dot products from an inner dimension of 64 on (a multiple of 8): an odd row after the
         // pairs, strides, both layouts of B, one pair only; 260 (not a multiple of 8, and past
         // the copy's limit) stays with the row loop.
         Case(ta: false, tb: false, m: 919, n: 4, k: 256, lda: 256, ldb: 4, ldc: 4, beta: beta),
         Case(ta: false, tb: true, m: 33, n: 4, k: 72, lda: 75, ldb: 80, ldc: 6, beta: beta),
         Case(ta: false, tb: false, m: 2, n: 4, k: 64, lda: 64, ldb: 5, ldc: 4, beta: beta),
         Case(ta: false, tb: false, m: 17, n: 4, k: 260, lda: 260, ldb: 4, ldc: 4, beta: beta)]
    }

    /// The four-column loops in Double, where `tensorGEMM` otherwise calls BLAS: the same cases.
    func testFourColumnProductsInDoubleEqualTheDirectSum() {
        var rng = SplitMix64(seed: 11)
        for c in fourColumnCases(beta: 0) + fourColumnCases(beta: 1) {
            let a = (0..<c.m * c.lda).map { _ in Double.random(in: -1...1, using: &rng) }
            let b = (0..<(c.tb ? c.n : c.k) * c.ldb).map { _ in Double.random(in: -1...1, using: &rng) }
            let c0 = (0..<c.m * c.ldc).map { j in c.beta == 0 && j % c.ldc < c.n ? Double.nan : Double(j % 5) }
            var got = c0
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in got.withUnsafeMutableBufferPointer { cp in
                Double.tensorGEMM(transposeA: false, transposeB: c.tb, m: c.m, n: c.n, k: c.k, alpha: 1,
                                  a: ap.baseAddress!, lda: c.lda, b: bp.baseAddress!, ldb: c.ldb,
                                  beta: Double(c.beta), c: cp.baseAddress!, ldc: c.ldc)
            } } }
            for i in 0..<c.m {
                for j in 0..<c.ldc {
                    guard j < c.n else { XCTAssertEqual(got[i * c.ldc + j], c0[i * c.ldc + j], "\(c): outside the product"); continue }
                    var sum = Double(c.beta) * c0[i * c.ldc + j]
                    if c.beta == 0 { sum = 0 }
                    for q in 0..<c.k { sum += a[i * c.lda + q] * (c.tb ? b[j * c.ldb + q] : b[q * c.ldb + j]) }
                    XCTAssertEqual(got[i * c.ldc + j], sum, accuracy: 1e-12 * Double(c.k + 1), "\(c) row \(i) column \(j)")
                }
            }
        }
    }

    private func checkProducts() {
        var cases: [Case] = []
        for beta: Float in [0, 1] {
            // A·B: 1e6 / (256·256) = 15 rows per call at most, so 12-row calls and a 6-row remainder.
            cases.append(Case(ta: false, tb: false, m: 42, n: 256, k: 256, lda: 256, ldb: 256, ldc: 256, beta: beta))
            // A B too large to stay cached, in column blocks: three of 256, and two uneven ones
            // (304 and 296) with strides.
            cases.append(Case(ta: false, tb: false, m: 20, n: 768, k: 256, lda: 256, ldb: 768, ldc: 768, beta: beta))
            cases.append(Case(ta: false, tb: false, m: 50, n: 600, k: 200, lda: 203, ldb: 610, ldc: 620, beta: beta))
            // Row strides wider than the rows (a column block of a wider matrix).
            cases.append(Case(ta: false, tb: false, m: 301, n: 96, k: 64, lda: 80, ldb: 100, ldc: 110, beta: beta))
            // A·Bᵀ at enough rows to be transposed, and at too few.
            cases.append(Case(ta: false, tb: true, m: 1001, n: 32, k: 48, lda: 48, ldb: 48, ldc: 32, beta: beta))
            cases.append(Case(ta: false, tb: true, m: 21, n: 64, k: 32, lda: 32, ldb: 40, ldc: 64, beta: beta))
            // Aᵀ·B over 3001 rows of A and B: pieces of k accumulate into C.
            cases.append(Case(ta: true, tb: false, m: 32, n: 96, k: 3001, lda: 32, ldb: 96, ldc: 96, beta: beta))
            // Too small to be cut, and the one form never cut.
            cases.append(Case(ta: false, tb: false, m: 5, n: 7, k: 3, lda: 3, ldb: 7, ldc: 7, beta: beta))
            cases.append(Case(ta: true, tb: true, m: 33, n: 17, k: 65, lda: 33, ldb: 65, ldc: 17, beta: beta))
            // Register tiles: six-row tiles and 1 to 5 rows after them, 16-column blocks and an
            // 8-column one, k of 1, the largest B taken, strides.
            cases.append(Case(ta: false, tb: false, m: 3061, n: 32, k: 32, lda: 32, ldb: 32, ldc: 32, beta: beta))
            cases.append(Case(ta: false, tb: false, m: 47, n: 40, k: 5, lda: 7, ldb: 48, ldc: 41, beta: beta))
            cases.append(Case(ta: false, tb: false, m: 8, n: 8, k: 1, lda: 1, ldb: 8, ldc: 8, beta: beta))
            cases.append(Case(ta: false, tb: false, m: 100, n: 128, k: 128, lda: 128, ldb: 128, ldc: 128, beta: beta))
            cases.append(Case(ta: false, tb: false, m: 63, n: 96, k: 33, lda: 40, ldb: 96, ldc: 99, beta: beta))
            // Aᵀ·B (weight gradients) in register tiles over blocks of summed rows: a partial
            // last block and tile, an 8-column block, strides, fewer rows than a tile.
            cases.append(Case(ta: true, tb: false, m: 33, n: 40, k: 700, lda: 35, ldb: 41, ldc: 45, beta: beta))
            cases.append(Case(ta: true, tb: false, m: 5, n: 8, k: 256, lda: 5, ldb: 8, ldc: 8, beta: beta))
            // A·Bᵀ in register tiles on a transposed copy, with strides and an 8-column block.
            cases.append(Case(ta: false, tb: true, m: 200, n: 40, k: 20, lda: 25, ldb: 23, ldc: 45, beta: beta))
            // Weight gradients of the triplet width as sums of outer products: an odd number of
            // rows, strides, and each of 4, 8 and 12 columns of A.
            cases.append(Case(ta: true, tb: false, m: 4, n: 4, k: 3001, lda: 4, ldb: 4, ldc: 4, beta: beta))
            cases.append(Case(ta: true, tb: false, m: 12, n: 4, k: 999, lda: 12, ldb: 4, ldc: 6, beta: beta))
            cases.append(Case(ta: true, tb: false, m: 8, n: 4, k: 300, lda: 10, ldb: 7, ldc: 4, beta: beta))
            cases.append(contentsOf: fourColumnCases(beta: beta))
        }
        var rng = SplitMix64(seed: 7)
        for c in cases {
            let aRows = c.ta ? c.k : c.m, bRows = c.tb ? c.n : c.k
            let a = (0..<aRows * c.lda).map { _ in Float.random(in: -1...1, using: &rng) }
            let b = (0..<bRows * c.ldb).map { _ in Float.random(in: -1...1, using: &rng) }
            // Beta 0 must not read C: NaN there would spread into the product.
            let c0 = (0..<c.m * c.ldc).map { j in
                c.beta == 0 && j % c.ldc < c.n ? Float.nan : Float.random(in: -1...1, using: &rng)
            }
            var got = c0
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in got.withUnsafeMutableBufferPointer { cp in
                Float.tensorGEMM(transposeA: c.ta, transposeB: c.tb, m: c.m, n: c.n, k: c.k, alpha: 1,
                                 a: ap.baseAddress!, lda: c.lda, b: bp.baseAddress!, ldb: c.ldb,
                                 beta: c.beta, c: cp.baseAddress!, ldc: c.ldc)
            } } }
            var worst = 0.0
            for i in 0..<c.m {
                for j in 0..<c.n {
                    // Float round-off grows with the sum of the terms' sizes, not with the result.
                    var sum = 0.0, scale = 0.0
                    for q in 0..<c.k {
                        let x = c.ta ? a[q * c.lda + i] : a[i * c.lda + q]
                        let y = c.tb ? b[j * c.ldb + q] : b[q * c.ldb + j]
                        sum += Double(x) * Double(y)
                        scale += abs(Double(x) * Double(y))
                    }
                    if c.beta != 0 {
                        sum += Double(c.beta) * Double(c0[i * c.ldc + j])
                        scale += abs(Double(c.beta) * Double(c0[i * c.ldc + j]))
                    }
                    // `max` would pass over a NaN.
                    let error = abs(Double(got[i * c.ldc + j]) - sum) / scale
                    worst = error.isNaN ? .infinity : max(worst, error)
                }
                // Elements between ldc rows are not the product's and must be left alone.
                for j in c.n..<c.ldc { XCTAssertEqual(got[i * c.ldc + j], c0[i * c.ldc + j]) }
            }
            XCTAssertLessThan(worst, 2e-6, "\(c), small kernels \(SmallKernelGEMM.isEnabled)")
        }
    }

    func testRowsPerCallStaysWithinTheSmallKernelAndItsTile() {
        let limit = SmallKernelGEMM.productLimit
        for (rows, perRow) in [(8000, 32 * 32), (306, 256 * 256), (306, 256 * 768), (21, 256 * 512), (1260, 128 * 128)] {
            guard let step = SmallKernelGEMM.rowsPerCall(rows: rows, perRow: perRow) else {
                XCTFail("\(rows) × \(perRow) should be cut"); continue
            }
            XCTAssertLessThanOrEqual(step * perRow, limit)
            XCTAssertEqual(step % SmallKernelGEMM.rowTile, 0)
            XCTAssertLessThan(step, rows)
        }
        // Whole: small enough already, too wide for even one tile of rows, or a B too large to
        // stay cached over many calls.
        XCTAssertNil(SmallKernelGEMM.rowsPerCall(rows: 420, perRow: 32 * 32))
        XCTAssertNil(SmallKernelGEMM.rowsPerCall(rows: 63, perRow: 512 * 768))
        XCTAssertNil(SmallKernelGEMM.rowsPerCall(rows: 1260, perRow: 256 * 768))
        XCTAssertNil(SmallKernelGEMM.rowsPerCall(rows: 8000, perRow: 256 * 512))
    }

    func testColumnBlocksStayCachedAndAreWideEnough() {
        XCTAssertEqual(SmallKernelGEMM.columnsPerBlock(columns: 768, inner: 256), 256)
        XCTAssertEqual(SmallKernelGEMM.columnsPerBlock(columns: 512, inner: 256), 256)
        XCTAssertEqual(SmallKernelGEMM.columnsPerBlock(columns: 600, inner: 200), 304)
        for (n, k) in [(768, 256), (600, 200), (1200, 64)] {
            guard let width = SmallKernelGEMM.columnsPerBlock(columns: n, inner: k) else { XCTFail("\(n) × \(k)"); continue }
            XCTAssertLessThanOrEqual(width * k, SmallKernelGEMM.cachedOperandElements)
            XCTAssertLessThan(width, n)
        }
        // Cached whole already, or blocks narrower than 256 columns.
        XCTAssertNil(SmallKernelGEMM.columnsPerBlock(columns: 256, inner: 256))
        XCTAssertNil(SmallKernelGEMM.columnsPerBlock(columns: 256, inner: 768))
        XCTAssertNil(SmallKernelGEMM.columnsPerBlock(columns: 256, inner: 512))
    }

    func testTransposeInTiles() {
        for (rows, columns, stride) in [(1, 1, 1), (8, 8, 8), (13, 29, 31), (64, 5, 5)] {
            let source = (0..<rows * stride).map { Float($0) }
            var out = [Float](repeating: -1, count: rows * columns)
            source.withUnsafeBufferPointer { s in out.withUnsafeMutableBufferPointer { o in
                SmallKernelGEMM.transpose(s.baseAddress!, rows: rows, columns: columns, stride: stride, into: o.baseAddress!)
            } }
            for r in 0..<rows { for c in 0..<columns { XCTAssertEqual(out[c * rows + r], source[r * stride + c]) } }
        }
    }

    /// Warming must read every cache line that holds an element of the block (whatever the
    /// alignment and the row stride), and nothing outside the block's rows.
    func testWarmingReadsEveryCacheLineOfTheBlock() {
        for (rows, columns, stride, offset) in [(3, 100, 100, 0), (4, 37, 53, 5), (2, 16, 16, 3), (5, 70, 129, 11), (1, 1, 1, 7)] {
            let count = offset + (rows - 1) * stride + columns
            var storage = [Float](repeating: 0, count: count + 32)
            storage.withUnsafeMutableBufferPointer { buffer in
                guard let base = buffer.baseAddress else { return XCTFail("no storage") }
                let first = base + offset
                // The 64-byte lines the block touches, each tried alone: only its elements are 1.
                let lineOf = { (p: UnsafeMutablePointer<Float>) in UInt(bitPattern: p) / 64 }
                var lines = Set<UInt>()
                for r in 0..<rows { for q in 0..<columns { lines.insert(lineOf(first + r * stride + q)) } }
                for line in lines {
                    for i in 0..<buffer.count { buffer[i] = lineOf(base + i) == line ? 1 : 0 }
                    SmallKernelGEMM.warm(UnsafePointer(first), rows: rows, columns: columns, stride: stride)
                    XCTAssertGreaterThan(SmallKernelGEMM.warmingSink, 0, "\(rows)×\(columns) stride \(stride) offset \(offset): line \(line) not read")
                }
                // Elements after the last row are never read.
                for i in 0..<buffer.count { buffer[i] = base + i >= first + (rows - 1) * stride + columns ? 1 : 0 }
                SmallKernelGEMM.warm(UnsafePointer(first), rows: rows, columns: columns, stride: stride)
                XCTAssertEqual(SmallKernelGEMM.warmingSink, 0)
            }
        }
    }
}
