import Foundation
import Tensors

/// The right operand `B` (`[k, n]`) of a layer's products: packed into panels once where a
/// panel kernel takes it (Float, `Docs/tensors.md`), else as it is.
enum ProductOperand<T: ENINetFloat>: Sendable {
    case plain([T], rows: Int, columns: Int)
    case packed(PanelMatrix<T>)

    init(_ b: [T], rows k: Int, columns n: Int) {
        let panels = b.withUnsafeBufferPointer { p in p.baseAddress.flatMap { PanelMatrix($0, rows: k, columns: n) } }
        self = panels.map { .packed($0) } ?? .plain(b, rows: k, columns: n)
    }

    /// `C = A · B`, or `C += A · B` when `accumulate`, for `m` rows of A (rows `lda` apart) into C
    /// (rows `ldc` apart); nothing when a dimension is empty.
    func product(rows m: Int, _ a: UnsafePointer<T>, lda: Int? = nil, accumulate: Bool, into c: UnsafeMutablePointer<T>, ldc: Int? = nil) {
        switch self {
        case .packed(let panels):
            guard m > 0 else { return }
            Dense.gemm(m: m, a, panels: panels, accumulate: accumulate, c, lda: lda, ldc: ldc)
        case .plain(let b, let k, let n):
            guard m > 0, k > 0, n > 0 else { return }
            b.withUnsafeBufferPointer { bp in
                guard let ba = bp.baseAddress else { return }
                Dense.gemm(m: m, n: n, k: k, a, ba, transposeB: false, beta: accumulate ? 1 : 0, c, lda: lda, ldc: ldc)
            }
        }
    }
}

/// A linear layer `y = x W^T + b` with `W` stored `[out, in]` as PyTorch stores it.
struct LinearLayer<T: ENINetFloat>: Sendable {
    let weight: [T]
    /// `weightᵀ` (`[in, out]`), the forward pass's B: the products are then `x · B` rather than
    /// `x · Wᵀ`, the form OpenBLAS's small-matrix kernels take (see `Docs/tensors.md`), or panels.
    let forwardOperand: ProductOperand<T>
    /// `weight` (`[out, in]`), the backward pass's B, as it is (the same array) or as panels.
    let backwardOperand: ProductOperand<T>
    let bias: [T]?
    /// `bias`, or zeros without one: what loops that add the bias themselves read.
    let biasOrZeros: [T]
    let inputs: Int
    let outputs: Int

    init(_ file: SafeTensorsFile, _ name: String, bias hasBias: Bool = true) throws {
        let t = try file.tensor(name + ".weight")
        guard t.shape.count == 2 else { throw ModelFileError("\(file.path): tensor '\(name).weight' is not a matrix") }
        self.init(weight: try file.finite(t).map { T($0) },
                  bias: hasBias ? try file.doubles(name + ".bias", shape: [t.shape[0]]).map { T($0) } : nil,
                  inputs: t.shape[1], outputs: t.shape[0])
    }

    init(weight: [T], bias: [T]?, inputs: Int, outputs: Int) {
        self.weight = weight
        self.bias = bias
        biasOrZeros = bias ?? [T](repeating: 0, count: outputs)
        self.inputs = inputs
        self.outputs = outputs
        forwardOperand = ProductOperand(Self.transposed(weight, rows: outputs, columns: inputs), rows: inputs, columns: outputs)
        backwardOperand = ProductOperand(weight, rows: outputs, columns: inputs)
    }

    /// `[columns, rows]` from `[rows, columns]`.
    static func transposed(_ w: [T], rows: Int, columns: Int) -> [T] {
        [T](unsafeUninitializedCapacity: rows * columns) { out, count in
            for r in 0..<rows { for q in 0..<columns { out[q * rows + r] = w[r * columns + q] } }
            count = rows * columns
        }
    }

    /// The layer restricted to input columns `from ..< from + count` (with the bias only if `keepBias`):
    /// `[x1, x2] W^T + b = x1 W1^T + b + x2 W2^T`.
    func inputColumns(from: Int, count: Int, keepBias: Bool) -> LinearLayer<T> {
        var w = [T](repeating: 0, count: outputs * count)
        for o in 0..<outputs { for i in 0..<count { w[o * count + i] = weight[o * inputs + from + i] } }
        return LinearLayer(weight: w, bias: keepBias ? bias : nil, inputs: count, outputs: outputs)
    }

