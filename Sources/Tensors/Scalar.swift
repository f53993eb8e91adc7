import CBLAS
import Foundation

/// The element types a ``Tensor`` can hold: `Float` (the default for inference) and `Double`
/// (for gradient checks and on request).
///
/// The requirements are the few scalar functions and BLAS entry points whose names differ
/// between the two precisions; everything else comes from `BinaryFloatingPoint`.
public protocol TensorScalar: BinaryFloatingPoint, SIMDScalar, Codable, Sendable, CustomStringConvertible {
    static func tensorExp(_ x: Self) -> Self
    /// `exp` of eight lanes at once, for fused kernels that hold their values in registers.
    static func tensorExp(_ x: SIMD8<Self>) -> SIMD8<Self>
    static func tensorLog(_ x: Self) -> Self
    static func tensorLog1p(_ x: Self) -> Self
    static func tensorSin(_ x: Self) -> Self
    static func tensorCos(_ x: Self) -> Self
    static func tensorTanh(_ x: Self) -> Self

    /// Row-major GEMM: `C = alpha * op(A) * op(B) + beta * C`, `op(A)` of shape `[m, k]`.
    static func tensorGEMM(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Self, a: UnsafePointer<Self>, lda: Int,
        b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)

    /// Converts from `Double` without going through the generic `BinaryFloatingPoint` initialiser.
    init(tensorDouble value: Double)
    /// The value as a `Double`.
    var tensorDouble: Double { get }
}

/// Whether the build targets FMA hardware (`FUSED_MULTIPLY_ADD`, set by the package).
@usableFromInline enum FusedMultiplyAdd {
    @inlinable @inline(__always) static var isInstruction: Bool {
        #if FUSED_MULTIPLY_ADD
        return true
        #else
        return false
        #endif
    }
}

extension FloatingPoint {
    /// `self + a · b`: one fused multiply-add (a single rounding) when the build targets FMA
    /// hardware, else a multiply and an add, because a fused multiply-add without the
    /// instruction is a library call. Kernels use it where the separate multiply and add were
    /// most of their arithmetic (Swift does not contract them).
    @inlinable @inline(__always)
    public func adding(_ a: Self, times b: Self) -> Self { FusedMultiplyAdd.isInstruction ? addingProduct(a, b) : self + a * b }
}

extension SIMD where Scalar: FloatingPoint {
    /// `self + a · b` lane by lane, fused as ``Swift/FloatingPoint/adding(_:times:)``.
    @inlinable @inline(__always)
    public func adding(_ a: Self, times b: Self) -> Self { FusedMultiplyAdd.isInstruction ? addingProduct(a, b) : self + a * b }
    /// `self + a · b` for a scalar `b`, fused as ``Swift/FloatingPoint/adding(_:times:)``.
    @inlinable @inline(__always)
    public func adding(_ a: Self, times b: Scalar) -> Self { adding(a, times: Self(repeating: b)) }
}

extension Float: TensorScalar {
    // Inlinable so that loops in other modules (ENINet's gated MLPs) inline and widen it.
    @inlinable @inline(__always) public static func tensorExp(_ x: Float) -> Float { vectorizableExp(x) }
    @inlinable @inline(__always) public static func tensorExp(_ x: SIMD8<Float>) -> SIMD8<Float> { vectorizableExp(x) }
    /// `exp` of eight lanes that the caller keeps within [−87, 87]: there `2^k` is one normal
    /// factor and no special case arises, so it is ``tensorExp(_:)-(SIMD8<Float>)`` less a
    /// quarter of its instructions, with the same values.
    @inlinable @inline(__always) public static func tensorExpInNormalRange(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let (expR, exponent) = exponentialParts(x)
        return expR * unsafeBitCast((exponent &+ 127) &<< 23, to: SIMD8<Float>.self)
    }
    @inline(__always) public static func tensorLog(_ x: Float) -> Float { logf(x) }
    @inline(__always) public static func tensorLog1p(_ x: Float) -> Float { log1pf(x) }
    @inline(__always) public static func tensorSin(_ x: Float) -> Float { sinf(x) }
    @inline(__always) public static func tensorCos(_ x: Float) -> Float { cosf(x) }
    @inline(__always) public static func tensorTanh(_ x: Float) -> Float { tanhf(x) }

