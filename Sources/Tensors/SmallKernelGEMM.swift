import CBLAS

/// Single-precision GEMM cut into the calls that OpenBLAS's small-matrix kernels take.
///
/// OpenBLAS's AVX-512 kernel sets (SkylakeX, Cooperlake, SapphireRapids) run a product whose
/// `m·n·k` is at most 10⁶ through a kernel that reads the operands where they lie, instead of
/// packing both into panels first. ENINet's products have 32 to 256 channels, so their inner
/// dimension is short and packing costs as much as the arithmetic: on this machine a whole
/// `[8000, 32] · [32, 32]` runs at 85 GFLOP/s, the same product as 9 calls of ≤ 976 rows at
/// 111 (the large square GEMM: 102). The small kernel does not take row-major `A · Bᵀ` (it
/// declines the column-major `Aᵀ · B` it turns into), so that form is run on a transposed copy
/// of `B` when the rows repay the copy.
enum SmallKernelGEMM {
    /// The largest `m·n·k` OpenBLAS sends to its small-matrix kernel.
    static let productLimit = 1_000_000
    /// Rows per call come in multiples of this: the kernel covers rows four at a time, and
    /// other counts run a slow tail (`[306, 256] · [256, 256]` in 3-row calls: 60 GFLOP/s; in
    /// 4-row calls: 116; whole: 104).
    static let rowTile = 4
    /// Every call reads the whole of B (`k·n` elements) again. Up to this size (256 KB) it stays
    /// in the core's cache between calls, whatever the rows.
    static let cachedOperandElements = 65_536
    /// A larger B is re-read from the shared cache by every call, so it is cut only up to this
    /// many rows (ENINet's edges and edge vectors of one molecule): `[306, 768] · [768, 256]` ran
    /// at 114 GFLOP/s in 4-row calls against 104 whole (the 1024³ GEMM: 102), but on the busy
    /// host 4-row calls of `[1260, 256] · [256, 768]` fell to 0.73 of the large GEMM.
    static let rereadRowLimit = 1024
    /// `A · Bᵀ` is run on a transposed copy of `B` from this many rows on: the copy costs about
    /// as much as 15 rows of the product, and the small kernel saves about a quarter.
    static let transposeRows = 96

    /// Whether the products are cut: when the OpenBLAS kernel set in use has the small-matrix
    /// kernels (read once: OpenBLAS picks its kernel set when it loads). Tests set it to run the
    /// cut paths on any kernel set.
    @exclusivity(unchecked) nonisolated(unsafe) static var isEnabled: Bool = {
        guard let name = openblas_get_corename() else { return false }
        return ["skylakex", "cooperlake", "sapphirerapids"].contains(String(cString: name).lowercased())
    }()

    /// Rows per call for `m` rows of `perRow` multiply-adds (the size of the operand every call
    /// reads whole), or nil when one call is best.
    static func rowsPerCall(rows m: Int, perRow: Int) -> Int? {
        guard perRow > 0, m * perRow > productLimit, perRow <= cachedOperandElements || m <= rereadRowLimit else { return nil }
        let most = productLimit / perRow / rowTile * rowTile
        guard most >= rowTile else { return nil }
        // As even as the tile allows, so that the last call is not a sliver.
        let pieces = (m + most - 1) / most
        return ((m + pieces - 1) / pieces + rowTile - 1) / rowTile * rowTile
    }