    /// `x W^T + b` for `rows` rows.
    func forward(_ x: [T], rows: Int) -> [T] {
        let outputs = outputs, inputs = inputs
        // The GEMM writes every element (beta = 0) or adds to the preloaded bias (beta = 1), so
        // the output is not zero-filled first.
        return [T](unsafeUninitializedCapacity: rows * outputs) { y, count in
            count = rows * outputs
            guard let ya = y.baseAddress else { return }
            if let bias {
                bias.withUnsafeBufferPointer { b in
                    guard let ba = b.baseAddress else { return }
                    for r in 0..<rows { (ya + r * outputs).initialize(from: ba, count: outputs) }
                }
            } else if inputs == 0 {
                // Empty layers (zero inputs) leave the bias, or zeros.
                ya.initialize(repeating: 0, count: rows * outputs)
            }
            Self.multiply(x, rows: rows, by: forwardOperand, accumulate: bias != nil, into: ya)
        }
    }

    /// `x Wᵀ` without the bias, for callers that add it in the loop that next reads the output.
    func product(_ x: [T], rows: Int) -> [T] {
        let outputs = outputs, inputs = inputs
        return [T].filled(count: rows * outputs) { y in
            if inputs == 0 { y.initialize(repeating: 0, count: rows * outputs) }
            Self.multiply(x, rows: rows, by: forwardOperand, accumulate: false, into: y)
        }
    }

    /// `z = x Wᵀ + b`, `silu(z)` and, with `keepingSigmoids`, `σ(z)` (else empty): the bias is
    /// added by the activation loop rather than preloaded for the GEMM (one pass over the
    /// output fewer). Explicit lanes: with four pointers written and read, LLVM does not
    /// vectorise the loop itself.
    func forwardSiLU(_ x: [T], rows: Int, keepingSigmoids: Bool = false) -> (pre: [T], activated: [T], sigmoids: [T]) {
        var pre = product(x, rows: rows)
        let width = outputs
        @inline(__always) func activate(into a: UnsafeMutablePointer<T>, sigmoids s: UnsafeMutablePointer<T>?) {
            pre.withUnsafeMutableBufferPointer { p in biasOrZeros.withUnsafeBufferPointer { b in
                guard let p = p.baseAddress, let b = b.baseAddress else { return }
                let wide = width - width % 8
                if width < 8, 8 % width == 0 {
                    // Rows narrower than eight (the bonds' four triplet channels): eight elements
                    // of consecutive rows at a time, the bias repeated across them. Row by row,
                    // every element took the scalar sigmoid.
                    var bias = SIMD8<T>()
                    for k in 0..<8 { bias[k] = b[k % width] }
                    TensorThreads.forChunks(rows, work: rows * width) { range in
                        forEightLanes(range.lowerBound * width ..< range.upperBound * width, { i in
                            let z = p.lanes(i) + bias, v = T.sigmoid(z)
                            p.setLanes(i, z); a.setLanes(i, z * v); s?.setLanes(i, v)
                        }, { i in
                            let z = p[i] + b[i % width], v = sigmoid(z)
                            p[i] = z; a[i] = z * v; s?[i] = v
                        })
                    }
                    return
                }
                TensorThreads.forChunks(rows, work: rows * width) { range in for r in range {
                    let row = r * width
                    for q in stride(from: 0, to: wide, by: 8) {
                        let z = p.lanes(row + q) + b.lanes(q), v = T.sigmoid(z)
                        p.setLanes(row + q, z); a.setLanes(row + q, z * v); s?.setLanes(row + q, v)
                    }
                    for q in wide..<width { let z = p[row + q] + b[q], v = sigmoid(z); p[row + q] = z; a[row + q] = z * v; s?[row + q] = v }
                } }
            } }
        }
        var sigmoids = [T]()
        let activated = [T].filled(count: rows * width) { a in
            if keepingSigmoids {
                sigmoids = [T].filled(count: rows * width) { s in activate(into: a, sigmoids: s) }
            } else {
                activate(into: a, sigmoids: nil)
            }
        }
        return (pre, activated, sigmoids)
    }

    /// `x Wᵀ + b + addend`: the GEMM accumulates onto `addend` (no separate sum pass), in its
    /// own buffer when the caller hands it over with `consume`, else on a copy.
    func forward(_ x: [T], rows: Int, adding addend: consuming [T]) -> [T] {
        var y = consume addend
        let outputs = outputs
        y.withUnsafeMutableBufferPointer { yp in
            guard let ya = yp.baseAddress else { return }
            if let bias {
                for r in 0..<rows { for o in 0..<outputs { ya[r * outputs + o] += bias[o] } }
            }
            Self.multiply(x, rows: rows, by: forwardOperand, accumulate: true, into: ya)
        }
        return y
    }

    /// The input gradient `gy W` for output gradient `gy`.
    func backward(_ gy: [T], rows: Int) -> [T] {
        guard rows > 0, inputs > 0, outputs > 0 else { return [T](repeating: 0, count: rows * inputs) }
        let inputs = inputs
        return [T](unsafeUninitializedCapacity: rows * inputs) { gx, count in
            count = rows * inputs
            guard let xa = gx.baseAddress else { return }
            Self.multiply(gy, rows: rows, by: backwardOperand, accumulate: false, into: xa)
        }
    }

