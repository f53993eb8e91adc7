// Matrix products through BLAS, linear layers, norms and layer normalisation.

/// `op(a) · op(b)` for matrices, where `op` transposes when asked. Runs as one BLAS GEMM.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func matmul<T: TensorScalar>(_ a: Tensor<T>, _ b: Tensor<T>,
                                    transposeA: Bool = false, transposeB: Bool = false) throws -> Tensor<T> {
    guard a.rank == 2, b.rank == 2 else { throw TensorError.shape("matmul", a.shape, b.shape) }
    let m = transposeA ? a.shape[1] : a.shape[0]
    let k = transposeA ? a.shape[0] : a.shape[1]
    let kb = transposeB ? b.shape[1] : b.shape[0]
    let n = transposeB ? b.shape[0] : b.shape[1]
    guard k == kb else { throw TensorError.shape("matmul", a.shape, b.shape) }
    guard max(m, n, k, a.shape[1], b.shape[1]) <= Int(Int32.max) else {
        throw TensorError("matmul: shapes \(a.shape) and \(b.shape) exceed the 32-bit BLAS interface")
    }
    let s = Storage<T>.make(count: m * n)
    gemm(a, b, transposeA, transposeB, m, n, k, into: s.base, beta: 0)
    return Tensor<T>.result([m, n], s, "matmul", [a, b]) { g, y, needs in
        let a = y.inputs[0], b = y.inputs[1]
        // C = op(A) op(B): dA from g and B, dB from A and g, keeping A and B in their stored layout.
        var ga: Tensor<T>? = nil, gb: Tensor<T>? = nil
        if needs[0] {
            ga = transposeA ? try matmul(b, g, transposeA: transposeB, transposeB: true)
                            : try matmul(g, b, transposeA: false, transposeB: !transposeB)
        }
        if needs[1] {
            gb = transposeB ? try matmul(g, a, transposeA: true, transposeB: transposeA)
                            : try matmul(a, g, transposeA: !transposeA, transposeB: false)
        }
        return [ga, gb]
    }
}

@_specialize(where T == Float)
@_specialize(where T == Double)
func gemm<T: TensorScalar>(_ a: Tensor<T>, _ b: Tensor<T>, _ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int,
                           into c: UnsafeMutablePointer<T>, beta: T) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        if beta == 0 { c.initialize(repeating: 0, count: m * n) }
        return
    }
    T.tensorGEMM(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 1,
                 a: a.storage.base, lda: a.shape[1], b: b.storage.base, ldb: b.shape[1],
                 beta: beta, c: c, ldc: n)
}

/// A linear layer on the last axis: `x · weightᵀ + bias`, with `weight` stored `[out, in]` as
/// in PyTorch's `nn.Linear`. `x` may have any leading axes (`[rows, in]`, `[rows, 3, in]`);
/// without a bias it is the channel map ENINet applies to vectors.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func linear<T: TensorScalar>(_ x: Tensor<T>, weight: Tensor<T>, bias: Tensor<T>? = nil) throws -> Tensor<T> {
    guard weight.rank == 2, x.rank >= 1, x.shape[x.rank - 1] == weight.shape[1] else {
        throw TensorError.shape("linear", x.shape, weight.shape)
    }
    if let bias, bias.shape != [weight.shape[0]] { throw TensorError.shape("linear bias", bias.shape, weight.shape) }
    let inFeatures = weight.shape[1], outFeatures = weight.shape[0]
    let rows = x.count / Swift.max(inFeatures, 1)
    guard max(rows, inFeatures, outFeatures) <= Int(Int32.max) else {
        throw TensorError("linear: shapes \(x.shape) and \(weight.shape) exceed the 32-bit BLAS interface")
    }
    var outShape = x.shape
    outShape[x.rank - 1] = outFeatures
    // One GEMM with the bias preloaded into the output (beta = 1).
    let s = Storage<T>.make(count: rows * outFeatures)
    var beta: T = 0
    if let bias {
        withChannelCount(outFeatures) { width in
            for r in 0..<rows { copyRow(bias.storage.base, to: s.base + r * width, count: width) }
        }
        beta = 1
    }
    let x2 = Tensor<T>(shape: [rows, inFeatures], storage: x.storage)
    gemm(x2, weight, false, true, rows, outFeatures, inFeatures, into: s.base, beta: beta)
    let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
    return Tensor<T>.result(outShape, s, "linear", inputs) { g, y, needs in
        let x = y.inputs[0], w = y.inputs[1]
        let g2 = try g.reshaped([rows, outFeatures])
        let gx: Tensor<T>? = needs[0] ? try matmul(g2, w).reshaped(x.shape) : nil
        let gw: Tensor<T>? = needs[1] ? try matmul(g2, x.reshaped([rows, inFeatures]), transposeA: true) : nil
        let gb: Tensor<T>? = y.inputs.count > 2 && needs[2] ? try g2.sum(axis: 0) : nil
        return [gx, gw, gb]
    }
}

extension Tensor {
    /// Euclidean norm over `axis` (for vectors `[rows, 3, C]`, axis 1 gives `[rows, C]`).
    /// The gradient at a zero vector is taken as zero.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func norm(axis: Int, keepingDimensions: Bool = false) throws -> Tensor {
        let a = try normalizedAxis(axis, "norm")
        let (s, kept) = try constant(.square).reduced(.sum, axes: [a], "norm")
        unaryKernel(.sqrt, s.base, s.base, s.count)
        var outShape = kept
        if !keepingDimensions { outShape.remove(at: a) }
        return Tensor.result(outShape, s, "norm", self) { g, y, _ in
            let x = y.inputs[0]
            let ratio = try Tensor.divideOrZero(g, y).reshaped(kept)
            return [try x * ratio]
        }
    }

    /// Layer normalisation over the last axis: `(x − mean) / sqrt(var + epsilon) · weight + bias`
    /// (biased variance, as in PyTorch).
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func layerNorm(weight: Tensor?, bias: Tensor?, epsilon: Scalar = 1e-5) throws -> Tensor {
        let centred = try self - mean(axis: -1, keepingDimensions: true)
        let variance = try (centred * centred).mean(axis: -1, keepingDimensions: true)
        var y = try centred * (variance + epsilon).sqrt().reciprocal()
        if let weight { y = try y * weight }
        if let bias { y = try y + bias }
        return y
    }
}