    public static func tensorGEMM(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if FourColumnGEMM.runIfTaken(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                                     a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc) {
            return
        }
        SmallKernelGEMM.run(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                            a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }

    @inline(__always) public init(tensorDouble value: Double) { self = Float(value) }
    @inline(__always) public var tensorDouble: Double { Double(self) }
}

extension Double: TensorScalar {
    @inline(__always) public static func tensorExp(_ x: Double) -> Double { Foundation.exp(x) }
    @inline(__always) public static func tensorExp(_ x: SIMD8<Double>) -> SIMD8<Double> {
        var y = x
        for i in 0..<8 { y[i] = Foundation.exp(x[i]) }
        return y
    }
    @inline(__always) public static func tensorLog(_ x: Double) -> Double { Foundation.log(x) }
    @inline(__always) public static func tensorLog1p(_ x: Double) -> Double { Foundation.log1p(x) }
    @inline(__always) public static func tensorSin(_ x: Double) -> Double { Foundation.sin(x) }
    @inline(__always) public static func tensorCos(_ x: Double) -> Double { Foundation.cos(x) }
    @inline(__always) public static func tensorTanh(_ x: Double) -> Double { Foundation.tanh(x) }

    public static func tensorGEMM(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Double, a: UnsafePointer<Double>, lda: Int,
        b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        if FourColumnGEMM.runIfTaken(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                                     a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc) {
            return
        }
        ParallelLoop.blasRows(m: m, work: m * n * k) { lo, rows in
            cblas_dgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                        blasint(rows), blasint(n), blasint(k), alpha, transposeA ? a + lo : a + lo * lda, blasint(lda),
                        b, blasint(ldb), beta, c + lo * ldc, blasint(ldc))
        }
    }

    @inline(__always) public init(tensorDouble value: Double) { self = value }
    @inline(__always) public var tensorDouble: Double { self }
}

/// Threading knobs shared by the BLAS calls and the element loops.
public enum TensorThreads {
    /// Sets the number of threads the element loops and the matrix products split over.
    ///
    /// OpenBLAS itself runs on one thread: the products that reach it are cut into row blocks
    /// that the thread team shares out (``ParallelLoop/blasRows(m:work:_:)``). Given threads of
    /// its own, OpenBLAS woke a worker that then waited for its next product by yielding the core
    /// in a loop for 2²⁸ cycles, taking time slices from the team's worker on a 2-core machine.
    public static func set(_ count: Int) {
        let n = max(1, count)
        openblas_set_num_threads(1)
        ParallelLoop.threadCount = n
    }

    /// Sets the OpenBLAS threads and the element-loop threads separately.
    public static func set(blas: Int, loops: Int) {
        openblas_set_num_threads(Int32(clamping: max(1, blas)))
        ParallelLoop.threadCount = max(1, loops)
    }

    /// The number of threads the element loops split large loops over.
    public static var count: Int { ParallelLoop.threadCount }

    /// `body(range)` over chunks of `0 ..< items`, shared among ``count`` threads when `work`
    /// (an estimate of scalar operations, such as rows × row width) is worth a hand-off (about
    /// 8 K), else one call with the whole range: the split the element loops use.
    public static func forChunks(_ items: Int, work: Int, _ body: (Range<Int>) -> Void) {
        ParallelLoop.forChunks(items, work: work, body)
    }

    /// `body(i)` for every `i` in `0 ..< iterations`, shared among ``count`` threads (the caller's
    /// and workers that stay awake between loops, see `ThreadTeam`); returns when all have run.
    /// A call made while another is running (from inside `body`, or from a second thread) runs
    /// its iterations on its caller alone.
    public static func perform(iterations: Int, _ body: (Int) -> Void) {
        ThreadTeam.tensorThreads.perform(iterations: iterations, body)
    }

    /// The number of threads OpenBLAS uses.
    public static var blasCount: Int { Int(openblas_get_num_threads()) }

    /// The CPU kernel set OpenBLAS runs (`Haswell`, `SkylakeX`, ...): detected at load time, or
    /// what `OPENBLAS_CORETYPE` forces. Benchmarks print it, because it can double GEMM speed.
    public static var blasCore: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }
}

