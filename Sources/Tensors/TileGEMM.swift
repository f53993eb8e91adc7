/// Float `C (+)= A · B` for ENINet's narrow layers (`[rows, 32…96] · [32…96, 16…96]`) as register
/// tiles, on kernel sets without OpenBLAS's small-matrix kernels.
///
/// There OpenBLAS packs A and B into panels for every call; with an inner dimension of 32 the
/// packing costs about as much as the arithmetic, and the `[3060, 32] · [32, 32]` products of a
/// small/aspirin10 evaluation ran at 49 GFLOP/s (the 1024³ GEMM: 94). B is at most 64 KB here and
/// stays cached, so the tiles read both operands where they lie: six rows of C by sixteen
/// columns in twelve 8-lane sums, two loads of B and six broadcasts of A per step of the inner
/// dimension, which keeps both multiply-add pipes busy.
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
        let tiles = (m + tileRows - 1) / tileRows
        ParallelLoop.forChunks(tiles, work: m * n * k) { range in
            let first = range.lowerBound * tileRows, end = Swift.min(m, range.upperBound * tileRows)
            if accumulate {
                rows(first ..< end, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, accumulate: true, c: c, ldc: ldc)
            } else {
                rows(first ..< end, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, accumulate: false, c: c, ldc: ldc)
            }
        }
    }

    /// The rows `range` of C: whole tiles, then one row at a time. `accumulate` is a literal at
    /// both calls, so neither copy tests it per tile.
    @inline(__always)
    private static func rows(_ range: Range<Int>, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int, accumulate: Bool, c: UnsafeMutablePointer<Float>, ldc: Int) {
        var r = range.lowerBound
        while r + tileRows <= range.upperBound {
            var column = 0
            while column + 16 <= n {
                sixRows(wide: true, k: k, a + r * lda, lda: lda, b + column, ldb: ldb, accumulate: accumulate, c + r * ldc + column, ldc: ldc)
                column += 16
            }
            if column < n {
                sixRows(wide: false, k: k, a + r * lda, lda: lda, b + column, ldb: ldb, accumulate: accumulate, c + r * ldc + column, ldc: ldc)
            }
            r += tileRows
        }
        while r < range.upperBound {
            var column = 0
            while column < n {
                oneRowOfEight(k: k, a + r * lda, b + column, ldb: ldb, accumulate: accumulate, c + r * ldc + column)
                column += 8
            }
            r += 1
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
    /// work vanishes from that copy). The row pointers advance together and the loop ends on a
    /// pointer, because indices like `5 * lda + q` cost an overflow check each per step.
    @inline(__always)
    private static func sixRows(wide: Bool, k: Int, _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
                                accumulate: Bool, _ c: UnsafeMutablePointer<Float>, ldc: Int) {
        var x0 = a, x1 = x0 + lda, x2 = x1 + lda, x3 = x2 + lda, x4 = x3 + lda, x5 = x4 + lda
        let end = a + k
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
            x0 += 1; x1 += 1; x2 += 1; x3 += 1; x4 += 1; x5 += 1
            w += ldb
        }
        var y = c
        @inline(__always) func storeRow(_ left: SIMD8<Float>, _ right: SIMD8<Float>) {
            store(left, y, accumulate: accumulate)
            if wide { store(right, y + 8, accumulate: accumulate) }
            y += ldc
        }
        storeRow(s00, s01); storeRow(s10, s11); storeRow(s20, s21)
        storeRow(s30, s31); storeRow(s40, s41); storeRow(s50, s51)
    }

    /// One row by eight columns, for the rows after the last whole tile.
    @inline(__always)
    private static func oneRowOfEight(k: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, ldb: Int,
                                      accumulate: Bool, _ c: UnsafeMutablePointer<Float>) {
        var s = SIMD8<Float>()
        var x = a, w = b
        let end = a + k
        while x != end {
            s = s.adding(SIMD8(repeating: x.pointee), times: load(w))
            x += 1
            w += ldb
        }
        store(s, c, accumulate: accumulate)
    }
}
