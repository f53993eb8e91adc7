import Foundation
import Geometry
import Tensors
@testable import ENINet

// An independent, loop-by-loop restatement of shared/docs/eninet-architecture.md, kept as a
// test oracle for the hand-scheduled network (no GEMM, no caches, no shared layer code).

/// A dense row-major matrix of weights `[out, in]` and an optional bias, as PyTorch stores them.
struct DenseLayer<T: ENINetFloat>: Sendable {
    let weight: [T]
    let bias: [T]?
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

    /// `x W^T + b` for `rows` rows of `x`.
    func apply(_ x: [T], rows: Int) -> [T] {
        var y = [T](repeating: 0, count: rows * outputs)
        x.withUnsafeBufferPointer { xp in
            weight.withUnsafeBufferPointer { wp in
                y.withUnsafeMutableBufferPointer { yp in
                    for r in 0..<rows {
                        let xr = r * inputs, yr = r * outputs
                        for o in 0..<outputs {
                            var s: T = bias?[o] ?? 0
                            let wo = o * inputs
                            for i in 0..<inputs { s += xp[xr + i] * wp[wo + i] }
                            yp[yr + o] = s
                        }
                    }
                }
            }
        }
        return y
    }
}

@inline(__always) func siluPlain<T: ENINetFloat>(_ x: T) -> T { x / (1 + T.exponential(-x)) }

/// A straightforward, loop-by-loop evaluation of the network without derivatives: the
/// executable restatement of `shared/docs/eninet-architecture.md`, used to check the
/// differentiable model layer by layer and to record intermediate tensors.
struct PlainForward<T: ENINetFloat> {
    let configuration: ENINetConfiguration
    let file: SafeTensorsFile

    /// Per-atom readout scalars `q_i`, per-atom readout vectors `mu_i` ([N,3]) and, through
    /// `record`, every named intermediate in the reference's layout.
    func run(atomicNumbers: [Int], positions: [Vec3], graph: ENINetGraph,
             record: (String, [T]) -> Void = { _, _ in }) throws -> (scalars: [T], vectors: [T]) {
        let c = configuration
        let n = graph.atomCount, ne = graph.edgeCount, nt = graph.tripletCount
        let f = c.featureCount, ft = c.tripletFeatureCount, k = c.radialBasisCount
        let rc = T(c.cutoff)
        let p = "conv_layers."
        let mu2 = try file.doubles(p + "twobody_dist_rb.centers", shape: [k]).map { T($0) }
        let mu3 = try file.doubles(p + "threebody_dist_rb.centers", shape: [k]).map { T($0) }
        let g2 = T(c.twoBodyGamma), g3 = T(c.threeBodyGamma)
        func fc(_ x: T, _ r: T) -> T { x <= r ? T(0.5) * (1 + T.cosine(T.pi * x / r)) : 0 }

        // Geometry.
        var unitEdge = [T](repeating: 0, count: ne * 3), edgeLength = [T](repeating: 0, count: ne)
        for e in 0..<ne {
            let d = positions[Int(graph.edgeDestination[e])] + graph.edgeShift[e] - positions[Int(graph.edgeSource[e])]
            let r = norm(d)
            edgeLength[e] = T(r)
            for x in 0..<3 { unitEdge[3 * e + x] = T(d[x] / r) }
        }
        var unitTriplet = [T](repeating: 0, count: nt * 3), tripletLength = [T](repeating: 0, count: nt)
        for t in 0..<nt {
            let e1 = Int(graph.tripletIn[t]), e2 = Int(graph.tripletOut[t])
            let d = positions[Int(graph.edgeDestination[e2])] + (graph.edgeShift[e1] + graph.edgeShift[e2])
                - positions[Int(graph.edgeSource[e1])]
            let s = norm(d)
            tripletLength[t] = T(s)
            for x in 0..<3 { unitTriplet[3 * t + x] = T(d[x] / s) }
        }
        let edgeCut = edgeLength.map { fc($0, rc) }
        // The damping of triplet features and messages: fc_2rc(s_t), times the two bonds' cutoffs in the smooth variant.
        var tripletCut = tripletLength.map { fc($0, 2 * rc) }
        if c.tripletBondCutoff {
            for t in 0..<nt { tripletCut[t] *= edgeCut[Int(graph.tripletIn[t])] * edgeCut[Int(graph.tripletOut[t])] }
        }

