import CBLAS

/// Products `A · B` whose result has four columns (maps to or within the triplet features'
/// width: `[T, 4] · [4, 4]`, `[E, 32] · [32, 4]`), as register loops in both precisions.
///
/// OpenBLAS packs A into panels for these and then runs kernels built for wide results on a
/// four-wide C. Measured alone on the Zen 3 host (OpenBLAS `Zen` kernels, one thread, C
/// cleared first as `SmallKernelGEMM` does): `[4374, 4] · [4, 4]` 14 µs against 2.9 here,
/// `[35004, 4] · [4, 4]` with its operands out of cache 153 against 53, `[4374, 16] · [16, 4]`
/// 29 against 15, `[306, 8] · [8, 4]` 1.4 against 0.6.
enum FourColumnGEMM {
    /// The longest B that is copied to the stack in the other layout (`[4, k]` as `[k, 4]` for
    /// the row loops, or as `[4, k]` for the dot products).
    static let transposedInnerLimit = 256
    /// From this inner dimension on (a multiple of 8) the elements of C are dot products
    /// (``rowDots``): md17's `[918, 256] · [256, 4]` 59 → 37 µs with its operands cached, and
    /// `[9180, 256] · [256, 4]` out of cache 1.57 → 1.20 ms. At 32 both forms took the same time,
    /// and at 16 the dot products were slower (the sums across lanes outweigh the products).
    static let dotInnerMinimum = 64

