/// A constant right operand `B` (`[k, n]`: a layer's weights) stored for repeated products
/// `A · B` (``product(rows:a:lda:accumulate:c:ldc:)``): column panels of sixteen (the last of
/// eight when `n` is an odd multiple of 8), each panel's `k` rows of sixteen contiguous.
///
/// OpenBLAS packs both operands of every product before it multiplies. For an evaluation's
/// weights that is the same work each time, and where A has few rows (a molecule's atoms) it
/// is most of the work: md17's `[21, 256] · [256, 256]` ran at 47 GFLOP/s, `[63, 256] ·
/// [256, 768]` at 68 (the 1024³ GEMM: 92). Packed once, B is read as one stream per panel, a
/// cache line per row of the panel, and register tiles (``TileGEMM``'s six rows by sixteen
/// columns) read A where it lies: 69 and 84 GFLOP/s for those two, and 94–95 for the edge
/// products (`[306, 256] · [256, 256]`: 87 in OpenBLAS), each B cold as in an evaluation
/// (a standalone Swift program linked to the same OpenBLAS, one thread).
public struct PanelMatrix<Scalar: TensorScalar>: Sendable {
    /// `k`, the inner dimension.
    public let rows: Int
    /// `n`, the columns of the product.
    public let columns: Int
    /// Panel `j` (columns `16 j ..< 16 j + width`) at `16 · j · k`, `[k, width]`.
    let panels: [Scalar]

    /// The panels of `b` (`[k, n]`, rows `ldb` apart), or nil where they would not help: a
    /// precision other than Float; `n` not a multiple of 8; `k` below 8 (such products are a
    /// pass over C, which other loops make once); a B that ``TileGEMM`` reads in place, small
    /// enough to stay cached (small/aspirin10's `[3060, 32] · [32, 32]` ran at 82 GFLOP/s in
    /// place, 76 from panels); or an OpenBLAS kernel set with small-matrix kernels
    /// (``SmallKernelGEMM``), whose sixteen-lane kernels ran md17's products at 100–116
    /// GFLOP/s on the AVX-512 host, where these eight-lane tiles would give up half the width.
    public init?(_ b: UnsafePointer<Scalar>, rows k: Int, columns n: Int, ldb: Int? = nil) {
        guard Scalar.self == Float.self, !SmallKernelGEMM.isEnabled, n > 0, n % 8 == 0, k >= 8,
              !TileGEMM.takes(m: TileGEMM.tileRows, n: n, k: k) else { return nil }
        let stride = ldb ?? n
        rows = k
        columns = n
        panels = [Scalar](unsafeUninitializedCapacity: k * n) { out, count in
            for first in Swift.stride(from: 0, to: n, by: 16) {
                let width = Swift.min(16, n - first)
                let panel = first * k
                for q in 0..<k {
                    for l in 0..<width { out[panel + q * width + l] = b[q * stride + first + l] }
                }
            }
            count = k * n
        }
    }

    /// `C = A · B`, or `C += A · B` when `accumulate`, row-major, A `[m, k]` (rows `lda` apart),
    /// C `[m, n]` (rows `ldc` apart). The blocks of rows and the panels are shared among the
    /// tensor threads.
    public func product(rows m: Int, a: UnsafePointer<Scalar>, lda: Int, accumulate: Bool,
                        c: UnsafeMutablePointer<Scalar>, ldc: Int) {
        // The initialiser builds panels for Float only.
        guard m > 0, Scalar.self == Float.self else { return }
        panels.withUnsafeBufferPointer { stored in
            guard let stored = stored.baseAddress else { return }
            PanelGEMM.product(m: m, n: columns, k: rows, a: UnsafeRawPointer(a).assumingMemoryBound(to: Float.self), lda: lda,
                              panels: UnsafeRawPointer(stored).assumingMemoryBound(to: Float.self), accumulate: accumulate,
                              c: UnsafeMutableRawPointer(c).assumingMemoryBound(to: Float.self), ldc: ldc)
        }
    }
}

/// The products of ``PanelMatrix``, in Float: not generic, so that the tiles compile once with
/// their flags as literals.
enum PanelGEMM {
    /// Rows of A per group: the group (96 KB at k = 256) stays in L2 while every panel passes
    /// over it, and each panel (16 KB at k = 256) in L1 while the group's tiles run. Groups of
    /// 48, 96 and 192 rows ran `[3060, 256] · [256, 256]` at 93.5, 92.5 and 94.9 GFLOP/s, one
    /// group of all rows at 89.1; the smaller groups share the rows of an edge product
    /// (306) among two threads.
    static let groupRows = 96

    static func product(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, panels b: UnsafePointer<Float>,
                        accumulate: Bool, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let panelCount = (n + 15) / 16, rowGroups = (m + groupRows - 1) / groupRows
        // Threads take whole rows where there are enough, so that no two write the same cache
        // line of C (sharing out the panels of 306 rows, two threads took 80 ms for an md17
        // evaluation that one thread ran in 66). A molecule's atoms (21 or 63 rows) are one
        // group, whose panels are then shared out too.
        let threads = ParallelLoop.threadCount
        let panelGroups = rowGroups >= 2 * threads ? 1 : Swift.min(panelCount, (2 * threads + rowGroups - 1) / rowGroups)
        ParallelLoop.forChunks(rowGroups * panelGroups, work: m * n * k) { units in
            for unit in units {
                let group = unit / panelGroups, part = unit % panelGroups
                let first = group * groupRows, last = Swift.min(m, first + groupRows)
                for panel in panelCount * part / panelGroups ..< panelCount * (part + 1) / panelGroups {
                    let column = 16 * panel, width = Swift.min(16, n - column)
                    let w = b + column * k
                    withLiteral(width == 16) { wide in withLiteral(accumulate) { accumulate in
                        for r in Swift.stride(from: first, to: last, by: TileGEMM.tileRows) {
                            TileGEMM.sixRows(wide: wide, valid: Swift.min(TileGEMM.tileRows, last - r), k: k, a + r * lda,
                                             rowStride: lda, step: 1, w, ldb: width, accumulate: accumulate, c + r * ldc + column, ldc: ldc)
                        }
                    } }
                }
            }
        }
    }
}