        // Initial features.
        let embedding = try file.doubles(p + "n_embedding.weight", shape: [c.elementCount, f])
        var ns = [T](repeating: 0, count: n * f)
        for i in 0..<n {
            guard atomicNumbers[i] >= 0, atomicNumbers[i] < c.elementCount else {
                throw ModelFileError("atom \(i): atomic number \(atomicNumbers[i]) is outside the model's table (0..<\(c.elementCount))")
            }
            for ch in 0..<f { ns[i * f + ch] = T(embedding[atomicNumbers[i] * f + ch]) }
        }
        var nv = [T](repeating: 0, count: n * 3 * f)
        var rbf = [T](repeating: 0, count: ne * k)
        for e in 0..<ne { for q in 0..<k { let d = edgeLength[e] - mu2[q]; rbf[e * k + q] = T.exponential(-g2 * d * d) } }
        var es = try DenseLayer<T>(file, p + "e_embedding").apply(rbf, rows: ne)
        for e in 0..<ne { for ch in 0..<f { es[e * f + ch] *= edgeCut[e] } }
        var ev = [T](repeating: 0, count: ne * 3 * f)
        for e in 0..<ne { for x in 0..<3 { let v = rc * unitEdge[3 * e + x] * edgeCut[e]; for ch in 0..<f { ev[(e * 3 + x) * f + ch] = v } } }
        var rbf3 = [T](repeating: 0, count: nt * k)
        for t in 0..<nt { for q in 0..<k { let d = tripletLength[t] - mu3[q]; rbf3[t * k + q] = T.exponential(-g3 * d * d) } }
        var ts = try DenseLayer<T>(file, p + "t_embedding").apply(rbf3, rows: nt)
        for t in 0..<nt { for ch in 0..<ft { ts[t * ft + ch] *= tripletCut[t] } }
        var tv = [T](repeating: 0, count: nt * 3 * ft)
        for t in 0..<nt { for x in 0..<3 { let v = unitTriplet[3 * t + x] * tripletCut[t]; for ch in 0..<ft { tv[(t * 3 + x) * ft + ch] = v } } }
        record("graph.edge_dist", edgeLength)
        record("init.node_s", ns); record("init.node_v", nv); record("init.edge_s", es); record("init.edge_v", ev)
        record("init.triplet_s", ts); record("init.triplet_v", tv)

