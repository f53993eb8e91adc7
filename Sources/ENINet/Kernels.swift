import Foundation
import Tensors

/// Row-major dense kernels the hand-scheduled evaluator is built from.
///
/// Matrices are flat arrays; `[rows, channels]` for scalars and `[rows, 3, channels]` for
/// vectors, so a channel-mixing linear map on vectors is the same GEMM over `3 * rows` rows.
enum Dense {
    /// `C = A · op(B) + beta · C` with `A` `[m, k]`, `op(B)` `[k, n]`; `transposeB` reads `B` as `[n, k]`.
    /// `lda` and `ldc` (row strides, default `k` and `n`) address column blocks of wider matrices.
    @inline(__always)
    static func gemm<T: ENINetFloat>(m: Int, n: Int, k: Int, _ a: UnsafePointer<T>, _ b: UnsafePointer<T>,
                                     transposeB: Bool, beta: T, _ c: UnsafeMutablePointer<T>,
                                     lda: Int? = nil, ldc: Int? = nil) {
        recorded(m: m, n: n, k: k, transposeB: transposeB, accumulates: beta != 0) {
            // Products with four columns are left to `tensorGEMM`, whose register loop for them
            // (Tensors' `FourColumnGEMM`) the training step's products share.
            if k == 4 && n != 4 && !transposeB && (beta == 0 || beta == 1) {
                narrowProduct(m: m, n: n, a, lda: lda ?? k, b, accumulate: beta == 1, c, ldc: ldc ?? n)
                return
            }
            T.tensorGEMM(transposeA: false, transposeB: transposeB, m: m, n: n, k: k, alpha: 1, a: a, lda: lda ?? k,
                         b: b, ldb: transposeB ? k : n, beta: beta, c: c, ldc: ldc ?? n)
        }
    }

    /// `C = A · B` (or `C += A · B` when `accumulate`) with `A` `[m, k]` and B packed once into
    /// `panels` (`[k, n]`), read from them rather than packed again by OpenBLAS for every product.
    @inline(__always)
    static func gemm<T: ENINetFloat>(m: Int, _ a: UnsafePointer<T>, panels: PanelMatrix<T>, accumulate: Bool,
                                     _ c: UnsafeMutablePointer<T>, lda: Int? = nil, ldc: Int? = nil) {
        let n = panels.columns, k = panels.rows
        recorded(m: m, n: n, k: k, transposeB: false, accumulates: accumulate) {
            panels.product(rows: m, a: a, lda: lda ?? k, accumulate: accumulate, c: c, ldc: ldc ?? n)
        }
    }

    /// `product()`, timed into ``ENINetProfile`` when it is enabled.
    @inline(__always)
    private static func recorded(m: Int, n: Int, k: Int, transposeB: Bool, accumulates: Bool, _ product: () -> Void) {
        guard ENINetProfile.isEnabled else { return product() }
        let started = DispatchTime.now().uptimeNanoseconds
        product()
        let elapsed = DispatchTime.now().uptimeNanoseconds - started
        ENINetProfile.gemmNanoseconds += elapsed
        ENINetProfile.gemmCalls += 1
        ENINetProfile.gemmFlops += 2 * m * n * k
        ENINetProfile.shapes[ENINetProfile.Shape(m: m, n: n, k: k, transposeB: transposeB, accumulates: accumulates), default: .init()]
            .add(nanoseconds: elapsed, flops: 2 * m * n * k)
    }