/// `exp` for Float in a form the loop vectoriser can widen (libm's `expf` is a call per element,
/// and its overflow path is slow): relative error about 1e-7 (within 2 ulp) over the normal
/// range, gradual underflow below −87.3, 0 below −104, +∞ above 88.72, NaN for NaN.
///
/// exp(x) = 2^k · exp(r) with k = round(x / ln 2) and |r| ≤ ln 2 / 2; exp(r) = 1 + r + r² q(r)
/// where q is a degree-4 least-squares fit of (eʳ − 1 − r) / r² on that interval (made for this
/// project with numpy; maximum relative error 1.03e-8).
@inlinable @inline(__always)
func vectorizableExp(_ x: Float) -> Float {
    let clamped = Swift.min(Swift.max(x, -104.0), 88.75)
    // Adding 1.5·2^23 rounds to an integer in the low mantissa bits without a rounding instruction.
    let shifter: Float = 12_582_912
    let t = shifter.adding(clamped, times: 1.442_695_04)
    let k = t - shifter
    // ln 2 split in two so that k · ln2High is exact.
    let r = clamped.adding(k, times: -0.693_359_375).adding(k, times: 2.121_944_4e-4)
    var q: Float = 0.001_393_364_4
    q = Float(0.008_363_175_6).adding(q, times: r)
    q = Float(0.041_666_465).adding(q, times: r)
    q = Float(0.166_665_77).adding(q, times: r)
    q = Float(0.500_000_001).adding(q, times: r)
    let expR = (1 + r).adding(r * r, times: q)
    // 2^k as two normal factors, so that k from −150 to 128 needs no special case.
    let exponent = Int32(bitPattern: t.bitPattern) &- Int32(bitPattern: shifter.bitPattern)
    let half = exponent >> 1
    let scaleA = Float(bitPattern: UInt32(bitPattern: (half &+ 127) << 23))
    let scaleB = Float(bitPattern: UInt32(bitPattern: (exponent &- half &+ 127) << 23))
    let value = expR * scaleA * scaleB
    return x != x ? x : (x < -104 ? 0 : (x > 88.72 ? Float.infinity : value))
}

/// ``vectorizableExp(_:)-(Float)`` on eight lanes, step for step (same reduction, polynomial
/// and special cases), for kernels that keep their values in SIMD registers.
@inlinable @inline(__always)
func vectorizableExp(_ x: SIMD8<Float>) -> SIMD8<Float> {
    // Masked replacement, not `clamped(lowerBound:upperBound:)`, which is not inlined.
    var clamped = x
    clamped.replace(with: -104, where: x .< -104)
    clamped.replace(with: 88.75, where: x .> 88.75)
    let (expR, exponent) = exponentialParts(clamped)
    let half = exponent &>> 1
    let scaleA = unsafeBitCast((half &+ 127) &<< 23, to: SIMD8<Float>.self)
    let scaleB = unsafeBitCast((exponent &- half &+ 127) &<< 23, to: SIMD8<Float>.self)
    var value = expR * scaleA * scaleB
    value.replace(with: 0, where: x .< -104)
    value.replace(with: .infinity, where: x .> 88.72)
    value.replace(with: x, where: x .!= x)
    return value
}

/// `exp(x) = 2^exponent · expR` on eight lanes of `x` in [−104, 88.75]: the reduction and the
/// polynomial of ``vectorizableExp(_:)-(SIMD8<Float>)``, shared with
/// ``Float/tensorExpInNormalRange(_:)``.
@inlinable @inline(__always)
func exponentialParts(_ x: SIMD8<Float>) -> (expR: SIMD8<Float>, exponent: SIMD8<Int32>) {
    let shifter = SIMD8<Float>(repeating: 12_582_912)
    let t = shifter.adding(x, times: 1.442_695_04)
    let k = t - shifter
    let r = x.adding(k, times: -0.693_359_375).adding(k, times: 2.121_944_4e-4)
    var q = SIMD8<Float>(repeating: 0.001_393_364_4)
    q = SIMD8(repeating: 0.008_363_175_6).adding(q, times: r)
    q = SIMD8(repeating: 0.041_666_465).adding(q, times: r)
    q = SIMD8(repeating: 0.166_665_77).adding(q, times: r)
    q = SIMD8(repeating: 0.500_000_001).adding(q, times: r)
    let expR = (1 + r).adding(r * r, times: q)
    return (expR, unsafeBitCast(t, to: SIMD8<Int32>.self) &- Int32(bitPattern: shifter[0].bitPattern))
}