        // Helpers.
        func norms(_ v: [T], rows: Int, channels: Int) -> [T] {
            var out = [T](repeating: 0, count: rows * channels)
            for r in 0..<rows { for ch in 0..<channels {
                var s: T = 0
                for x in 0..<3 { let a = v[(r * 3 + x) * channels + ch]; s += a * a }
                out[r * channels + ch] = s.squareRoot()
            } }
            return out
        }
        func concat(_ a: [T], _ ca: Int, _ b: [T], _ cb: Int, rows: Int) -> [T] {
            var out = [T](repeating: 0, count: rows * (ca + cb))
            for r in 0..<rows {
                for ch in 0..<ca { out[r * (ca + cb) + ch] = a[r * ca + ch] }
                for ch in 0..<cb { out[r * (ca + cb) + ca + ch] = b[r * cb + ch] }
            }
            return out
        }
        func gateMLP(_ name: String, _ x: [T], rows: Int) throws -> [T] {
            let a = try DenseLayer<T>(file, name + ".net.2").apply(try DenseLayer<T>(file, name + ".net.0").apply(x, rows: rows).map(siluPlain), rows: rows)
            let g = try DenseLayer<T>(file, name + ".gates.2").apply(try DenseLayer<T>(file, name + ".gates.0").apply(x, rows: rows).map(siluPlain), rows: rows)
            return zip(a, g).map { $0 * siluPlain($1) }
        }
        func mlp(_ name: String, _ x: [T], rows: Int) throws -> [T] {
            try DenseLayer<T>(file, name + ".net.2").apply(try DenseLayer<T>(file, name + ".net.0").apply(x, rows: rows).map(siluPlain), rows: rows)
        }
        func layerNorm(_ name: String, _ x: [T], rows: Int, channels: Int) throws -> [T] {
            let w = try file.doubles(name + ".weight", shape: [channels]).map { T($0) }
            let b = try file.doubles(name + ".bias", shape: [channels]).map { T($0) }
            var out = x
            for r in 0..<rows {
                var mean: T = 0
                for ch in 0..<channels { mean += x[r * channels + ch] }
                mean /= T(channels)
                var variance: T = 0
                for ch in 0..<channels { let d = x[r * channels + ch] - mean; variance += d * d }
                variance /= T(channels)
                let inv = 1 / (variance + T(1e-5)).squareRoot()
                for ch in 0..<channels { out[r * channels + ch] = (x[r * channels + ch] - mean) * inv * w[ch] + b[ch] }
            }
            return out
        }
        func vectorNorm(_ name: String, _ v: [T], rows: Int, channels: Int) throws -> [T] {
            let w = try file.doubles(name + ".weight", shape: [channels]).map { T($0) }
            var out = v
            let nrm = norms(v, rows: rows, channels: channels)
            for r in 0..<rows {
                switch c.vectorNorm {
                case .maxMin:
                    var lo = T.infinity, hi = -T.infinity
                    for ch in 0..<channels { let a = max(nrm[r * channels + ch], T(1e-12)); lo = min(lo, a); hi = max(hi, a) }
                    var spread = hi - lo
                    if spread < T(1e-7) { spread = 1 }
                    for ch in 0..<channels {
                        let a = max(nrm[r * channels + ch], T(1e-12))
                        let scale = max((a - lo) / spread, 0) / a * w[ch]
                        for x in 0..<3 { out[(r * 3 + x) * channels + ch] *= scale }
                    }
                case .rms:
                    var s: T = 0
                    for ch in 0..<channels { s += nrm[r * channels + ch] * nrm[r * channels + ch] }
                    let inv = 1 / (s / T(channels) + T(c.vectorNormEpsilon)).squareRoot()
                    for ch in 0..<channels { for x in 0..<3 { out[(r * 3 + x) * channels + ch] *= inv * w[ch] } }
                }
            }
            return out
        }
        // Linear map on the channel axis of vectors [rows,3,C] (no bias).
        func vectorLinear(_ name: String, _ v: [T], rows: Int) throws -> [T] {
            try DenseLayer<T>(file, name, bias: false).apply(v, rows: rows * 3)
        }

        var inDegree = [Int](repeating: 0, count: n)
        for d in graph.edgeDestination { inDegree[Int(d)] += 1 }