    /// Runs `C = A · op(B)` (or `C += A · op(B)` when `beta` is 1) and returns true when the
    /// product has four columns, A is not transposed, `alpha` is 1 and `beta` 0 or 1; else
    /// returns false and leaves C alone.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func runIfTaken<T: TensorScalar>(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: T,
                                            a: UnsafePointer<T>, lda: Int, b: UnsafePointer<T>, ldb: Int,
                                            beta: T, c: UnsafeMutablePointer<T>, ldc: Int) -> Bool {
        guard n == 4, !transposeA, m > 0, k > 0, alpha == 1, beta == 0 || beta == 1 else { return false }
        if transposeB && k > transposedInnerLimit { return false }
        let accumulate = beta == 1
        let asDots = k >= dotInnerMinimum && k % 8 == 0 && k <= transposedInnerLimit
        if !asDots && !transposeB {
            product(m: m, k: k, a: a, lda: lda, b: b, ldb: ldb, accumulate: accumulate, c: c, ldc: ldc)
            return true
        }
        // B copied to the stack (at most 8 KB in Double): as its columns (`[4, k]`) for the dot
        // products, so that each element of C is a dot product of two contiguous runs, or as
        // `[k, 4]` for the row loops when it came transposed.
        withUnsafeTemporaryAllocation(of: T.self, capacity: 4 * k) { buffer in
            guard let copy = buffer.baseAddress else { return }
            for q in 0..<k {
                for j in 0..<4 {
                    let element = transposeB ? b[j * ldb + q] : b[q * ldb + j]     // op(B)[q, j]
                    if asDots { copy[j * k + q] = element } else { copy[4 * q + j] = element }
                }
            }
            if asDots {
                dotProducts(m: m, k: k, a: a, lda: lda, columns: copy, accumulate: accumulate, c: c, ldc: ldc)
            } else {
                product(m: m, k: k, a: a, lda: lda, b: copy, ldb: 4, accumulate: accumulate, c: c, ldc: ldc)
            }
        }
        return true
    }

    /// `C (+)= A · B`, A `[m, k]`, B `[k, 4]`, row-major with the given row strides; rows shared
    /// among the tensor threads in blocks of eight.
    @inline(__always)
    private static func product<T: TensorScalar>(m: Int, k: Int, a: UnsafePointer<T>, lda: Int, b: UnsafePointer<T>, ldb: Int,
                                                 accumulate: Bool, c: UnsafeMutablePointer<T>, ldc: Int) {
        ParallelLoop.forChunks((m + 7) / 8, work: 4 * m * k) { blocks in
            let rows = blocks.lowerBound * 8 ..< Swift.min(m, blocks.upperBound * 8)
            let a = a + rows.lowerBound * lda, c = c + rows.lowerBound * ldc
            withLiteral(accumulate) { accumulate in
                if k == 4 && lda == 4 && ldc == 4 && ldb == 4 {
                    rowPairs(rows.count, a, b, accumulate: accumulate, c)
                } else {
                    eightRows(rows.count, k, a, lda: lda, b, ldb: ldb, accumulate: accumulate, c, ldc: ldc)
                }
            }
        }
    }

    /// `C (+)= A · B` as dot products of A's rows with B's `columns` (`[4, k]`, k a multiple of
    /// 8); rows shared among the tensor threads in pairs.
    @inline(__always)
    private static func dotProducts<T: TensorScalar>(m: Int, k: Int, a: UnsafePointer<T>, lda: Int, columns: UnsafePointer<T>,
                                                     accumulate: Bool, c: UnsafeMutablePointer<T>, ldc: Int) {
        ParallelLoop.forChunks((m + 1) / 2, work: 4 * m * k) { pairs in
            let rows = pairs.lowerBound * 2 ..< Swift.min(m, pairs.upperBound * 2)
            let a = a + rows.lowerBound * lda, c = c + rows.lowerBound * ldc
            withLiteral(accumulate) { accumulate in
                rowDots(rows.count, k, a, lda: lda, columns, accumulate: accumulate, c, ldc: ldc)
            }
        }
    }

    /// The inner dimension 4 with every matrix contiguous: two rows of A (eight consecutive
    /// elements) make one eight-lane sum of four multiply-adds, B's rows repeated in both
    /// halves. Eight rows at a time with four-lane sums (``eightRows``) took 2.5 times as long
    /// here: twice the multiply-adds, each behind a broadcast of its own.
    @inline(__always)
    private static func rowPairs<T: TensorScalar>(_ m: Int, _ a: UnsafePointer<T>, _ b: UnsafePointer<T>, accumulate: Bool,
                                                  _ c: UnsafeMutablePointer<T>) {
        @inline(__always) func twice(_ q: Int) -> SIMD8<T> {
            let row = quad(b + 4 * q)
            return SIMD8(lowHalf: row, highHalf: row)
        }
        let w0 = twice(0), w1 = twice(1), w2 = twice(2), w3 = twice(3)
        var r = 0
        while r + 2 <= m {
            let p = a + 4 * r, y = c + 4 * r
            let x0 = SIMD8(p[0], p[0], p[0], p[0], p[4], p[4], p[4], p[4])
            let x1 = SIMD8(p[1], p[1], p[1], p[1], p[5], p[5], p[5], p[5])
            let x2 = SIMD8(p[2], p[2], p[2], p[2], p[6], p[6], p[6], p[6])
            let x3 = SIMD8(p[3], p[3], p[3], p[3], p[7], p[7], p[7], p[7])
            let start = accumulate ? lanes(UnsafePointer(y)) : SIMD8<T>()
            let sum = start.adding(x0, times: w0).adding(x1, times: w1).adding(x2, times: w2).adding(x3, times: w3)
            setLanes(y, sum)
            r += 2
        }
        if r < m { oneRow(4, a + 4 * r, b, ldb: 4, accumulate: accumulate, c + 4 * r) }
    }

    /// Any inner dimension and strides: each row of C one four-lane sum over k, eight rows at a
    /// time so that eight independent multiply-add chains cover the instruction's latency.
    @inline(__always)
    private static func eightRows<T: TensorScalar>(_ m: Int, _ k: Int, _ a: UnsafePointer<T>, lda: Int, _ b: UnsafePointer<T>,
                                                   ldb: Int, accumulate: Bool, _ c: UnsafeMutablePointer<T>, ldc: Int) {
        var r = 0
        while r + 8 <= m {
            // Row pointers advanced together: indices like `5 * lda + q` cost an overflow check
            // each per step, more instructions than the multiply-adds.
            var x0 = a + r * lda, x1 = x0 + lda, x2 = x1 + lda, x3 = x2 + lda
            var x4 = x3 + lda, x5 = x4 + lda, x6 = x5 + lda, x7 = x6 + lda
            var w = b
            var s0 = SIMD4<T>(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0
            for _ in 0..<k {
                let wq = quad(w)
                s0 = s0.adding(SIMD4(repeating: x0.pointee), times: wq)
                s1 = s1.adding(SIMD4(repeating: x1.pointee), times: wq)
                s2 = s2.adding(SIMD4(repeating: x2.pointee), times: wq)
                s3 = s3.adding(SIMD4(repeating: x3.pointee), times: wq)
                s4 = s4.adding(SIMD4(repeating: x4.pointee), times: wq)
                s5 = s5.adding(SIMD4(repeating: x5.pointee), times: wq)
                s6 = s6.adding(SIMD4(repeating: x6.pointee), times: wq)
                s7 = s7.adding(SIMD4(repeating: x7.pointee), times: wq)
                x0 += 1; x1 += 1; x2 += 1; x3 += 1; x4 += 1; x5 += 1; x6 += 1; x7 += 1
                w += ldb
            }
            let y = c + r * ldc
            store(s0, y, accumulate); store(s1, y + ldc, accumulate)
            store(s2, y + 2 * ldc, accumulate); store(s3, y + 3 * ldc, accumulate)
            store(s4, y + 4 * ldc, accumulate); store(s5, y + 5 * ldc, accumulate)
            store(s6, y + 6 * ldc, accumulate); store(s7, y + 7 * ldc, accumulate)
            r += 8
        }
        while r < m {
            oneRow(k, a + r * lda, b, ldb: ldb, accumulate: accumulate, c + r * ldc)
            r += 1
        }
    }

    /// Two rows at a time, each element of C the dot product of a row of A with a row of `bt`
    /// (B's columns, `[4, k]`) in eight-lane sums; k is a multiple of 8.
    @inline(__always)
    private static func rowDots<T: TensorScalar>(_ m: Int, _ k: Int, _ a: UnsafePointer<T>, lda: Int, _ bt: UnsafePointer<T>,
                                                 accumulate: Bool, _ c: UnsafeMutablePointer<T>, ldc: Int) {
        /// The four sums across lanes, pairwise.
        @inline(__always) func acrossLanes(_ s0: SIMD8<T>, _ s1: SIMD8<T>, _ s2: SIMD8<T>, _ s3: SIMD8<T>) -> SIMD4<T> {
            let x0 = s0.lowHalf + s0.highHalf, x1 = s1.lowHalf + s1.highHalf
            let x2 = s2.lowHalf + s2.highHalf, x3 = s3.lowHalf + s3.highHalf
            let x01 = SIMD8(lowHalf: x0, highHalf: x1), x23 = SIMD8(lowHalf: x2, highHalf: x3)
            let pairs = SIMD8(lowHalf: x01.evenHalf + x01.oddHalf, highHalf: x23.evenHalf + x23.oddHalf)
            return pairs.evenHalf + pairs.oddHalf
        }
        let b0 = bt, b1 = bt + k, b2 = bt + 2 * k, b3 = bt + 3 * k
        // Eight multiply-adds per 64 bytes of A leave too few loads in flight to cover memory's
        // latency: with A out of cache (md17's `[9180, 256]` edge vectors) the loop ran at 9.7
        // GB/s, where a plain sum streams 25. The rows sixteen ahead are requested first: 0.92 →
        // 0.39 ms alone (a standalone loop, one thread; 0.43–0.49 ms for two to eight rows ahead).
        let ahead = 16, lineElements = 64 / MemoryLayout<T>.stride
        var r = 0
        while r + 2 <= m {
            for row in stride(from: r + ahead, to: Swift.min(m, r + ahead + 2), by: 1) {
                let start = a + row * lda
                for q in stride(from: 0, to: k, by: lineElements) { tensors_prefetch_read(start + q) }
            }
            let x = a + r * lda, z = x + lda
            var s00 = SIMD8<T>(), s01 = s00, s02 = s00, s03 = s00, s10 = s00, s11 = s00, s12 = s00, s13 = s00
            for q in stride(from: 0, to: k, by: 8) {
                let w0 = lanes(b0 + q), w1 = lanes(b1 + q), w2 = lanes(b2 + q), w3 = lanes(b3 + q)
                let xq = lanes(x + q), zq = lanes(z + q)
                s00 = s00.adding(xq, times: w0); s01 = s01.adding(xq, times: w1)
                s02 = s02.adding(xq, times: w2); s03 = s03.adding(xq, times: w3)
                s10 = s10.adding(zq, times: w0); s11 = s11.adding(zq, times: w1)
                s12 = s12.adding(zq, times: w2); s13 = s13.adding(zq, times: w3)
            }
            store(acrossLanes(s00, s01, s02, s03), c + r * ldc, accumulate)
            store(acrossLanes(s10, s11, s12, s13), c + (r + 1) * ldc, accumulate)
            r += 2
        }
        if r < m {
            let x = a + r * lda
            var s0 = SIMD8<T>(), s1 = s0, s2 = s0, s3 = s0
            for q in stride(from: 0, to: k, by: 8) {
                let xq = lanes(x + q)
                s0 = s0.adding(xq, times: lanes(b0 + q)); s1 = s1.adding(xq, times: lanes(b1 + q))
                s2 = s2.adding(xq, times: lanes(b2 + q)); s3 = s3.adding(xq, times: lanes(b3 + q))
            }
            store(acrossLanes(s0, s1, s2, s3), c + r * ldc, accumulate)
        }
    }

    @inline(__always)
    private static func oneRow<T: TensorScalar>(_ k: Int, _ x: UnsafePointer<T>, _ b: UnsafePointer<T>, ldb: Int, accumulate: Bool,
                                                _ y: UnsafeMutablePointer<T>) {
        var s = SIMD4<T>()
        for q in 0..<k { s = s.adding(SIMD4(repeating: x[q]), times: quad(b + q * ldb)) }
        store(s, y, accumulate)
    }

    /// A row of C: `value`, or added to what is there when `accumulate`.
    @inline(__always)
    private static func store<T: TensorScalar>(_ value: SIMD4<T>, _ p: UnsafeMutablePointer<T>, _ accumulate: Bool) {
        setQuad(p, accumulate ? value + quad(UnsafePointer(p)) : value)
    }
}
