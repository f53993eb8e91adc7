/// Float `C (+)= A · B` for ENINet's narrow layers (`[rows, 32…96] · [32…96, 16…96]`) as register
/// tiles, on kernel sets without OpenBLAS's small-matrix kernels.
///
/// There OpenBLAS packs A and B into panels for every call; with an inner dimension of 32 the
/// packing costs about as much as the arithmetic, and the `[3060, 32] · [32, 32]` products of a
/// small/aspirin10 evaluation ran at 49 GFLOP/s (the 1024³ GEMM: 94). B is at most 64 KB here and
/// stays cached, so the tiles read both operands where they lie: six rows of C by sixteen
/// columns in twelve 8-lane sums, two loads of B and six broadcasts of A per step of the inner
/// dimension, which keeps both multiply-add pipes busy. Weight gradients `Aᵀ · B` over the rows
/// of a training batch run in the same tiles (the batch-8 step's `[2450, 32]ᵀ · [2450, 32]` ran
/// at 48 GFLOP/s in OpenBLAS).
enum TileGEMM {
    /// Rows of C per tile: 12 sums, 2 rows of B and a broadcast fill 15 of the 16 vector registers.
    static let tileRows = 6
    /// The largest B (`k·n` elements, 64 KB) taken: a larger one would not stay in the core's cache.
    static let operandLimit = 16_384

    /// Whether `[m, k] · [k, n]` is taken: `n` a multiple of 8 up to 128, B within
    /// ``operandLimit``, and at least one tile of rows.
    static func takes(m: Int, n: Int, k: Int) -> Bool {
        m >= tileRows && k > 0 && n > 0 && n % 8 == 0 && n <= 128 && n * k <= operandLimit
    }

    /// `C = A · B` (or `C += A · B` when `accumulate`), row-major, A `[m, k]`, B `[k, n]`; the rows
    /// shared among the tensor threads. The caller checks ``takes(m:n:k:)``.
    static func product(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                        accumulate: Bool, c: UnsafeMutablePointer<Float>, ldc: Int) {
        tiles(m: m, n: n, k: k, blockRows: k, a: a, rowStride: lda, step: 1, b: b, ldb: ldb, accumulate: accumulate, c: c, ldc: ldc)
    }

    /// Elements of A and B (32 KB) summed per pass of the transposed form: one block of each
    /// stays in L1 while every tile of C runs over it (blocks of 512 rows, in L2, ran
    /// `[2450, 32]ᵀ · [2450, 32]` at 52 GFLOP/s; blocks of 128 rows at 58).
    static let transposedBlockElements = 8192
    /// Whether `Aᵀ · B` (A `[k, m]`, B `[k, n]`: a weight gradient over k rows of a batch) is taken:
    /// `n` a multiple of 8 up to 128, `m` up to 128, and as many summed rows as
    /// ``NarrowGEMM/minimumRows`` (below that OpenBLAS's fixed costs do not matter).
    static func takesTransposed(m: Int, n: Int, k: Int) -> Bool {
        m > 0 && m <= 128 && n > 0 && n % 8 == 0 && n <= 128 && k >= NarrowGEMM.minimumRows
    }

    /// `C = Aᵀ · B` (or `C += Aᵀ · B`), row-major, A `[k, m]`, B `[k, n]`, in blocks of summed rows
    /// (``transposedBlockElements``) that add to C. The caller checks
    /// ``takesTransposed(m:n:k:)``. Row `i` of Aᵀ is column `i` of A: a tile's six rows are six
    /// neighbouring elements of each row of A.
    static func transposedProduct(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                  accumulate: Bool, c: UnsafeMutablePointer<Float>, ldc: Int) {
        tiles(m: m, n: n, k: k, blockRows: Swift.max(32, transposedBlockElements / (m + n)), a: a, rowStride: 1, step: lda,
              b: b, ldb: ldb, accumulate: accumulate, c: c, ldc: ldc)
    }