        for layer in 0..<c.interactionCount {
            // Three-body block: its nodes are edges, its edges are triplets e1 -> e2.
            let tb = p + "threebody_conv.\(layer)."
            let hs = try DenseLayer<T>(file, tb + "ns_in.0").apply(es, rows: ne).map(siluPlain)
            let hv = try vectorLinear(tb + "nv_in", ev, rows: ne)
            var pairS = [T](repeating: 0, count: nt * 2 * ft)
            for t in 0..<nt {
                let e1 = Int(graph.tripletIn[t]), e2 = Int(graph.tripletOut[t])
                for ch in 0..<ft { pairS[t * 2 * ft + ch] = hs[e1 * ft + ch]; pairS[t * 2 * ft + ft + ch] = hs[e2 * ft + ch] }
            }
            let left = try DenseLayer<T>(file, tb + "edge_neighbors").apply(pairS, rows: nt)
            let right = try DenseLayer<T>(file, tb + "triplet_proj").apply(ts, rows: nt)
            var dts = try gateMLP(tb + "triplet_gate", zip(left, right).map { $0 * $1 }, rows: nt)
            for t in 0..<nt { for ch in 0..<ft { dts[t * ft + ch] *= tripletCut[t] } }
            let abc = try DenseLayer<T>(file, tb + "triplet_vec").apply(dts, rows: nt)
            var dtv = [T](repeating: 0, count: nt * 3 * ft)
            var sumS = [T](repeating: 0, count: ne * ft), sumV = [T](repeating: 0, count: ne * 3 * ft)
            for t in 0..<nt {
                let e1 = Int(graph.tripletIn[t]), e2 = Int(graph.tripletOut[t])
                for x in 0..<3 {
                    for ch in 0..<ft {
                        let a = abc[t * 3 * ft + ch], b = abc[t * 3 * ft + ft + ch], cc = abc[t * 3 * ft + 2 * ft + ch]
                        let v = (tv[(t * 3 + x) * ft + ch] * a + hv[(e1 * 3 + x) * ft + ch] * b + unitTriplet[3 * t + x] * cc) * tripletCut[t]
                        dtv[(t * 3 + x) * ft + ch] = v
                        sumV[(e2 * 3 + x) * ft + ch] += v
                    }
                }
                for ch in 0..<ft { sumS[e2 * ft + ch] += dts[t * ft + ch] }
            }
            let outS = try mlp(tb + "out_ns", concat(sumS, ft, norms(hv, rows: ne, channels: ft), ft, rows: ne), rows: ne)
            es = try layerNorm(tb + "norm_mess", zip(outS, es).map { $0 + $1 }, rows: ne, channels: f)
            let outV = try vectorLinear(tb + "out_nv", sumV, rows: ne)
            ev = try vectorNorm(tb + "norm_nv", zip(outV, ev).map { $0 + $1 }, rows: ne, channels: f)
            ts = zip(dts, ts).map { $0 + $1 }
            tv = zip(dtv, tv).map { $0 + $1 }
            record("layer\(layer).threebody.edge_s", es); record("layer\(layer).threebody.edge_v", ev)
            record("layer\(layer).threebody.triplet_s", ts); record("layer\(layer).threebody.triplet_v", tv)

            // Two-body block on the atom graph.
            let bb = p + "twobody_conv.\(layer)."
            var pairN = [T](repeating: 0, count: ne * 2 * f)
            for e in 0..<ne {
                let s = Int(graph.edgeSource[e]), d = Int(graph.edgeDestination[e])
                for ch in 0..<f { pairN[e * 2 * f + ch] = ns[s * f + ch]; pairN[e * 2 * f + f + ch] = ns[d * f + ch] }
            }
            let l2 = try DenseLayer<T>(file, bb + "node_neighbors").apply(pairN, rows: ne)
            let r2 = try DenseLayer<T>(file, bb + "edge_proj").apply(es, rows: ne)
            var des = try gateMLP(bb + "ns_mess", zip(l2, r2).map { $0 * $1 }, rows: ne)
            for e in 0..<ne { for ch in 0..<f { des[e * f + ch] *= edgeCut[e] } }
            let abc2 = try DenseLayer<T>(file, bb + "edge_vec").apply(des, rows: ne)
            var dev = [T](repeating: 0, count: ne * 3 * f)
            var aggS = [T](repeating: 0, count: n * f), aggV = [T](repeating: 0, count: n * 3 * f)
            for e in 0..<ne {
                let s = Int(graph.edgeSource[e]), d = Int(graph.edgeDestination[e])
                for x in 0..<3 {
                    for ch in 0..<f {
                        let a = abc2[e * 3 * f + ch], b = abc2[e * 3 * f + f + ch], cc = abc2[e * 3 * f + 2 * f + ch]
                        let v = (nv[(s * 3 + x) * f + ch] * a + ev[(e * 3 + x) * f + ch] * b + rc * unitEdge[3 * e + x] * cc) * edgeCut[e]
                        dev[(e * 3 + x) * f + ch] = v
                        aggV[(d * 3 + x) * f + ch] += v
                    }
                }
                for ch in 0..<f { aggS[d * f + ch] += des[e * f + ch] }
            }
            for i in 0..<n {
                let divisor: T
                switch c.aggregation {
                case .sum: divisor = 1
                case .mean: divisor = T(max(inDegree[i], 1))
                case .normalizedSum: divisor = T(c.averageNeighborCount)
                }
                for ch in 0..<f { aggS[i * f + ch] /= divisor }
                for q in 0..<(3 * f) { aggV[i * 3 * f + q] /= divisor }
            }
            let o = try vectorLinear(bb + "nv_out", aggV, rows: n)  // [N,3,3F]
            var o3 = [T](repeating: 0, count: n * 3 * f)
            for i in 0..<n { for x in 0..<3 { for ch in 0..<f { o3[(i * 3 + x) * f + ch] = o[(i * 3 + x) * 3 * f + 2 * f + ch] } } }
            let gate = try DenseLayer<T>(file, bb + "nv_channel").apply(concat(aggS, f, norms(o3, rows: n, channels: f), f, rows: n), rows: n)
            var nvu = [T](repeating: 0, count: n * 3 * f)
            for i in 0..<n { for x in 0..<3 { for ch in 0..<f {
                let row = (i * 3 + x) * 3 * f
                nvu[(i * 3 + x) * f + ch] = o[row + ch] * gate[i * f + ch] + o[row + f + ch]
            } } }
            let pp = try vectorLinear(bb + "nv_proj", nvu, rows: n)  // [N,3,2F]
            let qq = try DenseLayer<T>(file, bb + "ns_proj.0").apply(aggS, rows: n).map(siluPlain)  // [N,2F]
            var nsu = [T](repeating: 0, count: n * f)
            for i in 0..<n { for ch in 0..<f {
                var s: T = 0
                for x in 0..<3 { s += pp[(i * 3 + x) * 2 * f + ch] * pp[(i * 3 + x) * 2 * f + f + ch] }
                nsu[i * f + ch] = s * qq[i * 2 * f + ch] + qq[i * 2 * f + f + ch]
            } }
            ns = try layerNorm(bb + "norm_mess", zip(nsu, ns).map { $0 + $1 }, rows: n, channels: f)
            nv = try vectorNorm(bb + "norm_nv", zip(nvu, nv).map { $0 + $1 }, rows: n, channels: f)
            es = zip(des, es).map { $0 + $1 }
            ev = zip(dev, ev).map { $0 + $1 }
            record("layer\(layer).twobody.node_s", ns); record("layer\(layer).twobody.node_v", nv)
            record("layer\(layer).twobody.edge_s", es); record("layer\(layer).twobody.edge_v", ev)
        }
        record("final.node_s", ns); record("final.node_v", nv)