    /// Adds the input gradient `gy W` to `gx` (the GEMM accumulates: no separate sum pass).
    func backward(_ gy: [T], rows: Int, addingInto gx: inout [T]) {
        gx.withUnsafeMutableBufferPointer { xp in
            guard let xa = xp.baseAddress else { return }
            Self.multiply(gy, rows: rows, by: backwardOperand, accumulate: true, into: xa)
        }
    }

    /// `y (+)= x · B` for the `[rows, ·]` array `x`.
    private static func multiply(_ x: [T], rows: Int, by operand: ProductOperand<T>, accumulate: Bool, into y: UnsafeMutablePointer<T>) {
        x.withUnsafeBufferPointer { xp in
            if let xa = xp.baseAddress { operand.product(rows: rows, xa, accumulate: accumulate, into: y) }
        }
    }
}

/// `net.2(silu(net.0 x))`.
struct MLPLayer<T: ENINetFloat>: Sendable {
    let first: LinearLayer<T>
    let second: LinearLayer<T>

    init(first: LinearLayer<T>, second: LinearLayer<T>) {
        self.first = first
        self.second = second
    }

    init(_ file: SafeTensorsFile, _ name: String) throws {
        self.init(first: try LinearLayer(file, name + ".net.0"), second: try LinearLayer(file, name + ".net.2"))
    }

    /// Output and the hidden pre-activation (kept for the backward pass).
    func forward(_ x: [T], rows: Int) -> (y: [T], hidden: [T]) {
        let (h, a, _) = first.forwardSiLU(x, rows: rows)
        return (second.forward(a, rows: rows), h)
    }

    func backward(_ gy: [T], hidden: [T], rows: Int) -> [T] {
        var ga = second.backward(gy, rows: rows)
        let width = first.outputs
        ga.withUnsafeMutableBufferPointer { g in hidden.withUnsafeBufferPointer { h in
            guard let g = g.baseAddress, let h = h.baseAddress else { return }
            TensorThreads.forChunks(rows, work: rows * width) { range in
                forEightLanes(range.lowerBound * width ..< range.upperBound * width, { q in
                    let x = h.lanes(q), s = T.sigmoid(x)
                    g.setLanes(q, g.lanes(q) * (s * (1 + x * (1 - s))))
                }, { q in g[q] *= siluDerivative(h[q]) })
            }
        } }
        return first.backward(ga, rows: rows)
    }
}

/// `MLP_net(x) ⊙ silu(MLP_gates(x))`.
///
/// Both MLPs read the same input, so their first layers run as one GEMM with the weights
/// stacked (`[net.0; gates.0]`), forward and backward; the sigmoids of the forward pass are kept,
/// so the backward pass evaluates no exponential.
struct GateMLPLayer<T: ENINetFloat>: Sendable {
    /// `[net.0; gates.0]`: `2·hidden` outputs.
    let first: LinearLayer<T>
    let netSecond: LinearLayer<T>
    let gatesSecond: LinearLayer<T>
    let hidden: Int

    init(_ file: SafeTensorsFile, _ name: String) throws {
        let net0 = try LinearLayer<T>(file, name + ".net.0"), gates0 = try LinearLayer<T>(file, name + ".gates.0")
        netSecond = try LinearLayer(file, name + ".net.2")
        gatesSecond = try LinearLayer(file, name + ".gates.2")
        guard net0.inputs == gates0.inputs, net0.outputs == gates0.outputs, netSecond.inputs == net0.outputs,
              gatesSecond.inputs == gates0.outputs, netSecond.outputs == gatesSecond.outputs else {
            throw ModelFileError("\(file.path): the layers of '\(name)' have inconsistent shapes")
        }
        hidden = net0.outputs
        first = LinearLayer(weight: net0.weight + gates0.weight, bias: net0.biasOrZeros + gates0.biasOrZeros,
                            inputs: net0.inputs, outputs: 2 * hidden)
    }

    /// Hidden pre-activations `[rows, 2H]` and their sigmoids; second-layer outputs `a` (net) and
    /// `g` (gates) and `σ(g)`.
    struct Cache { var hiddenPre: [T], hiddenSigmoid: [T], value: [T], gate: [T], gateSigmoid: [T] }