    /// `C (+)= A · B` with an inner dimension of 4 (the triplet features' width): a pass over C
    /// with four multiply-adds per element. OpenBLAS runs `[918, 4] · [4, 256]` at 35–60 GFLOP/s,
    /// the packing and the C traffic costing more than the arithmetic; this writes C once.
    @inline(__always)
    static func narrowProduct<T: ENINetFloat>(m: Int, n: Int, _ a: UnsafePointer<T>, lda: Int, _ b: UnsafePointer<T>,
                                              accumulate: Bool, _ c: UnsafeMutablePointer<T>, ldc: Int) {
        let wide = n - n % 8
        // The body is inlined once per case with `adding` a literal, so that neither copy keeps a
        // select in the channel loop (it cost shuffles and a branch per block).
        @inline(__always) func pass(_ rows: Range<Int>, adding: Bool) {
            for r in rows {
                let x = a + r * lda, y = c + r * ldc
                let x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3]
                let v0 = Lanes<T>(repeating: x0), v1 = Lanes<T>(repeating: x1), v2 = Lanes<T>(repeating: x2), v3 = Lanes<T>(repeating: x3)
                for ch in stride(from: 0, to: wide, by: 8) {
                    let product = (v0 * b.lanes(ch)).adding(v1, times: b.lanes(n + ch)).adding(v2, times: b.lanes(2 * n + ch))
                        .adding(v3, times: b.lanes(3 * n + ch))
                    y.setLanes(ch, adding ? y.lanes(ch) + product : product)
                }
                for ch in wide..<n {
                    let product = x0 * b[ch] + x1 * b[n + ch] + x2 * b[2 * n + ch] + x3 * b[3 * n + ch]
                    y[ch] = adding ? y[ch] + product : product
                }
            }
        }
        // Rows are independent, so a split among threads leaves every number as it is.
        TensorThreads.forChunks(m, work: 8 * m * n) { rows in
            if accumulate { pass(rows, adding: true) } else { pass(rows, adding: false) }
        }
    }
}

@inline(__always) func sigmoid<T: ENINetFloat>(_ x: T) -> T { 1 / (1 + T.exponential(-x)) }
@inline(__always) func silu<T: ENINetFloat>(_ x: T) -> T { x * sigmoid(x) }
/// d silu / dx = σ(x) (1 + x (1 − σ(x))).
@inline(__always) func siluDerivative<T: ENINetFloat>(_ x: T) -> T {
    let s = sigmoid(x)
    return s * (1 + x * (1 - s))
}

/// Opt-in accounting of the time the network spends in GEMM, for benchmarks. Not thread-safe:
/// enable it around single-threaded evaluations only.
public enum ENINetProfile {
    nonisolated(unsafe) public static var isEnabled = false
    nonisolated(unsafe) public static var gemmNanoseconds: UInt64 = 0
    nonisolated(unsafe) public static var gemmCalls = 0
    /// `2·m·n·k` summed over the calls: the multiply-adds the network needs.
    nonisolated(unsafe) public static var gemmFlops = 0

    /// The time per GEMM shape, to tell which shapes run far below the large-GEMM rate.
    nonisolated(unsafe) public static var shapes: [Shape: Tally] = [:]

    public struct Shape: Hashable, Sendable {
        public let m: Int, n: Int, k: Int
        public let transposeB: Bool, accumulates: Bool
    }
    public struct Tally: Sendable {
        public private(set) var calls = 0, nanoseconds: UInt64 = 0, flops = 0
        mutating func add(nanoseconds elapsed: UInt64, flops f: Int) { calls += 1; nanoseconds += elapsed; flops += f }
    }

    public static func reset() {
        gemmNanoseconds = 0
        gemmCalls = 0
        gemmFlops = 0
        shapes = [:]
    }
}

/// The floating-point types the network runs in: the tensor scalars (Float, Double), whose
/// GEMM goes through BLAS.
public protocol ENINetFloat: TensorScalar, SIMDScalar {
    /// `1 / (1 + exp(−x))` on eight lanes. A requirement, so that each precision's body is
    /// compiled with its concrete SIMD operations: the generic ones run lane by lane.
    static func sigmoid(_ x: SIMD8<Self>) -> SIMD8<Self>
    /// `exp(x)` on eight lanes for `x ≤ 0` (Gaussian basis functions), where Float may return
    /// 1.6e-38 in place of a smaller number: a requirement for the same reason as ``sigmoid(_:)``.
    static func decayingExponential(_ x: SIMD8<Self>) -> SIMD8<Self>
    /// `(cos a, sin a)` on eight lanes for angles `a` in [0, π] (the cosine cutoff's), a
    /// requirement for the same reason as ``sigmoid(_:)``.
    static func cosineAndSine(halfTurn a: SIMD8<Self>) -> (cosine: SIMD8<Self>, sine: SIMD8<Self>)
    /// `values` where `test > 0`, else 0, on eight lanes (a requirement for the same reason:
    /// the generic comparison and blend went lane by lane through memory, 46 % of the max-min
    /// vector norm's backward pass).
    static func keepingPositive(_ values: SIMD8<Self>, where test: SIMD8<Self>) -> SIMD8<Self>
    /// ``keepingPositive(_:where:)`` on four lanes (a channel quad).
    static func keepingPositive(_ values: SIMD4<Self>, where test: SIMD4<Self>) -> SIMD4<Self>
    /// `values`, with 0 where `test > limit`, on eight lanes (a requirement for the same reason:
    /// in generic code the comparison went lane by lane through memory, a store-forwarding
    /// stall per lane that took 90 % of the cosine cutoffs' time).
    static func zeroed(_ values: SIMD8<Self>, where test: SIMD8<Self>, exceeds limit: Self) -> SIMD8<Self>
    /// The lane-wise maximum (a requirement: `pointwiseMax` on `SIMD8` stayed a call per block).
    static func laneMaximum(_ a: SIMD8<Self>, _ b: SIMD8<Self>) -> SIMD8<Self>
    /// The lane-wise minimum (a requirement like ``laneMaximum(_:_:)``).
    static func laneMinimum(_ a: SIMD8<Self>, _ b: SIMD8<Self>) -> SIMD8<Self>
}

