import Foundation

/// A linear layer `y = x W^T + b` with `W` stored `[out, in]` as PyTorch stores it.
struct LinearLayer<T: ENINetFloat>: Sendable {
    var weight: [T]
    var bias: [T]?
    let inputs: Int
    let outputs: Int

    init(_ file: SafeTensorsFile, _ name: String, bias hasBias: Bool = true) throws {
        let t = try file.tensor(name + ".weight")
        guard t.shape.count == 2 else { throw ModelFileError("\(file.path): tensor '\(name).weight' is not a matrix") }
        outputs = t.shape[0]
        inputs = t.shape[1]
        weight = t.doubles().map { T($0) }
        bias = hasBias ? try file.doubles(name + ".bias", shape: [outputs]).map { T($0) } : nil
    }

    init(weight: [T], bias: [T]?, inputs: Int, outputs: Int) {
        self.weight = weight
        self.bias = bias
        self.inputs = inputs
        self.outputs = outputs
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
        var y = [T](repeating: 0, count: rows * outputs)
        guard rows > 0 else { return y }
        if let b = bias { for r in 0..<rows { for o in 0..<outputs { y[r * outputs + o] = b[o] } } }
        x.withUnsafeBufferPointer { xp in weight.withUnsafeBufferPointer { wp in y.withUnsafeMutableBufferPointer { yp in
            // Empty layers (zero inputs) leave the bias.
            if inputs > 0, let xa = xp.baseAddress, let wa = wp.baseAddress, let ya = yp.baseAddress {
                Dense.gemm(m: rows, n: outputs, k: inputs, xa, wa, transposeB: true, beta: bias == nil ? 0 : 1, ya)
            }
        } } }
        return y
    }

    /// The input gradient `gy W` for output gradient `gy`.
    func backward(_ gy: [T], rows: Int) -> [T] {
        var gx = [T](repeating: 0, count: rows * inputs)
        guard rows > 0, inputs > 0, outputs > 0 else { return gx }
        gy.withUnsafeBufferPointer { gp in weight.withUnsafeBufferPointer { wp in gx.withUnsafeMutableBufferPointer { xp in
            if let ga = gp.baseAddress, let wa = wp.baseAddress, let xa = xp.baseAddress {
                Dense.gemm(m: rows, n: inputs, k: outputs, ga, wa, transposeB: false, beta: 0, xa)
            }
        } } }
        return gx
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
        let h = first.forward(x, rows: rows)
        var a = h
        a.withUnsafeMutableBufferPointer { ap in for q in 0..<ap.count { ap[q] = silu(ap[q]) } }
        return (second.forward(a, rows: rows), h)
    }

    func backward(_ gy: [T], hidden: [T], rows: Int) -> [T] {
        var ga = second.backward(gy, rows: rows)
        ga.withUnsafeMutableBufferPointer { g in hidden.withUnsafeBufferPointer { h in
            for q in 0..<g.count { g[q] *= siluDerivative(h[q]) }
        } }
        return first.backward(ga, rows: rows)
    }
}

/// `MLP_net(x) ⊙ silu(MLP_gates(x))`.
struct GateMLPLayer<T: ENINetFloat>: Sendable {
    let net: MLPLayer<T>
    let gates: MLPLayer<T>

    init(_ file: SafeTensorsFile, _ name: String) throws {
        net = MLPLayer(first: try LinearLayer(file, name + ".net.0"), second: try LinearLayer(file, name + ".net.2"))
        gates = MLPLayer(first: try LinearLayer(file, name + ".gates.0"), second: try LinearLayer(file, name + ".gates.2"))
    }

    struct Cache { var value: [T], valueHidden: [T], gate: [T], gateHidden: [T] }

    func forward(_ x: [T], rows: Int) -> (y: [T], cache: Cache) {
        let (a, ah) = net.forward(x, rows: rows)
        let (g, gh) = gates.forward(x, rows: rows)
        var y = a
        y.withUnsafeMutableBufferPointer { yp in g.withUnsafeBufferPointer { gp in
            for q in 0..<yp.count { yp[q] *= silu(gp[q]) }
        } }
        return (y, Cache(value: a, valueHidden: ah, gate: g, gateHidden: gh))
    }