    func forward(_ x: [T], rows: Int) -> (y: [T], cache: Cache) {
        let h = hidden, width = 2 * hidden, outputs = netSecond.outputs
        // Every GEMM here writes its output (beta 0) and the bias is added by the loop that reads
        // it next: a bias prefill is one more pass over the output and makes the GEMM read it.
        let (pre, act, sig) = first.forwardSiLU(x, rows: rows, keepingSigmoids: true)
        var gate = [T]()
        var value = [T].filled(count: rows * outputs) { va in gate = [T].filled(count: rows * outputs) { ga in
            act.withUnsafeBufferPointer { a in
                guard h > 0, let aa = a.baseAddress else {
                    va.initialize(repeating: 0, count: rows * outputs)
                    ga.initialize(repeating: 0, count: rows * outputs)
                    return
                }
                netSecond.forwardOperand.product(rows: rows, aa, lda: width, accumulate: false, into: va)
                gatesSecond.forwardOperand.product(rows: rows, aa + h, lda: width, accumulate: false, into: ga)
            }
        } }
        // New arrays rather than copies of `gate` and `value` (both stay in the cache), which
        // the loop would overwrite anyway.
        var y = [T]()
        let gateSigmoid = [T].filled(count: gate.count) { s in
            y = [T].filled(count: gate.count) { yp in
                gate.withUnsafeMutableBufferPointer { g in value.withUnsafeMutableBufferPointer { v in
                netSecond.biasOrZeros.withUnsafeBufferPointer { vb in gatesSecond.biasOrZeros.withUnsafeBufferPointer { gb in
                    guard let g = g.baseAddress, let v = v.baseAddress, let vb = vb.baseAddress, let gb = gb.baseAddress else { return }
                    let wide = outputs - outputs % 8
                    TensorThreads.forChunks(rows, work: rows * outputs) { range in for r in range {
                        let row = r * outputs
                        for q in stride(from: 0, to: wide, by: 8) {
                            let gq = g.lanes(row + q) + gb.lanes(q), vq = v.lanes(row + q) + vb.lanes(q), sg = T.sigmoid(gq)
                            g.setLanes(row + q, gq); v.setLanes(row + q, vq); s.setLanes(row + q, sg); yp.setLanes(row + q, vq * gq * sg)
                        }
                        for q in wide..<outputs {
                            let gq = g[row + q] + gb[q], vq = v[row + q] + vb[q]
                            g[row + q] = gq
                            v[row + q] = vq
                            let sg = sigmoid(gq)
                            s[row + q] = sg
                            yp[row + q] = vq * gq * sg
                        }
                    } }
                } } } }
            }
        }
        return (y, Cache(hiddenPre: pre, hiddenSigmoid: sig, value: value, gate: gate, gateSigmoid: gateSigmoid))
    }

    func backward(_ gy: [T], cache: Cache, rows: Int) -> [T] {
        let h = hidden, width = 2 * hidden, outputs = netSecond.outputs
        let count = rows * outputs
        // Both written once by the loop (no zero fill, and no copy of a shared zero array).
        var gg = [T]()
        let ga = [T].filled(count: count) { gap in
            gg = [T].filled(count: count) { ggp in
                gy.withUnsafeBufferPointer { gyp in cache.gate.withUnsafeBufferPointer { gate in
                cache.value.withUnsafeBufferPointer { value in cache.gateSigmoid.withUnsafeBufferPointer { sig in
                    guard let gyp = gyp.baseAddress, let gate = gate.baseAddress, let value = value.baseAddress,
                          let sig = sig.baseAddress else { return }
                    TensorThreads.forChunks(rows, work: rows * outputs) { range in
                        forEightLanes(range.lowerBound * outputs ..< range.upperBound * outputs, { q in
                            let s = sig.lanes(q), g = gate.lanes(q), d = gyp.lanes(q)
                            gap.setLanes(q, d * g * s)
                            ggp.setLanes(q, d * value.lanes(q) * s * (1 + g * (1 - s)))
                        }, { q in
                            let s = sig[q], g = gate[q], d = gyp[q]
                            gap[q] = d * g * s
                            ggp[q] = d * value[q] * s * (1 + g * (1 - s))
                        })
                    }
                } } } }
            }
        }
        // Both second layers' input gradients side by side, as the stacked first layer reads them.
        var gHidden = [T](repeating: 0, count: rows * width)
        if rows > 0, h > 0, outputs > 0 {
            ga.withUnsafeBufferPointer { a in gg.withUnsafeBufferPointer { g in gHidden.withUnsafeMutableBufferPointer { gh in
                guard let aa = a.baseAddress, let gga = g.baseAddress, let gha = gh.baseAddress else { return }
                netSecond.backwardOperand.product(rows: rows, aa, accumulate: false, into: gha, ldc: width)
                gatesSecond.backwardOperand.product(rows: rows, gga, accumulate: false, into: gha + h, ldc: width)
            } } }
        }
        gHidden.withUnsafeMutableBufferPointer { g in cache.hiddenPre.withUnsafeBufferPointer { p in cache.hiddenSigmoid.withUnsafeBufferPointer { s in
            guard let g = g.baseAddress, let p = p.baseAddress, let s = s.baseAddress else { return }
            TensorThreads.forChunks(rows, work: rows * width) { range in
                forEightLanes(range.lowerBound * width ..< range.upperBound * width, { q in
                    let sq = s.lanes(q)
                    g.setLanes(q, g.lanes(q) * (sq * (1 + p.lanes(q) * (1 - sq))))
                }, { q in g[q] *= s[q] * (1 + p[q] * (1 - s[q])) })
            }
        } } }
        return first.backward(gHidden, rows: rows)
    }
}