extension ENINetFloat {
    @inline(__always) static func exponential(_ x: Self) -> Self { tensorExp(x) }
    @inline(__always) static func cosine(_ x: Self) -> Self { tensorCos(x) }
    @inline(__always) static func sine(_ x: Self) -> Self { tensorSin(x) }
}

extension Float: ENINetFloat {
    /// `1 / (1 + exp(−x))` with `exp` as `tensorExp` computes it, on `|x| ≤ 87`; beyond, `x`
    /// is clamped to ±87, where the sigmoid is 1, or 1.6e-38 in place of a smaller number. The
    /// fused triplet pass runs twelve of these per eight triplets, so it takes the `exp`
    /// without special cases.
    @inline(__always) public static func sigmoid(_ x: SIMD8<Float>) -> SIMD8<Float> {
        var y = -x
        y.replace(with: -87, where: y .< -87)
        y.replace(with: 87, where: y .> 87)
        return 1 / (1 + tensorExpInNormalRange(y))
    }
    /// `exp` without special cases, as in ``sigmoid(_:)``: the Gaussians of every triplet were
    /// most of the geometry's time, spent in the general `exp`'s tests for NaN and overflow.
    @inline(__always) public static func decayingExponential(_ x: SIMD8<Float>) -> SIMD8<Float> {
        tensorExpInNormalRange(x.replacing(with: -87, where: x .< -87))
    }
    /// Folded to `u = min(a, π − a)` in [0, π/2] (`π − a` is exact in Float there, and the
    /// residue of `Float.pi` is added back), `sin a = sin u` and `cos a = ±cos u`, from Taylor
    /// series whose first omitted terms are below 6e-8 on [0, π/2]: eight lanes in about thirty
    /// operations, where `cosf` and `sinf` were two library calls per bond and bond pair. The
    /// fold keeps the sine's relative accuracy at small angles (short bonds).
    @inline(__always) public static func cosineAndSine(halfTurn a: SIMD8<Float>) -> (cosine: SIMD8<Float>, sine: SIMD8<Float>) {
        let upperHalf = a .> Float.pi / 2
        // π − Float.pi (which is rounded toward zero), so that the fold measures from π.
        let piResidue = Float(Double.pi - Double(Float.pi))
        let u = a.replacing(with: (Float.pi - a) + piResidue, where: upperHalf), u2 = u * u
        var s = SIMD8<Float>(repeating: -1 / 39_916_800)
        s = s * u2 + 1 / 362_880
        s = s * u2 - 1 / 5_040
        s = s * u2 + 1 / 120
        s = s * u2 - 1 / 6
        s = s * u2 + 1
        var c = SIMD8<Float>(repeating: 1 / 479_001_600)
        c = c * u2 - 1 / 3_628_800
        c = c * u2 + 1 / 40_320
        c = c * u2 - 1 / 720
        c = c * u2 + 1 / 24
        c = c * u2 - 1 / 2
        c = c * u2 + 1
        return (c.replacing(with: -c, where: upperHalf), u * s)
    }
    @inline(__always) public static func keepingPositive(_ values: SIMD8<Float>, where test: SIMD8<Float>) -> SIMD8<Float> {
        SIMD8<Float>().replacing(with: values, where: test .> 0)
    }
    @inline(__always) public static func keepingPositive(_ values: SIMD4<Float>, where test: SIMD4<Float>) -> SIMD4<Float> {
        SIMD4<Float>().replacing(with: values, where: test .> 0)
    }
    @inline(__always) public static func zeroed(_ values: SIMD8<Float>, where test: SIMD8<Float>, exceeds limit: Float) -> SIMD8<Float> {
        values.replacing(with: 0, where: test .> limit)
    }
    @inline(__always) public static func laneMaximum(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> { a.replacing(with: b, where: a .< b) }
    @inline(__always) public static func laneMinimum(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> { a.replacing(with: b, where: b .< a) }
}
extension Double: ENINetFloat {
    @inline(__always) public static func sigmoid(_ x: SIMD8<Double>) -> SIMD8<Double> { 1 / (1 + tensorExp(-x)) }
    @inline(__always) public static func decayingExponential(_ x: SIMD8<Double>) -> SIMD8<Double> { tensorExp(x) }
    @inline(__always) public static func cosineAndSine(halfTurn a: SIMD8<Double>) -> (cosine: SIMD8<Double>, sine: SIMD8<Double>) {
        var c = a, s = a
        for i in 0..<8 { c[i] = cosine(a[i]); s[i] = sine(a[i]) }
        return (c, s)
    }
    @inline(__always) public static func keepingPositive(_ values: SIMD8<Double>, where test: SIMD8<Double>) -> SIMD8<Double> {
        SIMD8<Double>().replacing(with: values, where: test .> 0)
    }
    @inline(__always) public static func keepingPositive(_ values: SIMD4<Double>, where test: SIMD4<Double>) -> SIMD4<Double> {
        SIMD4<Double>().replacing(with: values, where: test .> 0)
    }
    @inline(__always) public static func zeroed(_ values: SIMD8<Double>, where test: SIMD8<Double>, exceeds limit: Double) -> SIMD8<Double> {
        values.replacing(with: 0, where: test .> limit)
    }
    @inline(__always) public static func laneMaximum(_ a: SIMD8<Double>, _ b: SIMD8<Double>) -> SIMD8<Double> { a.replacing(with: b, where: a .< b) }
    @inline(__always) public static func laneMinimum(_ a: SIMD8<Double>, _ b: SIMD8<Double>) -> SIMD8<Double> { a.replacing(with: b, where: b .< a) }
}

/// In-place elementwise updates on flat arrays, through buffer pointers so that the loops
/// vectorise (array subscripts in a loop pay a uniqueness check per store).
enum Elementwise {
    /// `a += b`.
    @inline(__always) static func add<T: ENINetFloat>(_ a: inout [T], _ b: [T]) {
        a.withUnsafeMutableBufferPointer { ap in b.withUnsafeBufferPointer { bp in
            for q in 0..<min(ap.count, bp.count) { ap[q] += bp[q] }
        } }
    }

    /// `a + b` as a new array: one pass, where `var c = a; c += b` copies first whenever `a` is
    /// still referenced (by a cache).
    @inline(__always) static func sum<T: ENINetFloat>(_ a: [T], _ b: [T]) -> [T] {
        let count = min(a.count, b.count)
        return [T].filled(count: count) { out in a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
            for q in 0..<count { out[q] = ap[q] + bp[q] }
        } } }
    }