    /// `C = alpha · op(A) · op(B) + beta · C`, row-major, as `cblas_sgemm` defines it.
    static func run(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                    alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0, n > 0, k > 0 else {
            whole(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        guard isEnabled else {
            if inRegisters(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                           b: b, ldb: ldb, beta: beta, c: c, ldc: ldc) {
                return
            }
            // The packing kernels accumulate into C, so beta 0 first clears C with OpenBLAS's
            // `sgemm_beta`, an element loop (about 11 GB/s on C that sits in L2 here, 4.5 % of a
            // small/aspirin10 evaluation on the Zen 3 kernel set); a fill of zeros does the same
            // at memset speed and lets the product skip that pass.
            if beta == 0 { zero(c, rows: m, columns: n, stride: ldc) }
            whole(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta == 0 ? 1 : beta, c, ldc)
            return
        }
        // The row blocks of `A·B`, or of `A·Bᵀ` once B is transposed (nil: one call).
        let step = transposeA ? nil : rowsPerCall(rows: m, perRow: n * k)
        switch (transposeA, transposeB) {
        case (false, false):
            // The small kernel reads B in place (in row blocks, or one call within the limit).
            if n * k >= warmedOperandElements && (step != nil || m * n * k <= productLimit) { warm(b, rows: k, columns: n, stride: ldb) }
            byRows(step: step, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        case (false, true) where m >= transposeRows && (m * n * k <= productLimit || step != nil):
            // B is [n, k]; its transpose [k, n] is small next to the product.
            withTransposed(b, rows: n, columns: k, stride: ldb) { bt in
                byRows(step: step, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: bt, ldb: n, beta: beta, c: c, ldc: ldc)
            }
        case (true, false) where TensorThreads.blasCount == 1:
            // Aᵀ B with A [k, m] and B [k, n] (a weight gradient: k is the rows of a batch): the
            // sum over k is cut into pieces that accumulate into C.
            guard let step = rowsPerCall(rows: k, perRow: m * n) else {
                whole(true, false, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
                return
            }
            var start = 0
            while start < k {
                let count = Swift.min(step, k - start)
                whole(true, false, m, n, count, alpha, a + start * lda, lda, b + start * ldb, ldb,
                      start == 0 ? beta : 1, c, ldc)
                start += count
            }
        default:
            whole(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        }
    }

    /// The widest column block of a `B` with `k` rows that stays cached between calls, when
    /// cutting `B` into such blocks pays: for a `B` too large to stay cached with a short inner
    /// dimension, every row block would otherwise re-read all of it (md17's `[306, 256] ·
    /// [256, 768]` ran at 79–94 GFLOP/s in 4-row calls, its 256-column thirds at 90–100). Nil
    /// when `B` is cached whole, or when a block would be narrower than 256 columns.
    static func columnsPerBlock(columns n: Int, inner k: Int) -> Int? {
        guard k > 0, n * k > cachedOperandElements else { return nil }
        let widest = cachedOperandElements / k / 16 * 16
        guard widest >= 256, widest < n else { return nil }
        // As even as 16-column steps allow.
        let blocks = (n + widest - 1) / widest
        return ((n + blocks - 1) / blocks + 15) / 16 * 16
    }

    /// `A · B` in row blocks of `step` rows (one call when nil), shared among the OpenBLAS
    /// threads asked for (each small call runs on one thread, so OpenBLAS would not split them);
    /// a large `B` in cached column blocks first (``columnsPerBlock(columns:inner:)``).
    private static func byRows(step: Int?, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
                               b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if step != nil, let width = columnsPerBlock(columns: n, inner: k) {
            var first = 0
            while first < n {
                let count = Swift.min(width, n - first)
                byRowBlocks(step: rowsPerCall(rows: m, perRow: count * k), m: m, n: count, k: k, alpha: alpha, a: a, lda: lda,
                            b: b + first, ldb: ldb, beta: beta, c: c + first, ldc: ldc)
                first += count
            }
            return
        }
        byRowBlocks(step: step, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }

    private static func byRowBlocks(step: Int?, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
                                    b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard let step else {
            whole(false, false, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        let pieces = (m + step - 1) / step
        func piece(_ p: Int) {
            let start = p * step, count = Swift.min(step, m - start)
            whole(false, false, count, n, k, alpha, a + start * lda, lda, b, ldb, beta, c + start * ldc, ldc)
        }
        let threads = Swift.min(Swift.max(TensorThreads.blasCount, TensorThreads.count), pieces)
        if threads <= 1 {
            for p in 0..<pieces { piece(p) }
        } else {
            ThreadTeam.tensorThreads.perform(iterations: threads) { t in
                for p in stride(from: t, to: pieces, by: threads) { piece(p) }
            }
        }
    }

    /// From this size (64 KB) on, a B that the small kernel reads where it lies is read once, a
    /// cache line at a time, before the product (not a transposed copy, which is cached, nor a
    /// B that OpenBLAS packs).
    /// The small kernel reads B a few columns at a time down all its rows, a pattern the
    /// hardware prefetcher follows poorly: with B fresh from memory (md17's weights, 32 MB, do
    /// not stay cached between evaluations), `[63, 256] · [256, 768]` ran at 77 GFLOP/s and at
    /// 87 after the read, `[21, 256] · [256, 256]` at 53 and 74 (107 and 100 with B cached).
    static let warmedOperandElements = 16_384

    /// Written by ``warm(_:rows:columns:stride:)`` so that its reads are not optimised away.
    @exclusivity(unchecked) nonisolated(unsafe) static var warmingSink: Float = 0

    /// Reads one element of every cache line of a `rows × columns` block with row stride `stride`.
    static func warm(_ source: UnsafePointer<Float>, rows: Int, columns: Int, stride: Int) {
        // Four running sums, so that the loads do not wait on one chain of adds.
        var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
        for r in 0..<rows {
            let row = source + r * stride
            var q = 0
            while q + 48 < columns {
                s0 += row[q]; s1 += row[q + 16]; s2 += row[q + 32]; s3 += row[q + 48]
                q += 64
            }
            while q < columns { s0 += row[q]; q += 16 }
            // The row's last line, when the reads 16 apart stop short of it.
            s1 += row[columns - 1]
        }
        warmingSink = s0 + s1 + s2 + s3
    }

    /// The products that run in registers on kernel sets without the small kernels (alpha 1,
    /// beta 0 or 1): weight gradients of the triplet width (``NarrowGEMM``) and narrow products
    /// (``TileGEMM``); `A·Bᵀ` through a transposed copy of B from ``transposeRows`` rows on (a
    /// linear layer's forward in training, `x · Wᵀ`, where B is small next to the product).
    /// False, with nothing written, when none takes the product.
    private static func inRegisters(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                                    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) -> Bool {
        guard alpha == 1, beta == 0 || beta == 1 else { return false }
        let accumulate = beta == 1
        switch (transposeA, transposeB) {
        case (true, false) where NarrowGEMM.takes(m: m, n: n, k: k):
            NarrowGEMM.transposedProduct(m: m, k: k, a: a, lda: lda, b: b, ldb: ldb, accumulate: accumulate, c: c, ldc: ldc)
        case (true, false) where TileGEMM.takesTransposed(m: m, n: n, k: k):
            TileGEMM.transposedProduct(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, accumulate: accumulate, c: c, ldc: ldc)
        case (false, false) where TileGEMM.takes(m: m, n: n, k: k):
            TileGEMM.product(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, accumulate: accumulate, c: c, ldc: ldc)
        case (false, true) where m >= transposeRows && TileGEMM.takes(m: m, n: n, k: k):
            withTransposed(b, rows: n, columns: k, stride: ldb) { bt in
                TileGEMM.product(m: m, n: n, k: k, a: a, lda: lda, b: bt, ldb: n, accumulate: accumulate, c: c, ldc: ldc)
            }
        default:
            return false
        }
        return true
    }

    /// `body` with a transposed copy (`[columns, rows]`) of the `rows × columns` block at `source`.
    private static func withTransposed(_ source: UnsafePointer<Float>, rows: Int, columns: Int, stride: Int,
                                       _ body: (UnsafePointer<Float>) -> Void) {
        let copy = UnsafeMutablePointer<Float>.allocate(capacity: rows * columns)
        defer { copy.deallocate() }
        transpose(source, rows: rows, columns: columns, stride: stride, into: copy)
        body(copy)
    }

    /// `out[c, r] = source[r, c]` in 8 × 8 tiles, so that both sides touch whole cache lines
    /// (element by element, one side strides a row per element: 0.75 ns per element here).
    static func transpose(_ source: UnsafePointer<Float>, rows: Int, columns: Int, stride: Int,
                          into out: UnsafeMutablePointer<Float>) {
        let tile = 8
        for r0 in Swift.stride(from: 0, to: rows, by: tile) {
            let r1 = Swift.min(r0 + tile, rows)
            for c0 in Swift.stride(from: 0, to: columns, by: tile) {
                let c1 = Swift.min(c0 + tile, columns)
                for c in c0..<c1 {
                    for r in r0..<r1 { out[c * rows + r] = source[r * stride + c] }
                }
            }
        }
    }

    /// Sets a `rows × columns` block with row stride `stride` to zero (the elements between rows
    /// are another matrix's).
    static func zero(_ c: UnsafeMutablePointer<Float>, rows: Int, columns: Int, stride: Int) {
        if stride == columns { c.update(repeating: 0, count: rows * columns); return }
        for r in 0..<rows { (c + r * stride).update(repeating: 0, count: columns) }
    }

    @inline(__always)
    private static func whole(_ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                              _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                              _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        ParallelLoop.blasRows(m: m, work: m * n * k) { lo, rows in
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                        blasint(rows), blasint(n), blasint(k), alpha, ta ? a + lo : a + lo * lda, blasint(lda),
                        b, blasint(ldb), beta, c + lo * ldc, blasint(ldc))
        }
    }
}