/// LayerNorm over channels with learned scale and shift, eps 1e-5.
struct LayerNormLayer<T: ENINetFloat>: Sendable {
    let weight: [T]
    let bias: [T]
    let channels: Int

    init(_ file: SafeTensorsFile, _ name: String, channels: Int) throws {
        weight = try file.doubles(name + ".weight", shape: [channels]).map { T($0) }
        bias = try file.doubles(name + ".bias", shape: [channels]).map { T($0) }
        self.channels = channels
    }

    /// Mean and `1/√(variance + 1e-5)` of the `c` values from `row`.
    @inline(__always)
    static func statistics(_ x: UnsafePointer<T>, row: Int, channels c: Int) -> (mean: T, inverseDeviation: T) {
        let mean = laneSum(c, wide: { x.lanes(row + $0) }, single: { x[row + $0] }) / T(c)
        let variance = laneSum(c, wide: { let d = x.lanes(row + $0) - mean; return d * d },
                               single: { let d = x[row + $0] - mean; return d * d }) / T(c)
        return (mean, 1 / (variance + T(1e-5)).squareRoot())
    }

    func forward(_ x: [T], rows: Int) -> [T] {
        let c = channels
        return [T].filled(count: x.count) { o in
        x.withUnsafeBufferPointer { xp in
        weight.withUnsafeBufferPointer { w in bias.withUnsafeBufferPointer { b in
            guard let xp = xp.baseAddress, let w = w.baseAddress, let b = b.baseAddress else { return }
            let wide = c - c % 8
            TensorThreads.forChunks(rows, work: rows * c) { range in for r in range {
                let row = r * c
                let (mean, inv) = Self.statistics(xp, row: row, channels: c)
                for ch in stride(from: 0, to: wide, by: 8) {
                    o.setLanes(row + ch, b.lanes(ch).adding((xp.lanes(row + ch) - mean) * inv, times: w.lanes(ch)))
                }
                for ch in wide..<c { o[row + ch] = (xp[row + ch] - mean) * inv * w[ch] + b[ch] }
            } }
        } } }
        }
    }

    /// The input gradient, given the forward input `x`.
    func backward(_ gy: [T], input x: [T], rows: Int) -> [T] {
        let c = channels
        let cT = T(c)
        return [T].filled(count: x.count) { o in
        x.withUnsafeBufferPointer { xp in
        gy.withUnsafeBufferPointer { g in weight.withUnsafeBufferPointer { w in
            guard let xp = xp.baseAddress, let g = g.baseAddress, let w = w.baseAddress else { return }
            TensorThreads.forChunks(rows, work: rows * c) { range in for r in range {
                let row = r * c
                let (mean, inv) = Self.statistics(xp, row: row, channels: c)
                let meanG = laneSum(c, wide: { g.lanes(row + $0) * w.lanes($0) }, single: { g[row + $0] * w[$0] }) / cT
                let meanGX = laneSum(c, wide: { g.lanes(row + $0) * w.lanes($0) * (xp.lanes(row + $0) - mean) },
                                     single: { g[row + $0] * w[$0] * (xp[row + $0] - mean) }) * inv / cT
                let wide = c - c % 8
                for ch in stride(from: 0, to: wide, by: 8) {
                    let xhat = (xp.lanes(row + ch) - mean) * inv
                    o.setLanes(row + ch, inv * (g.lanes(row + ch) * w.lanes(ch) - meanG - xhat * meanGX))
                }
                for ch in wide..<c {
                    let xhat = (xp[row + ch] - mean) * inv
                    o[row + ch] = inv * (g[row + ch] * w[ch] - meanG - xhat * meanGX)
                }
            } }
        } } }
        }
    }
}

/// Normalisation of vector channels `[rows, 3, C]`: the reference's max–min rescaling of the
/// channel norms, or the smooth RMS variant.
struct VectorNormLayer<T: ENINetFloat>: Sendable {
    let weight: [T]
    let channels: Int
    let kind: ENINetConfiguration.VectorNorm
    let epsilon: T

    init(_ file: SafeTensorsFile, _ name: String, channels: Int, kind: ENINetConfiguration.VectorNorm, epsilon: Double) throws {
        weight = try file.doubles(name + ".weight", shape: [channels]).map { T($0) }
        self.channels = channels
        self.kind = kind
        self.epsilon = T(epsilon)
    }