    func backward(_ gy: [T], cache: Cache, rows: Int) -> [T] {
        var ga = gy, gg = gy
        ga.withUnsafeMutableBufferPointer { gap in gg.withUnsafeMutableBufferPointer { ggp in
        cache.gate.withUnsafeBufferPointer { gate in cache.value.withUnsafeBufferPointer { value in
            for q in 0..<gap.count {
                let s = sigmoid(gate[q]), gq = gap[q]
                gap[q] = gq * gate[q] * s
                ggp[q] = gq * value[q] * s * (1 + gate[q] * (1 - s))
            }
        } } } }
        var gx = net.backward(ga, hidden: cache.valueHidden, rows: rows)
        let g2 = gates.backward(gg, hidden: cache.gateHidden, rows: rows)
        gx.withUnsafeMutableBufferPointer { xp in g2.withUnsafeBufferPointer { gp in
            for q in 0..<xp.count { xp[q] += gp[q] }
        } }
        return gx
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

    func forward(_ x: [T], rows: Int) -> [T] {
        var out = x
        let c = channels
        for r in 0..<rows {
            var mean: T = 0
            for ch in 0..<c { mean += x[r * c + ch] }
            mean /= T(c)
            var variance: T = 0
            for ch in 0..<c { let d = x[r * c + ch] - mean; variance += d * d }
            variance /= T(c)
            let inv = 1 / (variance + T(1e-5)).squareRoot()
            for ch in 0..<c { out[r * c + ch] = (x[r * c + ch] - mean) * inv * weight[ch] + bias[ch] }
        }
        return out
    }

    /// The input gradient, given the forward input `x`.
    func backward(_ gy: [T], input x: [T], rows: Int) -> [T] {
        var gx = x
        let c = channels
        let cT = T(c)
        for r in 0..<rows {
            var mean: T = 0
            for ch in 0..<c { mean += x[r * c + ch] }
            mean /= cT
            var variance: T = 0
            for ch in 0..<c { let d = x[r * c + ch] - mean; variance += d * d }
            variance /= cT
            let inv = 1 / (variance + T(1e-5)).squareRoot()
            var meanG: T = 0, meanGX: T = 0
            for ch in 0..<c {
                let g = gy[r * c + ch] * weight[ch]
                meanG += g
                meanGX += g * (x[r * c + ch] - mean) * inv
            }
            meanG /= cT; meanGX /= cT
            for ch in 0..<c {
                let xhat = (x[r * c + ch] - mean) * inv
                gx[r * c + ch] = inv * (gy[r * c + ch] * weight[ch] - meanG - xhat * meanGX)
            }
        }
        return gx
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

    func forward(_ v: [T], rows: Int) -> [T] {
        var out = v
        let c = channels
        var nrm = [T](repeating: 0, count: c)
        out.withUnsafeMutableBufferPointer { op in nrm.withUnsafeMutableBufferPointer { np in weight.withUnsafeBufferPointer { w in
            for r in 0..<rows {
                let base = r * 3 * c
                for ch in 0..<c {
                    let x = op[base + ch], y = op[base + c + ch], z = op[base + 2 * c + ch]
                    np[ch] = (x * x + y * y + z * z).squareRoot()
                }
                switch kind {
                case .maxMin:
                    var lo = T.infinity, hi = -T.infinity
                    for ch in 0..<c { let a = max(np[ch], Self.normFloor); lo = min(lo, a); hi = max(hi, a) }
                    var spread = hi - lo
                    if spread < Self.spreadFloor { spread = 1 }
                    for ch in 0..<c {
                        let a = max(np[ch], Self.normFloor)
                        let scale = max((a - lo) / spread, 0) / a * w[ch]
                        op[base + ch] *= scale; op[base + c + ch] *= scale; op[base + 2 * c + ch] *= scale
                    }
                case .rms:
                    var sum: T = 0
                    for ch in 0..<c { sum += np[ch] * np[ch] }
                    let inv = 1 / (sum / T(c) + epsilon).squareRoot()
                    for ch in 0..<c {
                        let scale = inv * w[ch]
                        op[base + ch] *= scale; op[base + c + ch] *= scale; op[base + 2 * c + ch] *= scale
                    }
                }
            }
        } } }
        return out
    }

    /// The input gradient, given the forward input `v`. At ties of the max or min the gradient
    /// goes to the first channel, and the min channel (output exactly zero) passes none, as
    /// PyTorch's `relu` does at zero.
    func backward(_ gout: [T], input v: [T], rows: Int) -> [T] {
        var gv = [T](repeating: 0, count: v.count)
        let c = channels
        var scratch = [T](repeating: 0, count: 3 * c)
        gv.withUnsafeMutableBufferPointer { gvp in v.withUnsafeBufferPointer { vp in gout.withUnsafeBufferPointer { gp in
        scratch.withUnsafeMutableBufferPointer { sp in weight.withUnsafeBufferPointer { w in
            guard let nrm = sp.baseAddress else { return }
            let gs = nrm + c, gn = nrm + 2 * c  // norms, scale gradients, norm gradients
            for r in 0..<rows {
                let base = r * 3 * c
                for ch in 0..<c {
                    let x = vp[base + ch], y = vp[base + c + ch], z = vp[base + 2 * c + ch]
                    nrm[ch] = (x * x + y * y + z * z).squareRoot()
                    // Gradient with respect to the per-channel scale s_c in out = s_c v_c.
                    gs[ch] = gp[base + ch] * x + gp[base + c + ch] * y + gp[base + 2 * c + ch] * z
                    gn[ch] = 0
                }
                switch kind {
                case .maxMin:
                    var lo = T.infinity, hi = -T.infinity, argLo = 0, argHi = 0
                    for ch in 0..<c {
                        let a = max(nrm[ch], Self.normFloor)
                        if a < lo { lo = a; argLo = ch }
                        if a > hi { hi = a; argHi = ch }
                    }
                    let clamped = hi - lo < Self.spreadFloor
                    let spread = clamped ? 1 : hi - lo
                    var gLo: T = 0, gHi: T = 0
                    for ch in 0..<c {
                        let a = max(nrm[ch], Self.normFloor)
                        let ratio = (a - lo) / spread
                        let scale = max(ratio, 0) / a * w[ch]
                        for x in 0..<3 { gvp[base + x * c + ch] = scale * gp[base + x * c + ch] }
                        // s = w relu(ratio) / a.
                        let gRatio = ratio > 0 ? gs[ch] * w[ch] / a : 0
                        gn[ch] += -gs[ch] * w[ch] * max(ratio, 0) / (a * a) + gRatio / spread
                        gLo -= gRatio / spread
                        if !clamped {
                            // d ratio / d spread = −ratio / spread; spread = hi − lo.
                            gHi -= gRatio * ratio / spread
                            gLo += gRatio * ratio / spread
                        }
                    }
                    gn[argLo] += gLo
                    gn[argHi] += gHi
                    for ch in 0..<c where nrm[ch] > Self.normFloor {
                        let k = gn[ch] / nrm[ch]
                        for x in 0..<3 { gvp[base + x * c + ch] += k * vp[base + x * c + ch] }
                    }
                case .rms:
                    var sum: T = 0
                    for ch in 0..<c { sum += nrm[ch] * nrm[ch] }
                    let inv = 1 / (sum / T(c) + epsilon).squareRoot()
                    var k: T = 0
                    for ch in 0..<c { k += w[ch] * gs[ch] }
                    let coefficient = -inv * inv * inv / T(c) * k
                    for ch in 0..<c {
                        for x in 0..<3 {
                            gvp[base + x * c + ch] = inv * w[ch] * gp[base + x * c + ch] + coefficient * vp[base + x * c + ch]
                        }
                    }
                }
            }
        } } } } }
        return gv
    }
}

/// Per-channel Euclidean norms over xyz of vectors `[rows, 3, C]`, and their backward
/// (zero gradient at a zero vector, as PyTorch's norm gives).
enum VectorChannels {
    static func norms<T: ENINetFloat>(_ v: [T], rows: Int, channels c: Int) -> [T] {
        var out = [T](repeating: 0, count: rows * c)
        for r in 0..<rows {
            let base = r * 3 * c
            for ch in 0..<c {
                let x = v[base + ch], y = v[base + c + ch], z = v[base + 2 * c + ch]
                out[r * c + ch] = (x * x + y * y + z * z).squareRoot()
            }
        }
        return out
    }

    /// Adds the gradient of `gn` (on the norms `n`) to `gv` (on the vectors `v`).
    static func accumulateNormBackward<T: ENINetFloat>(_ gn: [T], norms n: [T], vectors v: [T], rows: Int, channels c: Int, into gv: inout [T]) {
        for r in 0..<rows {
            for ch in 0..<c where n[r * c + ch] > 0 {
                let k = gn[r * c + ch] / n[r * c + ch]
                for x in 0..<3 { gv[(r * 3 + x) * c + ch] += k * v[(r * 3 + x) * c + ch] }
            }
        }
    }

    /// Columns `from ..< from + count` of a `[rows, width]` matrix.
    static func columns<T: ENINetFloat>(_ m: [T], rows: Int, width: Int, from: Int, count: Int) -> [T] {
        var out = [T](repeating: 0, count: rows * count)
        for r in 0..<rows { for ch in 0..<count { out[r * count + ch] = m[r * width + from + ch] } }
        return out
    }

    /// `[a, b]` along channels.
    static func concatenate<T: ENINetFloat>(_ a: [T], _ ca: Int, _ b: [T], _ cb: Int, rows: Int) -> [T] {
        var out = [T](repeating: 0, count: rows * (ca + cb))
        for r in 0..<rows {
            for ch in 0..<ca { out[r * (ca + cb) + ch] = a[r * ca + ch] }
            for ch in 0..<cb { out[r * (ca + cb) + ca + ch] = b[r * cb + ch] }
        }
        return out
    }
}