    /// Every tile of C, the row tiles shared among the tensor threads, each summing over blocks of
    /// `blockRows`. Row `i` of the left operand starts at `a + i · rowStride`
    /// and its elements lie `step` apart.
    @inline(__always)
    private static func tiles(m: Int, n: Int, k: Int, blockRows: Int, a: UnsafePointer<Float>, rowStride: Int, step: Int,
                              b: UnsafePointer<Float>, ldb: Int, accumulate: Bool, c: UnsafeMutablePointer<Float>, ldc: Int) {
        ParallelLoop.forChunks((m + tileRows - 1) / tileRows, work: m * n * k) { range in
            let rows = range.lowerBound * tileRows ..< Swift.min(m, range.upperBound * tileRows)
            // `accumulate` and `wide` literals in each copy, so that none tests them per step.
            @inline(__always) func run(from first: Int, count: Int, accumulate: Bool) {
                let a = a + first * step, b = b + first * ldb
                for r in stride(from: rows.lowerBound, to: rows.upperBound, by: tileRows) {
                    let valid = Swift.min(tileRows, rows.upperBound - r)
                    var column = 0
                    while column + 16 <= n {
                        sixRows(wide: true, valid: valid, k: count, a + r * rowStride, rowStride: rowStride, step: step,
                                b + column, ldb: ldb, accumulate: accumulate, c + r * ldc + column, ldc: ldc)
                        column += 16
                    }
                    if column < n {
                        sixRows(wide: false, valid: valid, k: count, a + r * rowStride, rowStride: rowStride, step: step,
                                b + column, ldb: ldb, accumulate: accumulate, c + r * ldc + column, ldc: ldc)
                    }
                }
            }
            var first = 0
            while first < k {
                let count = Swift.min(blockRows, k - first)
                withLiteral(accumulate || first > 0) { accumulate in run(from: first, count: count, accumulate: accumulate) }
                first += count
            }
        }
    }

    @inline(__always) private static func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }
    @inline(__always) private static func store(_ value: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, accumulate: Bool) {
        UnsafeMutableRawPointer(p).storeBytes(of: accumulate ? value + load(p) : value, as: SIMD8<Float>.self)
    }

    /// Six rows by sixteen columns, or by eight when `wide` is false (the last block of an `n`
    /// that is an odd multiple of 8; `wide` is a literal at both calls, so the second half's
    /// work vanishes from that copy). Rows past `valid` (a last, partial tile) repeat the last
    /// valid one and are not stored. The row pointers advance together and the loop ends on a
    /// pointer, because indices like `5 * lda + q` cost an overflow check each per step.
    @inline(__always)
    static func sixRows(wide: Bool, valid: Int, k: Int, _ a: UnsafePointer<Float>, rowStride: Int, step: Int,
                                _ b: UnsafePointer<Float>, ldb: Int, accumulate: Bool, _ c: UnsafeMutablePointer<Float>, ldc: Int) {
        @inline(__always) func row(_ i: Int) -> UnsafePointer<Float> { a + Swift.min(i, valid - 1) * rowStride }
        var x0 = a, x1 = row(1), x2 = row(2), x3 = row(3), x4 = row(4), x5 = row(5)
        let end = a + k * step
        var w = b
        var s00 = SIMD8<Float>(), s01 = s00, s10 = s00, s11 = s00, s20 = s00, s21 = s00
        var s30 = s00, s31 = s00, s40 = s00, s41 = s00, s50 = s00, s51 = s00
        while x0 != end {
            let w0 = load(w), w1 = wide ? load(w + 8) : SIMD8()
            @inline(__always) func add(_ x: UnsafePointer<Float>, _ left: inout SIMD8<Float>, _ right: inout SIMD8<Float>) {
                let v = SIMD8(repeating: x.pointee)
                left = left.adding(v, times: w0)
                if wide { right = right.adding(v, times: w1) }
            }
            add(x0, &s00, &s01); add(x1, &s10, &s11); add(x2, &s20, &s21)
            add(x3, &s30, &s31); add(x4, &s40, &s41); add(x5, &s50, &s51)
            x0 += step; x1 += step; x2 += step; x3 += step; x4 += step; x5 += step
            w += ldb
        }
        var y = c
        @inline(__always) func storeRow(_ i: Int, _ left: SIMD8<Float>, _ right: SIMD8<Float>) {
            guard i < valid else { return }
            store(left, y, accumulate: accumulate)
            if wide { store(right, y + 8, accumulate: accumulate) }
            y += ldc
        }
        storeRow(0, s00, s01); storeRow(1, s10, s11); storeRow(2, s20, s21)
        storeRow(3, s30, s31); storeRow(4, s40, s41); storeRow(5, s50, s51)
    }
}