    static var normFloor: T { T(1e-12) }
    static var spreadFloor: T { T(1e-7) }

    /// The minimum and maximum of a row's norms floored at ``normFloor``: eight running
    /// minima and maxima, since one is a chain of dependent comparisons across the channels.
    @inline(__always)
    static func flooredRange(_ norms: UnsafeMutablePointer<T>, channels c: Int) -> (lo: T, hi: T) {
        let wide = c - c % 8
        var lo = T.infinity, hi = -T.infinity
        if wide > 0 {
            let floor = Lanes<T>(repeating: normFloor)
            var lo8 = Lanes<T>(repeating: .infinity), hi8 = Lanes<T>(repeating: -.infinity)
            for ch in stride(from: 0, to: wide, by: 8) {
                let a = T.laneMaximum(norms.lanes(ch), floor)
                lo8 = T.laneMinimum(lo8, a)
                hi8 = T.laneMaximum(hi8, a)
            }
            for i in 0..<8 { lo = min(lo, lo8[i]); hi = max(hi, hi8[i]) }
        }
        for ch in wide..<c { let a = max(norms[ch], normFloor); lo = min(lo, a); hi = max(hi, a) }
        return (lo, hi)
    }

    func forward(_ v: [T], rows: Int) -> [T] {
        let c = channels
        // Written from `v` directly: the input stays in the backward cache, so scaling a copy in
        // place would copy it first.
        return [T].filled(count: v.count) { op in
        v.withUnsafeBufferPointer { vp in weight.withUnsafeBufferPointer { w in
            guard let vp = vp.baseAddress, let w = w.baseAddress else { return }
            let wide = c - c % 8
            TensorThreads.forChunks(rows, work: 3 * rows * c) { range in
            // A row's norms, turned into its scales: scratch of each chunk's own.
            let np = UnsafeMutablePointer<T>.allocate(capacity: c)
            defer { np.deallocate() }
            for r in range {
                let base = r * 3 * c
                VectorChannels.rowNorms(vp + base, channels: c, into: np)
                // The norms become the scales in place.
                switch kind {
                case .maxMin:
                    let (lo, hi) = Self.flooredRange(np, channels: c)
                    var spread = hi - lo
                    if spread < Self.spreadFloor { spread = 1 }
                    for ch in 0..<c {
                        let a = max(np[ch], Self.normFloor)
                        np[ch] = max((a - lo) / spread, 0) / a * w[ch]
                    }
                case .rms:
                    var sum: T = 0
                    for ch in 0..<c { sum += np[ch] * np[ch] }
                    let inv = 1 / (sum / T(c) + epsilon).squareRoot()
                    for ch in 0..<c { np[ch] = inv * w[ch] }
                }
                for x in 0..<3 {
                    let o = base + x * c
                    for ch in stride(from: 0, to: wide, by: 8) { op.setLanes(o + ch, vp.lanes(o + ch) * np.lanes(ch)) }
                    for ch in wide..<c { op[o + ch] = vp[o + ch] * np[ch] }
                }
            }
            }
        } }
        }
    }