        // Readout: two gated equivariant blocks, F -> F/2 (SiLU on scalars) -> 1.
        var s = ns, v = nv, width = f
        for (block, out) in [f / 2, 1].enumerated() {
            let r = "readout.out.\(block)."
            let uv = try vectorLinear(r + "linear_v", v, rows: n)  // [N,3,2out]
            var vPart = [T](repeating: 0, count: n * 3 * out)
            for i in 0..<n { for x in 0..<3 { for ch in 0..<out { vPart[(i * 3 + x) * out + ch] = uv[(i * 3 + x) * 2 * out + out + ch] } } }
            let h = try mlp(r + "mix", concat(s, width, norms(vPart, rows: n, channels: out), out, rows: n), rows: n)  // [N,2out]
            var newS = [T](repeating: 0, count: n * out), newV = [T](repeating: 0, count: n * 3 * out)
            for i in 0..<n { for ch in 0..<out {
                newS[i * out + ch] = block == 0 ? siluPlain(h[i * 2 * out + ch]) : h[i * 2 * out + ch]
                for x in 0..<3 { newV[(i * 3 + x) * out + ch] = uv[(i * 3 + x) * 2 * out + ch] * h[i * 2 * out + out + ch] }
            } }
            s = newS; v = newV; width = out
        }
        record("readout.s_raw", s)
        return (s, v)
    }
}
