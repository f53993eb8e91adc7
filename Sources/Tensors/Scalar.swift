import CBLAS
import Foundation

/// The element types a ``Tensor`` can hold: `Float` (the default for inference) and `Double`
/// (for gradient checks and on request).
///
/// The requirements are the few scalar functions and BLAS entry points whose names differ
/// between the two precisions; everything else comes from `BinaryFloatingPoint`.
public protocol TensorScalar: BinaryFloatingPoint, Sendable, CustomStringConvertible {
    static func tensorExp(_ x: Self) -> Self
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

extension Float: TensorScalar {
    @inline(__always) public static func tensorExp(_ x: Float) -> Float { expf(x) }
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
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }

    @inline(__always) public init(tensorDouble value: Double) { self = Float(value) }
    @inline(__always) public var tensorDouble: Double { Double(self) }
}

extension Double: TensorScalar {
    @inline(__always) public static func tensorExp(_ x: Double) -> Double { Foundation.exp(x) }
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
        cblas_dgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }

    @inline(__always) public init(tensorDouble value: Double) { self = value }
    @inline(__always) public var tensorDouble: Double { self }
}

/// Threading knobs shared by the BLAS calls and the element loops.
public enum TensorThreads {
    /// Sets the number of OpenBLAS threads and of threads the element loops split over.
    public static func set(_ count: Int) {
        let n = max(1, count)
        openblas_set_num_threads(Int32(n))
        ParallelLoop.threadCount = n
    }

    /// The number of threads the element loops split large loops over.
    public static var count: Int { ParallelLoop.threadCount }

    /// The number of threads OpenBLAS uses.
    public static var blasCount: Int { Int(openblas_get_num_threads()) }
}