    /// The input gradient, given the forward input `v`. At ties of the max or min the gradient
    /// goes to the first channel, and the min channel (output exactly zero) passes none, as
    /// PyTorch's `relu` does at zero.
    func backward(_ gout: [T], input v: [T], rows: Int) -> [T] {
        let c = channels
        // Per row: out = s_c v_c with a per-channel scale s_c that depends on the norms, so
        // gv_c = s_c gout_c + k_c v_c. The channel loops compute s and k; the xyz loops then run
        // over contiguous channels.
        return [T].filled(count: v.count) { gvp in
            v.withUnsafeBufferPointer { vp in gout.withUnsafeBufferPointer { gp in weight.withUnsafeBufferPointer { w in
                guard let vp = vp.baseAddress, let gp = gp.baseAddress, let w = w.baseAddress else { return }
                TensorThreads.forChunks(rows, work: 3 * rows * c) { range in
                // norms, gradients on the scales, gradients on the norms, scales, norm
                // coefficients: scratch of each chunk's own.
                let nrm = UnsafeMutablePointer<T>.allocate(capacity: 5 * c)
                nrm.initialize(repeating: 0, count: 5 * c)
                defer { nrm.deallocate() }
                let gs = nrm + c, gn = nrm + 2 * c, scale = nrm + 3 * c, k = nrm + 4 * c
                // Eight channels at a time where the loops carry no dependence (LLVM does not
                // widen them itself: it cannot tell the scratch rows from the inputs).
                let wide = c - c % 8
                for r in range {
                    let base = r * 3 * c
                    for ch in stride(from: 0, to: wide, by: 8) {
                        let x = vp.lanes(base + ch), y = vp.lanes(base + c + ch), z = vp.lanes(base + 2 * c + ch)
                        nrm.setLanes(ch, (x * x + y * y + z * z).squareRoot())
                        gs.setLanes(ch, (gp.lanes(base + ch) * x).adding(gp.lanes(base + c + ch), times: y).adding(gp.lanes(base + 2 * c + ch), times: z))
                    }
                    for ch in wide..<c {
                        let x = vp[base + ch], y = vp[base + c + ch], z = vp[base + 2 * c + ch]
                        nrm[ch] = (x * x + y * y + z * z).squareRoot()
                        gs[ch] = gp[base + ch] * x + gp[base + c + ch] * y + gp[base + 2 * c + ch] * z
                    }
                    switch kind {
                    case .maxMin:
                        let (lo, hi) = Self.flooredRange(nrm, channels: c)
                        // The first channels at the minimum and the maximum, as a running
                        // comparison with strict < and > finds them.
                        var argLo = 0, argHi = 0
                        for ch in 0..<c where max(nrm[ch], Self.normFloor) == lo { argLo = ch; break }
                        for ch in 0..<c where max(nrm[ch], Self.normFloor) == hi { argHi = ch; break }
                        let clamped = hi - lo < Self.spreadFloor
                        let inverseSpread = clamped ? 1 : 1 / (hi - lo)
                        // Branch-free over channels, so that it vectorises. Afterwards k holds
                        // gRatio / spread and gs the ratio, for the sums over the min and max channels.
                        for ch in stride(from: 0, to: wide, by: 8) {
                            let a = T.laneMaximum(nrm.lanes(ch), Lanes<T>(repeating: Self.normFloor))
                            let inverseNorm = 1 / a
                            let ratio = (a - lo) * inverseSpread
                            let relu = T.laneMaximum(ratio, Lanes<T>())
                            let wgs = w.lanes(ch) * gs.lanes(ch)
                            scale.setLanes(ch, relu * inverseNorm * w.lanes(ch))
                            let gRatio = T.keepingPositive(wgs * inverseNorm, where: ratio)
                            gn.setLanes(ch, -wgs * relu * inverseNorm * inverseNorm + gRatio * inverseSpread)
                            k.setLanes(ch, gRatio * inverseSpread)
                            gs.setLanes(ch, ratio)
                        }
                        for ch in wide..<c {
                            let a = max(nrm[ch], Self.normFloor)
                            let inverseNorm = 1 / a
                            let ratio = (a - lo) * inverseSpread
                            let relu = max(ratio, 0)
                            scale[ch] = relu * inverseNorm * w[ch]
                            // s = w relu(ratio) / a.
                            let gRatio = ratio > 0 ? gs[ch] * w[ch] * inverseNorm : 0
                            gn[ch] = -gs[ch] * w[ch] * relu * inverseNorm * inverseNorm + gRatio * inverseSpread
                            k[ch] = gRatio * inverseSpread
                            gs[ch] = ratio
                        }
                        // Eight partial sums: a single running sum is a chain of dependent adds.
                        var gLo8 = Lanes<T>(), gHi8 = Lanes<T>()
                        var gLo: T = 0, gHi: T = 0
                        if clamped {
                            for ch in stride(from: 0, to: wide, by: 8) { gLo8 -= k.lanes(ch) }
                            for ch in wide..<c { gLo -= k[ch] }
                        } else {
                            // d ratio / d lo = (ratio − 1) / spread, d ratio / d hi = −ratio / spread.
                            for ch in stride(from: 0, to: wide, by: 8) {
                                let kk = k.lanes(ch), ratio = gs.lanes(ch)
                                gLo8 += kk * (ratio - 1)
                                gHi8 -= kk * ratio
                            }
                            for ch in wide..<c { gLo += k[ch] * (gs[ch] - 1); gHi -= k[ch] * gs[ch] }
                        }
                        gn[argLo] += gLo + gLo8.sum()
                        gn[argHi] += gHi + gHi8.sum()
                        let floor = Lanes<T>(repeating: Self.normFloor)
                        for ch in stride(from: 0, to: wide, by: 8) {
                            let norms = nrm.lanes(ch)
                            k.setLanes(ch, T.keepingPositive(gn.lanes(ch) / norms, where: norms - floor))
                        }
                        for ch in wide..<c { k[ch] = nrm[ch] > Self.normFloor ? gn[ch] / nrm[ch] : 0 }
                    case .rms:
                        var sum: T = 0
                        for ch in 0..<c { sum += nrm[ch] * nrm[ch] }
                        let inv = 1 / (sum / T(c) + epsilon).squareRoot()
                        var dot: T = 0
                        for ch in 0..<c { dot += w[ch] * gs[ch] }
                        let coefficient = -inv * inv * inv / T(c) * dot
                        for ch in 0..<c { scale[ch] = inv * w[ch]; k[ch] = coefficient }
                    }
                    for x in 0..<3 {
                        let o = base + x * c
                        for ch in stride(from: 0, to: wide, by: 8) {
                            gvp.setLanes(o + ch, (scale.lanes(ch) * gp.lanes(o + ch)).adding(k.lanes(ch), times: vp.lanes(o + ch)))
                        }
                        for ch in wide..<c { gvp[o + ch] = scale[ch] * gp[o + ch] + k[ch] * vp[o + ch] }
                    }
                }
                }
            } } }
        }
    }
}

