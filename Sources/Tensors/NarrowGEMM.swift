/// Float weight gradients `Aᵀ · B` of the triplet width (`[k, 4 | 8 | 12]ᵀ · [k, 4]` over many
/// rows k), written as register loops for kernel sets without OpenBLAS's small-matrix kernels.
///
/// There OpenBLAS packs both operands into panels first and spent 115 µs per call on
/// `[35004, 4]ᵀ · [35004, 4]` in a batch-8 training step (about 10 GB/s of operands); the sum of
/// outer products below takes about 50. The row-wise products of the same width
/// (`[35004, 4] · [4, 4]`) are ``FourColumnGEMM``'s.
enum NarrowGEMM {
    /// Below this many summed rows OpenBLAS's fixed costs do not matter and it keeps the product.
    static let minimumRows = 256

    /// Whether `Aᵀ · B` (A `[k, m]`, B `[k, n]`) is taken: `n` 4, `m` 4, 8 or 12, `k` at least
    /// ``minimumRows``.
    static func takes(m: Int, n: Int, k: Int) -> Bool {
        n == 4 && (m == 4 || m == 8 || m == 12) && k >= minimumRows
    }

    /// `C = Aᵀ · B` (or `C += Aᵀ · B` when `accumulate`), row-major, A `[k, m]`, B `[k, 4]`. The
    /// caller checks ``takes(m:n:k:)``.
    static func transposedProduct(m: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                  accumulate: Bool, c: UnsafeMutablePointer<Float>, ldc: Int) {
        switch m {
        case 4: outerSums(rows: 4, k: k, a, lda: lda, b, ldb: ldb, accumulate, c, ldc: ldc)
        case 8: outerSums(rows: 8, k: k, a, lda: lda, b, ldb: ldb, accumulate, c, ldc: ldc)
        default: outerSums(rows: 12, k: k, a, lda: lda, b, ldb: ldb, accumulate, c, ldc: ldc)
        }
    }

    typealias Twelve = (SIMD4<Float>, SIMD4<Float>, SIMD4<Float>, SIMD4<Float>, SIMD4<Float>, SIMD4<Float>,
                        SIMD4<Float>, SIMD4<Float>, SIMD4<Float>, SIMD4<Float>, SIMD4<Float>, SIMD4<Float>)

    /// `C[rows, 4] (+)= Aᵀ · B`: a sum over k of outer products, held in registers as two sets of
    /// row sums (even and odd k), so that each multiply-add waits on its chain every other step.
    /// `rows` is a literal at every call, so the unused sums vanish.
    @inline(__always)
    private static func outerSums(rows: Int, k: Int, _ a: UnsafePointer<Float>, lda: Int,
                                  _ b: UnsafePointer<Float>, ldb: Int, _ accumulate: Bool,
                                  _ c: UnsafeMutablePointer<Float>, ldc: Int) {
        @inline(__always) func load(_ p: UnsafePointer<Float>) -> SIMD4<Float> { SIMD4(p[0], p[1], p[2], p[3]) }
        let zero = SIMD4<Float>()
        var even: Twelve = (zero, zero, zero, zero, zero, zero, zero, zero, zero, zero, zero, zero)
        var odd = even
        // The tuple's elements by literal position, so that they stay in registers.
        @inline(__always) func step(_ s: inout Twelve, _ x: UnsafePointer<Float>, _ w: SIMD4<Float>) {
            s.0 = s.0.adding(w, times: x[0]); s.1 = s.1.adding(w, times: x[1])
            s.2 = s.2.adding(w, times: x[2]); s.3 = s.3.adding(w, times: x[3])
            if rows > 4 {
                s.4 = s.4.adding(w, times: x[4]); s.5 = s.5.adding(w, times: x[5])
                s.6 = s.6.adding(w, times: x[6]); s.7 = s.7.adding(w, times: x[7])
            }
            if rows > 8 {
                s.8 = s.8.adding(w, times: x[8]); s.9 = s.9.adding(w, times: x[9])
                s.10 = s.10.adding(w, times: x[10]); s.11 = s.11.adding(w, times: x[11])
            }
        }
        var x = a, w = b
        var q = 0
        while q + 2 <= k {
            step(&even, x, load(w))
            step(&odd, x + lda, load(w + ldb))
            x += 2 * lda
            w += 2 * ldb
            q += 2
        }
        if q < k { step(&even, x, load(w)) }
        @inline(__always) func store(_ i: Int, _ sum: SIMD4<Float>) {
            let y = c + i * ldc
            let total = accumulate ? sum + load(y) : sum
            y[0] = total[0]; y[1] = total[1]; y[2] = total[2]; y[3] = total[3]
        }
        store(0, even.0 + odd.0); store(1, even.1 + odd.1); store(2, even.2 + odd.2); store(3, even.3 + odd.3)
        if rows > 4 { store(4, even.4 + odd.4); store(5, even.5 + odd.5); store(6, even.6 + odd.6); store(7, even.7 + odd.7) }
        if rows > 8 { store(8, even.8 + odd.8); store(9, even.9 + odd.9); store(10, even.10 + odd.10); store(11, even.11 + odd.11) }
    }
}