    /// `a ⊙ b` as a new array.
    @inline(__always) static func product<T: ENINetFloat>(_ a: [T], _ b: [T]) -> [T] {
        let count = min(a.count, b.count)
        return [T].filled(count: count) { out in a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
            for q in 0..<count { out[q] = ap[q] * bp[q] }
        } } }
    }

    /// Row `r` of `a` times `scale[r]`, as a new array: one pass where copying `a` (still held
    /// by a cache) and scaling the copy in place would be two.
    @inline(__always) static func scaledRows<T: ENINetFloat>(_ a: [T], _ scale: [T], width: Int) -> [T] {
        [T].filled(count: a.count) { out in a.withUnsafeBufferPointer { ap in scale.withUnsafeBufferPointer { sp in
            guard let ap = ap.baseAddress else { return }
            // Rows of 4 (triplets) or of multiples of 8 (edges) as whole vectors: the element
            // loop stayed scalar.
            if width == 4 {
                for r in 0..<sp.count { out.setQuad(4 * r, ap.quad(4 * r) * sp[r]) }
                return
            }
            let wide = width - width % 8
            for r in 0..<sp.count {
                let s = sp[r], base = r * width
                for ch in stride(from: 0, to: wide, by: 8) { out.setLanes(base + ch, ap.lanes(base + ch) * s) }
                for ch in wide..<width { out[base + ch] = ap[base + ch] * s }
            }
        } } }
    }

    /// `a *= silu'(pre)`.
    @inline(__always) static func multiplySiluDerivative<T: ENINetFloat>(_ a: inout [T], _ pre: [T]) {
        a.withUnsafeMutableBufferPointer { ap in pre.withUnsafeBufferPointer { pp in
            for q in 0..<min(ap.count, pp.count) { ap[q] *= siluDerivative(pp[q]) }
        } }
    }
}