/// Per-channel Euclidean norms over xyz of vectors `[rows, 3, C]`, and their backward
/// (zero gradient at a zero vector, as PyTorch's norm gives).
enum VectorChannels {
    /// The `c` channel norms of one `[3, c]` row, eight channels at a time.
    @inline(__always)
    static func rowNorms<T: ENINetFloat>(_ v: UnsafePointer<T>, channels c: Int, into norms: UnsafeMutablePointer<T>) {
        let wide = c - c % 8
        for ch in stride(from: 0, to: wide, by: 8) {
            let x = v.lanes(ch), y = v.lanes(c + ch), z = v.lanes(2 * c + ch)
            norms.setLanes(ch, (x * x + y * y + z * z).squareRoot())
        }
        for ch in wide..<c { norms[ch] = (v[ch] * v[ch] + v[c + ch] * v[c + ch] + v[2 * c + ch] * v[2 * c + ch]).squareRoot() }
    }

    static func norms<T: ENINetFloat>(_ v: [T], rows: Int, channels c: Int) -> [T] {
        [T].filled(count: rows * c) { out in
            v.withUnsafeBufferPointer { vp in
                guard let vp = vp.baseAddress else { return }
                TensorThreads.forChunks(rows, work: 3 * rows * c) { range in
                    for r in range { rowNorms(vp + r * 3 * c, channels: c, into: out + r * c) }
                }
            }
        }
    }

    /// Adds the gradient of `gn` (on the norms `n`) to `gv` (on the vectors `v`).
    static func accumulateNormBackward<T: ENINetFloat>(_ gn: [T], norms n: [T], vectors v: [T], rows: Int, channels c: Int, into gv: inout [T]) {
        gv.withUnsafeMutableBufferPointer { g in gn.withUnsafeBufferPointer { gnp in n.withUnsafeBufferPointer { np in v.withUnsafeBufferPointer { vp in
            // Four channels (the bonds' hidden vectors in the three-body block) as `SIMD4` rows.
            if c == 4, let gq = g.baseAddress, let gnq = gnp.baseAddress, let nq = np.baseAddress, let vq = vp.baseAddress {
                TensorThreads.forChunks(rows, work: rows * 12) { range in for r in range {
                    let norms = nq.quad(4 * r)
                    let k = T.keepingPositive(gnq.quad(4 * r) / norms, where: norms)
                    for x in 0..<3 { let o = (r * 3 + x) * 4; gq.setQuad(o, gq.quad(o) + k * vq.quad(o)) }
                } }
                return
            }
            TensorThreads.forChunks(rows, work: 3 * rows * c) { range in for r in range {
                for ch in 0..<c where np[r * c + ch] > 0 {
                    let k = gnp[r * c + ch] / np[r * c + ch]
                    for x in 0..<3 { g[(r * 3 + x) * c + ch] += k * vp[(r * 3 + x) * c + ch] }
                }
            } }
        } } } }
    }

    /// Columns `from ..< from + count` of a `[rows, width]` matrix.
    static func columns<T: ENINetFloat>(_ m: [T], rows: Int, width: Int, from: Int, count: Int) -> [T] {
        [T](unsafeUninitializedCapacity: rows * count) { out, initialized in
            initialized = rows * count
            m.withUnsafeBufferPointer { mp in
                guard let source = mp.baseAddress, let target = out.baseAddress else { return }
                for r in 0..<rows { (target + r * count).initialize(from: source + r * width + from, count: count) }
            }
        }
    }

    /// `[a, b]` along channels.
    static func concatenate<T: ENINetFloat>(_ a: [T], _ ca: Int, _ b: [T], _ cb: Int, rows: Int) -> [T] {
        let width = ca + cb
        return [T](unsafeUninitializedCapacity: rows * width) { out, initialized in
            initialized = rows * width
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
                guard let target = out.baseAddress else { return }
                if let pa = ap.baseAddress { for r in 0..<rows { (target + r * width).initialize(from: pa + r * ca, count: ca) } }
                if let pb = bp.baseAddress { for r in 0..<rows { (target + r * width + ca).initialize(from: pb + r * cb, count: cb) } }
            } }
        }
    }
}