/// `eight(i)` at `i = range.lowerBound, + 8, …` while eight elements remain, then `one(i)` for
/// each of the rest: a flat loop over elements whose element functions (sigmoids) LLVM does not
/// widen itself, or whose rows are narrower than eight.
@inline(__always)
func forEightLanes(_ range: Range<Int>, _ eight: (Int) -> Void, _ one: (Int) -> Void) {
    var i = range.lowerBound
    while i + 8 <= range.upperBound { eight(i); i += 8 }
    while i < range.upperBound { one(i); i += 1 }
}

/// Eight channels at a time: the message loops accumulate sums over channels, which LLVM does
/// not vectorise on its own (it would have to reassociate floating-point additions).
typealias Lanes<T: ENINetFloat> = SIMD8<T>

extension UnsafePointer where Pointee: ENINetFloat {
    @inline(__always) func lanes(_ offset: Int) -> SIMD8<Pointee> { UnsafeRawPointer(self + offset).loadUnaligned(as: SIMD8<Pointee>.self) }
    @inline(__always) func quad(_ offset: Int) -> SIMD4<Pointee> { UnsafeRawPointer(self + offset).loadUnaligned(as: SIMD4<Pointee>.self) }
    /// `self[base ..< base + count]` in eight lanes, the last of the `count` (1…8) repeated in
    /// the rest: a last, partial block of eight.
    @inline(__always) func lanes(_ base: Int, count: Int) -> SIMD8<Pointee> {
        if count == 8 { return lanes(base) }
        var x = SIMD8<Pointee>()
        for i in 0..<8 { x[i] = self[base + Swift.min(i, count - 1)] }
        return x
    }
}

extension UnsafeMutablePointer where Pointee: ENINetFloat {
    @inline(__always) func lanes(_ offset: Int) -> SIMD8<Pointee> { UnsafeRawPointer(self + offset).loadUnaligned(as: SIMD8<Pointee>.self) }
    @inline(__always) func setLanes(_ offset: Int, _ value: SIMD8<Pointee>) {
        UnsafeMutableRawPointer(self + offset).storeBytes(of: value, as: SIMD8<Pointee>.self)
    }
    @inline(__always) func quad(_ offset: Int) -> SIMD4<Pointee> { UnsafeRawPointer(self + offset).loadUnaligned(as: SIMD4<Pointee>.self) }
    @inline(__always) func setQuad(_ offset: Int, _ value: SIMD4<Pointee>) {
        UnsafeMutableRawPointer(self + offset).storeBytes(of: value, as: SIMD4<Pointee>.self)
    }
}

extension Array where Element: ENINetFloat {
    /// `count` elements, every one written by `fill` through a plain pointer. The pointer is a
    /// constant, unlike the `inout` buffer of `init(unsafeUninitializedCapacity:)`, whose base
    /// address the compiler reloads after every store, which keeps loops from vectorising.
    @inline(__always)
    static func filled(count: Int, _ fill: (UnsafeMutablePointer<Element>) -> Void) -> [Element] {
        [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0, let base = buffer.baseAddress { fill(base) }
            initialized = count
        }
    }
}

/// `Σ_{q < count} term(q)`, eight terms at a time in separate partial sums (`wide(q)` gives
/// terms `q ..< q + 8`), then the remainder one by one.
@inline(__always)
func laneSum<T: ENINetFloat>(_ count: Int, wide: (Int) -> SIMD8<T>, single: (Int) -> T) -> T {
    let end = count - count % 8
    var partial = SIMD8<T>()
    for q in stride(from: 0, to: end, by: 8) { partial += wide(q) }
    var total = partial.sum()
    for q in end..<count { total += single(q) }
    return total
}
