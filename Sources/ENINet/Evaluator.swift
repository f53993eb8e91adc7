import Foundation
import Geometry
import Tensors

/// What one evaluation returns, in Double whatever the network's precision.
public struct ENINetOutput: Sendable {
    /// `Σ_i (std·q_i + mean)` (eV for energy models).
    public var energy: Double
    /// `−∂E/∂r_i` (empty when forces were not requested).
    public var forces: [Vec3]
    /// `W = −∂E/∂ε = −Σ_e d_e ⊗ ∂E/∂d_e` (zero when forces were not requested).
    public var virial: Mat3
    /// The readout's per-atom scalar `q_i` (reference `s_raw`).
    public var atomScalars: [Double]
    /// The readout's per-atom vector `mu_i`.
    public var atomVectors: [Vec3]
    /// `std·q_i + mean`.
    public var atomEnergies: [Double]
    /// Final node scalars `[N, F]` and vector-channel norms `[N, F]` (for checks against the reference).
    public var finalNodeScalars: [Double]
    public var finalNodeVectorNorms: [Double]
}

/// The network with a forward pass that keeps what the backward pass needs, and a hand-written
/// backward pass from the energy to the edge vectors: forces and virial without building an
/// autodiff graph.
final class HandScheduledNetwork<T: ENINetFloat>: @unchecked Sendable {
    struct ThreeBody {
        let inputScalar: LinearLayer<T>, inputVector: LinearLayer<T>
        /// `edge_neighbors` split by input halves, as the two-body `node_neighbors` is: the GEMMs
        /// run over edges instead of triplets, and no pair rows are written.
        let inNeighbors: LinearLayer<T>, outNeighbors: LinearLayer<T>
        let tripletProjection: LinearLayer<T>
        let gate: GateMLPLayer<T>, tripletVector: LinearLayer<T>
        let outputScalar: MLPLayer<T>, outputVector: LinearLayer<T>
        let scalarNorm: LayerNormLayer<T>, vectorNorm: VectorNormLayer<T>
        /// The triplet messages as one fused pass, when the triplet features have four channels.
        let fourChannel: FourChannelTriplets<T>?
    }
    struct TwoBody {
        /// `node_neighbors` split by input halves: `[ns_i, ns_j] W^T + b = (ns W_src^T + b)_i + (ns W_dst^T)_j`,
        /// so the GEMM runs over atoms instead of edges.
        let sourceNeighbors: LinearLayer<T>, destinationNeighbors: LinearLayer<T>
        let edgeProjection: LinearLayer<T>
        let gate: GateMLPLayer<T>, edgeVector: LinearLayer<T>
        let vectorOut: LinearLayer<T>, vectorChannel: LinearLayer<T>
        let vectorProjection: LinearLayer<T>, scalarProjection: LinearLayer<T>
        let scalarNorm: LayerNormLayer<T>, vectorNorm: VectorNormLayer<T>
    }
    struct ReadoutBlock {
        let vectorLinear: LinearLayer<T>
        let mix: MLPLayer<T>
        let outputs: Int
        let activation: Bool
    }

    let configuration: ENINetConfiguration
    let embedding: [T]
    /// By atomic number (a row of `embedding`): whether the model was trained on the element
    /// (``ENINetConfiguration/species``; every row when the file records none).
    let isKnownElement: [Bool]
    let edgeEmbedding: LinearLayer<T>, tripletEmbedding: LinearLayer<T>
    let twoBodyCentres: [T], threeBodyCentres: [T]
    let threeBody: [ThreeBody]
    let twoBody: [TwoBody]
    let readout: [ReadoutBlock]

    /// Threads the triplet work (the fused pass, the radial embedding) splits the triplets over
    /// (nil: ``TensorThreads/count``).
    var tripletThreads: Int?
    /// The fewest blocks of eight triplets worth a thread of their own; tests lower it to split
    /// small systems.
    var minimumTripletBlocksPerThread = 128
    /// Threads the loops over edges that add to per-atom rows split the edges over (nil:
    /// ``TensorThreads/count``), and the fewest scalar operations worth a thread of their own
    /// (a hand-off costs about a microsecond); tests change both to split small systems.
    var edgeThreads: Int?
    var minimumEdgeWorkPerThread = 1 << 15

    /// `fuseFourChannelTriplets: false` keeps the layer-by-layer triplet path even where the
    /// fused kernel applies (tests compare the two).
    init(file: ENINetModelFile, fuseFourChannelTriplets: Bool = true) throws {
        let c = file.configuration
        let w = file.weights
        configuration = c
        isKnownElement = (0..<max(0, c.elementCount)).map { c.knows(atomicNumber: $0) }
        let f = c.featureCount, ft = c.tripletFeatureCount
        let p = "conv_layers."
        embedding = try w.doubles(p + "n_embedding.weight", shape: [c.elementCount, f]).map { T($0) }
        edgeEmbedding = try LinearLayer(w, p + "e_embedding")
        tripletEmbedding = try LinearLayer(w, p + "t_embedding")
        twoBodyCentres = try w.doubles(p + "twobody_dist_rb.centers", shape: [c.radialBasisCount]).map { T($0) }
        threeBodyCentres = try w.doubles(p + "threebody_dist_rb.centers", shape: [c.radialBasisCount]).map { T($0) }
        var three: [ThreeBody] = [], two: [TwoBody] = []
        for l in 0..<c.interactionCount {
            let t = p + "threebody_conv.\(l)."
            let edgeNeighbors = try LinearLayer<T>(w, t + "edge_neighbors")
            let pairWidth = edgeNeighbors.inputs / 2
            let tripletProjection = try LinearLayer<T>(w, t + "triplet_proj")
            let gate = try GateMLPLayer<T>(w, t + "triplet_gate"), tripletVector = try LinearLayer<T>(w, t + "triplet_vec")
            three.append(ThreeBody(
                inputScalar: try LinearLayer(w, t + "ns_in.0"), inputVector: try LinearLayer(w, t + "nv_in", bias: false),
                inNeighbors: edgeNeighbors.inputColumns(from: 0, count: pairWidth, keepBias: true),
                outNeighbors: edgeNeighbors.inputColumns(from: pairWidth, count: pairWidth, keepBias: false),
                tripletProjection: tripletProjection, gate: gate, tripletVector: tripletVector,
                outputScalar: try MLPLayer(w, t + "out_ns"), outputVector: try LinearLayer(w, t + "out_nv", bias: false),
                scalarNorm: try LayerNormLayer(w, t + "norm_mess", channels: f),
                vectorNorm: try VectorNormLayer(w, t + "norm_nv", channels: f, kind: c.vectorNorm, epsilon: c.vectorNormEpsilon),
                fourChannel: fuseFourChannelTriplets && edgeNeighbors.outputs == 4
                    ? FourChannelTriplets(projection: tripletProjection, gate: gate, tripletVector: tripletVector) : nil))
            let b = p + "twobody_conv.\(l)."
            let nodeNeighbors = try LinearLayer<T>(w, b + "node_neighbors")
            two.append(TwoBody(
                sourceNeighbors: nodeNeighbors.inputColumns(from: 0, count: f, keepBias: true),
                destinationNeighbors: nodeNeighbors.inputColumns(from: f, count: f, keepBias: false),
                edgeProjection: try LinearLayer(w, b + "edge_proj"),
                gate: try GateMLPLayer(w, b + "ns_mess"), edgeVector: try LinearLayer(w, b + "edge_vec"),
                vectorOut: try LinearLayer(w, b + "nv_out", bias: false), vectorChannel: try LinearLayer(w, b + "nv_channel"),
                vectorProjection: try LinearLayer(w, b + "nv_proj", bias: false), scalarProjection: try LinearLayer(w, b + "ns_proj.0"),
                scalarNorm: try LayerNormLayer(w, b + "norm_mess", channels: f),
                vectorNorm: try VectorNormLayer(w, b + "norm_nv", channels: f, kind: c.vectorNorm, epsilon: c.vectorNormEpsilon)))
        }
        threeBody = three
        twoBody = two
        readout = [
            ReadoutBlock(vectorLinear: try LinearLayer(w, "readout.out.0.linear_v", bias: false),
                         mix: try MLPLayer(w, "readout.out.0.mix"), outputs: f / 2, activation: true),
            ReadoutBlock(vectorLinear: try LinearLayer(w, "readout.out.1.linear_v", bias: false),
                         mix: try MLPLayer(w, "readout.out.1.mix"), outputs: 1, activation: false),
        ]
        _ = ft
    }

    // MARK: Forward with caches

    struct Geometry {
        var edgeVector: [Vec3]
        var edgeLength: [T], unitEdge: [T], edgeCut: [T], edgeCutDerivative: [T]
        /// Per span (``ENINetGraph``): its vector, length and fc_2rc(s).
        var spanVector: [Vec3]
        var spanLength: [T], spanDistanceCut: [T], spanDistanceCutDerivative: [T]
        /// Per triplet: its span's unit vector, and fc_2rc(s_t), times fc_rc of both bonds in the smooth variant.
        var unitTriplet: [T], tripletCut: [T]
        var edgeRBF: [T], tripletRadial: TripletRadial
        var initialEdgeScalar: [T], initialTripletScalar: [T]  // before the cutoff factor
    }

    /// What the triplets' radial embedding keeps for the backward pass: the Gaussian basis
    /// `[T, K]`, or, for an embedding of four outputs (both shipped configurations), which
    /// ``fourChannelRadialEmbedding(_:centres:gamma:layer:chunks:)`` computes in `geometry` without
    /// storing the basis, the derivatives of the embedded values with respect to the lengths.
    enum TripletRadial {
        case basis([T])
        case embedded(slopes: [T])
    }

    /// What the backward pass of the triplet messages reads: the layer-by-layer intermediates,
    /// or, for the fused four-channel kernel (which recomputes the cheap ones), what its forward
    /// pass saved (``FourChannelTriplets/savedCount(triplets:)``).
    enum TripletMessageCache {
        case general(left: [T], right: [T], gateCache: GateMLPLayer<T>.Cache, gated: [T], abc: [T])
        case fourChannel(saved: [T])
    }

    struct ThreeBodyCache {
        var hiddenPre: [T], hs: [T], hv: [T]
        var messages: TripletMessageCache
        /// The layer's input triplet features.
        var ts: [T], tv: [T]
        var hvNorm: [T], outHidden: [T], scalarNormInput: [T], vectorNormInput: [T]
    }

    struct TwoBodyCache {
        var ns: [T], nv: [T], ev: [T]
        var left: [T], right: [T], gateCache: GateMLPLayer<T>.Cache, gated: [T], abc: [T]
        var aggS: [T], o: [T], o3Norm: [T], gate: [T], nvu: [T], pp: [T], qPre: [T]
        var scalarNormInput: [T], vectorNormInput: [T]
    }

    struct ReadoutCache {
        var s: [T], v: [T], uv: [T], vNorm: [T], h: [T], hidden: [T]
    }

    /// How many chunks ``overEdges(_:work:adding:_:)`` splits `edges` into for a loop of `work`
    /// scalar operations that adds to per-atom rows of `width` elements in all: each chunk after
    /// the first also zeroes and adds `width` elements, so it must do well beyond that.
    func edgeChunkCount(edges: Int, work: Int, width: Int) -> Int {
        max(1, min(edgeThreads ?? TensorThreads.count, work / max(1, minimumEdgeWorkPerThread), edges, work / max(1, 4 * width)))
    }

    /// `body(range, sums)` over chunks of `0 ..< edges` (``edgeChunkCount(edges:work:width:)``),
    /// concurrently when there are several (``ChunkSums``): the loops over edges that add to
    /// per-atom rows. The first chunk gets `sums` themselves, each later one zeroed rows of its
    /// own of the same sizes; on one thread the loop is the serial one.
    func overEdges(_ edges: Int, work: Int, adding sums: [(UnsafeMutablePointer<T>, count: Int)],
                   _ body: (Range<Int>, [UnsafeMutablePointer<T>]) -> Void) {
        let width = sums.reduce(0) { $0 + $1.count }
        let chunks = edgeChunkCount(edges: edges, work: work, width: width)
        // The per-atom arrays laid end to end, starting at `base`.
        func laidOut(from base: UnsafeMutablePointer<T>) -> [UnsafeMutablePointer<T>] {
            var next = base
            return sums.map { sum in defer { next += sum.count }; return next }
        }
        ChunkSums.run((0..<chunks).map { k in edges * k / chunks ..< edges * (k + 1) / chunks }, ownWidth: width,
                      pass: { range, own in body(range, own.map(laidOut) ?? sums.map(\.0)) },
                      merge: { own in for (sum, part) in zip(sums, laidOut(from: own)) { ChunkSums.add(part, into: sum.0, count: sum.count) } })
    }

    static func cutoff(_ x: T, _ r: T) -> (T, T) {
        guard x <= r else { return (0, 0) }
        let a = T.pi * x / r
        return (T(0.5) * (1 + T.cosine(a)), -T(0.5) * T.pi / r * T.sine(a))
    }

    /// ``cutoff(_:_:)`` of `count` lengths, eight at a time.
    static func cutoffs(_ x: UnsafePointer<T>, count: Int, radius r: T,
                                values: UnsafeMutablePointer<T>, derivatives: UnsafeMutablePointer<T>) {
        let blocks = count / 8, slope = -T(0.5) * T.pi / r
        // About forty operations per block of eight lengths.
        TensorThreads.forChunks(blocks, work: 40 * blocks) { range in
            for i in stride(from: 8 * range.lowerBound, to: 8 * range.upperBound, by: 8) {
                let lengths = x.lanes(i)
                let (cosine, sine) = T.cosineAndSine(halfTurn: T.pi * lengths / r)
                values.setLanes(i, T.zeroed(T(0.5) * (1 + cosine), where: lengths, exceeds: r))
                derivatives.setLanes(i, T.zeroed(slope * sine, where: lengths, exceeds: r))
            }
        }
        for i in 8 * blocks..<count { (values[i], derivatives[i]) = cutoff(x[i], r) }
    }

    /// The edges' and spans' vectors, lengths, directions and cutoffs, the triplets' directions
    /// and cutoffs, and the radial terms.
    func geometry(positions: [Vec3], graph: ENINetGraph) -> Geometry {
        let c = configuration
        let ne = graph.edgeCount, nt = graph.tripletCount, k = c.radialBasisCount
        let rc = T(c.cutoff)
        let edgeVector = graph.edgeVectors(positions: positions)
        var edgeLength = [T](repeating: 0, count: ne), unitEdge = [T](repeating: 0, count: 3 * ne)
        var edgeCut = [T](repeating: 0, count: ne), edgeCutDerivative = [T](repeating: 0, count: ne)
        edgeVector.withUnsafeBufferPointer { d in edgeLength.withUnsafeMutableBufferPointer { length in
        unitEdge.withUnsafeMutableBufferPointer { unit in edgeCut.withUnsafeMutableBufferPointer { cut in
        edgeCutDerivative.withUnsafeMutableBufferPointer { cutDerivative in
            for e in 0..<ne {
                let r = norm(d[e])
                length[e] = T(r)
                for x in 0..<3 { unit[3 * e + x] = T(d[e][x] / r) }
            }
            guard let lengths = length.baseAddress, let cuts = cut.baseAddress, let slopes = cutDerivative.baseAddress else { return }
            Self.cutoffs(lengths, count: ne, radius: rc, values: cuts, derivatives: slopes)
        } } } } }
        // The spans' geometry (``ENINetGraph``), then each triplet's direction and cutoff from its span's.
        let spanCount = graph.spanCount
        let bondCutoff = c.tripletBondCutoff
        let spanVector = graph.spanVectors(positions: positions)
        var spanLength = [T](), spanUnit = [T](), spanDistanceCut = [T](), spanDistanceCutDerivative = [T]()
        // Every element of these arrays is written by the loops: no zero fill first.
        spanDistanceCutDerivative = [T].filled(count: spanCount) { distanceCutDerivative in
        spanDistanceCut = [T].filled(count: spanCount) { distanceCut in
        spanUnit = [T].filled(count: 3 * spanCount) { unit in
        spanLength = [T].filled(count: spanCount) { length in
        spanVector.withUnsafeBufferPointer { vector in
            // About thirty operations per span (a square root and three divisions among them).
            TensorThreads.forChunks(spanCount, work: 30 * spanCount) { range in for p in range {
                let d = vector[p], s = norm(d)
                length[p] = T(s)
                for x in 0..<3 { unit[3 * p + x] = T(d[x] / s) }
            } }
            Self.cutoffs(length, count: spanCount, radius: 2 * rc, values: distanceCut, derivatives: distanceCutDerivative)
        } } } } }
        var unitTriplet = [T]()
        let tripletCut = [T].filled(count: nt) { cut in
        unitTriplet = [T].filled(count: 3 * nt) { unit in
        graph.tripletIn.withUnsafeBufferPointer { tin in graph.tripletOut.withUnsafeBufferPointer { tout in
        graph.tripletSpan.withUnsafeBufferPointer { span in spanUnit.withUnsafeBufferPointer { spanUnit in
        spanDistanceCut.withUnsafeBufferPointer { distanceCut in edgeCut.withUnsafeBufferPointer { edgeCutP in
            TensorThreads.forChunks(nt, work: 8 * nt) { range in for t in range {
                let p = Int(span[t])
                for x in 0..<3 { unit[3 * t + x] = spanUnit[3 * p + x] }
                cut[t] = bondCutoff ? distanceCut[p] * edgeCutP[Int(tin[t])] * edgeCutP[Int(tout[t])] : distanceCut[p]
            } }
        } } } } } } } }
        let edgeRBF = Self.gaussians(edgeLength, centres: twoBodyCentres, gamma: T(c.twoBodyGamma), count: k)
        let tripletRadial: TripletRadial, initialTripletScalar: [T]
        if tripletEmbedding.outputs == 4 {
            let (values, slopes) = Self.fourChannelRadialEmbedding(spanLength, centres: threeBodyCentres,
                                                                   gamma: T(c.threeBodyGamma), layer: tripletEmbedding)
            (tripletRadial, initialTripletScalar) = (.embedded(slopes: slopes), Self.spreadSpans(values, width: 4, over: graph))
        } else {
            // Embedded by the caller (a GEMM), which can fill its bias rows first.
            tripletRadial = .basis(Self.gaussians(spanLength, centres: threeBodyCentres, gamma: T(c.threeBodyGamma), count: k))
            initialTripletScalar = []
        }
        return Geometry(edgeVector: edgeVector, edgeLength: edgeLength, unitEdge: unitEdge, edgeCut: edgeCut,
                        edgeCutDerivative: edgeCutDerivative, spanVector: spanVector, spanLength: spanLength,
                        spanDistanceCut: spanDistanceCut, spanDistanceCutDerivative: spanDistanceCutDerivative,
                        unitTriplet: unitTriplet, tripletCut: tripletCut,
                        edgeRBF: edgeRBF, tripletRadial: tripletRadial, initialEdgeScalar: [],
                        initialTripletScalar: initialTripletScalar)
    }

    /// Each triplet's row of `values` (`[spans, width]`), `[T, width]`.
    static func spreadSpans(_ values: [T], width: Int, over graph: ENINetGraph) -> [T] {
        [T].filled(count: graph.tripletCount * width) { out in
            values.withUnsafeBufferPointer { v in graph.tripletSpan.withUnsafeBufferPointer { span in
                guard let v = v.baseAddress else { return }
                if width == 4 {
                    for t in 0..<span.count { out.setQuad(4 * t, v.quad(4 * Int(span[t]))) }
                } else {
                    for t in 0..<span.count { (out + t * width).update(from: v + Int(span[t]) * width, count: width) }
                }
            } }
        }
    }

    /// The sum of the triplets' rows of `gradient` (`[T, width]`) at their spans, `[spans, width]`.
    static func gatherSpans(_ gradient: [T], width: Int, over graph: ENINetGraph) -> [T] {
        var out = [T](repeating: 0, count: graph.spanCount * width)
        out.withUnsafeMutableBufferPointer { o in gradient.withUnsafeBufferPointer { g in graph.tripletSpan.withUnsafeBufferPointer { span in
            guard let o = o.baseAddress, let g = g.baseAddress else { return }
            if width == 4 {
                for t in 0..<span.count { let p = Int(span[t]); o.setQuad(4 * p, o.quad(4 * p) + g.quad(4 * t)) }
            } else {
                for t in 0..<span.count {
                    let p = Int(span[t])
                    for ch in 0..<width { o[p * width + ch] += g[t * width + ch] }
                }
            }
        } } }
        return out
    }

    /// `exp(−γ (r − μ_q)²)` for every length and centre, `[lengths, count]`.
    static func gaussians(_ lengths: [T], centres: [T], gamma: T, count k: Int) -> [T] {
        [T].filled(count: lengths.count * k) { out in
            lengths.withUnsafeBufferPointer { r in centres.withUnsafeBufferPointer { mu in
                guard let centre = mu.baseAddress else { return }
                let wide = k - k % 8
                for i in 0..<r.count {
                    let length = r[i], row = out + i * k
                    for q in stride(from: 0, to: wide, by: 8) {
                        let d = length - centre.lanes(q)
                        row.setLanes(q, T.decayingExponential(-gamma * d * d))
                    }
                    for q in wide..<k { let d = length - centre[q]; row[q] = T.exponential(-gamma * d * d) }
                }
            } }
        }
    }

    /// `W · rbf(r) + b` for every length `r` through a radial embedding `layer` of four outputs,
    /// and its derivative with respect to `r`, `[lengths, 4]` each. Eight lengths at a time and
    /// one centre after another, so each Gaussian serves all four outputs from a register: the
    /// spans' `[S, K]` basis is neither stored nor read back, and the backward pass is a
    /// four-term dot product per span instead of a product with `Wᵀ` and a pass over `[T, K]`.
    static func fourChannelRadialEmbedding(_ lengths: [T], centres: [T], gamma: T, layer: LinearLayer<T>) -> (values: [T], slopes: [T]) {
        let n = lengths.count, k = min(layer.inputs, centres.count)
        // Every element is written below (no zero fill first).
        var values = [T].filled(count: 4 * n) { _ in }, slopes = [T].filled(count: 4 * n) { _ in }
        values.withUnsafeMutableBufferPointer { vb in slopes.withUnsafeMutableBufferPointer { sb in
            lengths.withUnsafeBufferPointer { r in centres.withUnsafeBufferPointer { mu in
            layer.weight.withUnsafeBufferPointer { w in
                guard let vp = vb.baseAddress, let sp = sb.baseAddress, let r = r.baseAddress else { return }
                let b = layer.biasOrZeros, rowLength = layer.inputs
                let blocks = (n + 7) / 8
                TensorThreads.forChunks(blocks, work: 24 * k * blocks) { blockRange in
                    // A block's values and slopes, read back lane by lane (``EightTriplets/store(_:)``).
                    let block = UnsafeMutablePointer<T>.allocate(capacity: 64)
                    defer { block.deallocate() }
                    for base in stride(from: 8 * blockRange.lowerBound, to: min(n, 8 * blockRange.upperBound), by: 8) {
                        let lanes = min(8, n - base)
                        let x = r.lanes(base, count: lanes)
                        var value = EightTriplets<T>(c0: SIMD8(repeating: b[0]), c1: SIMD8(repeating: b[1]),
                                                     c2: SIMD8(repeating: b[2]), c3: SIMD8(repeating: b[3]))
                        var slope = EightTriplets<T>()
                        for q in 0..<k {
                            let d = x - mu[q]
                            let basis = T.decayingExponential(-gamma * d * d)
                            let basisSlope = -2 * gamma * d * basis
                            let w0 = w[q], w1 = w[rowLength + q], w2 = w[2 * rowLength + q], w3 = w[3 * rowLength + q]
                            value.c0 = value.c0.adding(basis, times: w0); value.c1 = value.c1.adding(basis, times: w1)
                            value.c2 = value.c2.adding(basis, times: w2); value.c3 = value.c3.adding(basis, times: w3)
                            slope.c0 = slope.c0.adding(basisSlope, times: w0); slope.c1 = slope.c1.adding(basisSlope, times: w1)
                            slope.c2 = slope.c2.adding(basisSlope, times: w2); slope.c3 = slope.c3.adding(basisSlope, times: w3)
                        }
                        value.store(block)
                        slope.store(block + 32)
                        for i in 0..<lanes {
                            vp.setQuad(4 * (base + i), EightTriplets.quad(i, of: block))
                            sp.setQuad(4 * (base + i), EightTriplets.quad(i, of: block + 32))
                        }
                    }
                }
            } } }
        } }
        return (values, slopes)
    }

    /// `[rows, 3, channels]` with every channel of row `r`, axis `x` equal to `scale · unit[r, x] · cut[r]`.
    /// Every element is written (no zero fill first: 3 MB for ten aspirins in `small`).
    static func broadcastDirections(_ unit: [T], cut: [T], scale: T, channels: Int) -> [T] {
        [T].filled(count: cut.count * 3 * channels) { o in unit.withUnsafeBufferPointer { u in cut.withUnsafeBufferPointer { c in
            // Four channels (the triplets of both shipped configurations) as one store per axis.
            if channels == 4 {
                TensorThreads.forChunks(c.count, work: 12 * c.count) { range in
                    for r in range { for x in 0..<3 { o.setQuad((r * 3 + x) * 4, SIMD4(repeating: scale * u[3 * r + x] * c[r])) } }
                }
                return
            }
            let wide = channels - channels % 8
            TensorThreads.forChunks(c.count, work: 3 * c.count * channels) { range in
                for r in range { for x in 0..<3 {
                    let v = scale * u[3 * r + x] * c[r], row = o + (r * 3 + x) * channels
                    for ch in stride(from: 0, to: wide, by: 8) { row.setLanes(ch, SIMD8(repeating: v)) }
                    for ch in wide..<channels { row[ch] = v }
                } }
            }
        } } }
    }

    /// Backward of `y = cut_r · gated` where `y` reaches the loss through two paths with gradients
    /// `a` and `b`: returns the gradient on `gated` and adds the one on `cut` to `cutGradient`.
    static func cutProductBackward(_ a: [T], _ b: [T], gated: [T], cut: [T], width: Int, cutGradient: inout [T]) -> [T] {
        [T].filled(count: a.count) { out in
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in gated.withUnsafeBufferPointer { gp in
            cut.withUnsafeBufferPointer { cp in cutGradient.withUnsafeMutableBufferPointer { gc in
                guard let ap = ap.baseAddress, let bp = bp.baseAddress, let gp = gp.baseAddress else { return }
                TensorThreads.forChunks(cp.count, work: 2 * cp.count * width) { range in for r in range {
                    let row = r * width, scale = cp[r]
                    // Eight partial sums: one running sum is a chain of dependent adds.
                    gc[r] += laneSum(width, wide: { ch in
                        let g = ap.lanes(row + ch) + bp.lanes(row + ch)
                        out.setLanes(row + ch, g * scale)
                        return g * gp.lanes(row + ch)
                    }, single: { ch in
                        let g = ap[row + ch] + bp[row + ch]
                        out[row + ch] = g * scale
                        return g * gp[row + ch]
                    })
                } }
            } } } } }
        }
    }

    /// Backward of the initial features `s = cut · s_pre` and `v[r, x, :] = scale · unit[r, x] · cut`:
    /// returns the gradient on `s_pre` and adds those on `unit` and `cut`.
    static func initialFeatureBackward(scalarGradient gs: [T], vectorGradient gv: [T], initialScalar: [T], unit: [T], cut: [T],
                                       scale: T, channels f: Int, unitGradient: inout [T], cutGradient: inout [T]) -> [T] {
        [T].filled(count: gs.count) { out in
            gs.withUnsafeBufferPointer { g in gv.withUnsafeBufferPointer { v in initialScalar.withUnsafeBufferPointer { s0 in
            unit.withUnsafeBufferPointer { u in cut.withUnsafeBufferPointer { c in
            unitGradient.withUnsafeMutableBufferPointer { gu in cutGradient.withUnsafeMutableBufferPointer { gc in
                guard let g = g.baseAddress, let v = v.baseAddress, let s0 = s0.baseAddress else { return }
                // Four channels (the triplets of both shipped configurations) as `SIMD4`s.
                if f == 4 {
                    TensorThreads.forChunks(c.count, work: 16 * c.count) { range in for r in range {
                        let gRow = g.quad(4 * r)
                        out.setQuad(4 * r, gRow * c[r])
                        var gCut = (gRow * s0.quad(4 * r)).sum()
                        for x in 0..<3 {
                            let sum = v.quad((r * 3 + x) * 4).sum()
                            gu[3 * r + x] += scale * c[r] * sum
                            gCut += scale * u[3 * r + x] * sum
                        }
                        gc[r] += gCut
                    } }
                    return
                }
                // Eight channels at a time: the sums over channels stayed scalar, in order.
                let wide = f - f % 8
                TensorThreads.forChunks(c.count, work: 4 * c.count * f) { range in for r in range {
                    let row = r * f, cr = c[r]
                    var gCut8 = SIMD8<T>()
                    for ch in stride(from: 0, to: wide, by: 8) {
                        let gl = g.lanes(row + ch)
                        gCut8 += gl * s0.lanes(row + ch)
                        out.setLanes(row + ch, gl * cr)
                    }
                    var gCut = gCut8.sum()
                    for ch in wide..<f {
                        gCut += g[row + ch] * s0[row + ch]
                        out[row + ch] = g[row + ch] * cr
                    }
                    for x in 0..<3 {
                        let vr = (r * 3 + x) * f
                        var sum8 = SIMD8<T>()
                        for ch in stride(from: 0, to: wide, by: 8) { sum8 += v.lanes(vr + ch) }
                        var sum = sum8.sum()
                        for ch in wide..<f { sum += v[vr + ch] }
                        gu[3 * r + x] += scale * cr * sum
                        gCut += scale * u[3 * r + x] * sum
                    }
                    gc[r] += gCut
                } }
            } } } } } } }
        }
    }

    /// Adds the length gradient of `values = exp(−γ (r − μ_q)²)` given the gradient on `values`.
    static func gaussianBackward(_ gValues: [T], lengths: [T], centres: [T], gamma: T, values: [T], count k: Int, into gLength: inout [T]) {
        gValues.withUnsafeBufferPointer { g in lengths.withUnsafeBufferPointer { r in centres.withUnsafeBufferPointer { mu in
        values.withUnsafeBufferPointer { v in gLength.withUnsafeMutableBufferPointer { gl in
            guard let g = g.baseAddress, let mu = mu.baseAddress, let v = v.baseAddress else { return }
            let wide = k - k % 8
            TensorThreads.forChunks(r.count, work: 3 * r.count * k) { range in for i in range {
                let length = r[i], row = i * k
                var acc8 = Lanes<T>()
                for q in stride(from: 0, to: wide, by: 8) { acc8 += g.lanes(row + q) * (length - mu.lanes(q)) * v.lanes(row + q) }
                var acc = acc8.sum()
                for q in wide..<k { acc += g[row + q] * (length - mu[q]) * v[row + q] }
                gl[i] += -2 * gamma * acc
            } }
        } } } } }
    }

    /// Energy, per-atom outputs and, when `forces` is set, the forces, the virial and the
    /// gradient of the energy with respect to every edge vector and every span vector
    /// (``ENINetGraph``), each holding the others fixed: the forces are their sums at the atoms.
    func evaluate(atomicNumbers: [Int], positions: [Vec3], graph: ENINetGraph, forces: Bool,
                  record: ((String, [T]) -> Void)? = nil) throws -> (output: ENINetOutput, edgeGradient: [Vec3], spanGradient: [Vec3]) {
        let c = configuration
        let n = graph.atomCount, ne = graph.edgeCount, nt = graph.tripletCount
        let f = c.featureCount, ft = c.tripletFeatureCount
        let rc = T(c.cutoff)
        guard atomicNumbers.count == n, positions.count == n else {
            throw ModelFileError("evaluate: \(atomicNumbers.count) atomic numbers and \(positions.count) positions for a graph of \(n) atoms")
        }
        let tripletChunks = TripletChunks(triplets: nt, edges: ne, threads: tripletThreads ?? TensorThreads.count,
                                          minimumBlocks: minimumTripletBlocksPerThread)
        var geo = geometry(positions: positions, graph: graph)
        for e in 0..<ne where !geo.edgeLength[e].isFinite || geo.edgeLength[e] == 0 {
            throw ModelFileError("evaluate: edge \(e) between atoms \(graph.edgeSource[e]) and \(graph.edgeDestination[e]) has length \(geo.edgeLength[e])")
        }

        // Initial features.
        var ns = [T](repeating: 0, count: n * f)
        for i in 0..<n {
            let z = atomicNumbers[i]
            guard z >= 0, z < c.elementCount else {
                throw ModelFileError("atom \(i): atomic number \(z) is outside the model's table (0..<\(c.elementCount))")
            }
            guard isKnownElement[z] else { throw c.unknownElementError(atom: i, atomicNumber: z) }
            for ch in 0..<f { ns[i * f + ch] = embedding[z * f + ch] }
        }
        var nv = [T](repeating: 0, count: n * 3 * f)
        geo.initialEdgeScalar = edgeEmbedding.forward(geo.edgeRBF, rows: ne)
        var es = Elementwise.scaledRows(geo.initialEdgeScalar, geo.edgeCut, width: f)
        var ev = Self.broadcastDirections(geo.unitEdge, cut: geo.edgeCut, scale: rc, channels: f)
        if case let .basis(rbf) = geo.tripletRadial {
            geo.initialTripletScalar = Self.spreadSpans(tripletEmbedding.forward(rbf, rows: graph.spanCount), width: ft, over: graph)
        }
        var ts = Elementwise.scaledRows(geo.initialTripletScalar, geo.tripletCut, width: ft)
        var tv = Self.broadcastDirections(geo.unitTriplet, cut: geo.tripletCut, scale: 1, channels: ft)
        record?("init.node_s", ns); record?("init.node_v", nv); record?("init.edge_s", es); record?("init.edge_v", ev)
        record?("init.triplet_s", ts); record?("init.triplet_v", tv)

        var inDegree = [Int](repeating: 0, count: n)
        for d in graph.edgeDestination { inDegree[Int(d)] += 1 }
        let divisor: [T] = (0..<n).map { i in
            switch c.aggregation {
            case .sum: return 1
            case .mean: return T(max(inDegree[i], 1))
            case .normalizedSum: return T(c.averageNeighborCount)
            }
        }

        var threeCaches: [ThreeBodyCache] = [], twoCaches: [TwoBodyCache] = []
        for l in 0..<c.interactionCount {
            let L = threeBody[l]
            let (hiddenPre, hs, _) = L.inputScalar.forwardSiLU(es, rows: ne)
            let hv = L.inputVector.forward(ev, rows: 3 * ne)
            let fromIn = L.inNeighbors.forward(hs, rows: ne), fromOut = L.outNeighbors.forward(hs, rows: ne)
            var sumS = [T](repeating: 0, count: ne * ft), sumV = [T](repeating: 0, count: ne * 3 * ft)
            let messages: TripletMessageCache
            let newTs: [T], newTv: [T]
            if let fused = L.fourChannel {
                // Nothing reads the features that the last interaction updates (but the record).
                let updatesAreRead = l < c.interactionCount - 1 || record != nil
                // Every triplet's updated features are written by the pass: no zero fill first.
                var updatedS = [T].filled(count: updatesAreRead ? nt * ft : 0) { _ in }
                var updatedV = [T].filled(count: updatesAreRead ? nt * 3 * ft : 0) { _ in }
                // Written by the pass, for the backward pass only (an empty array's base address
                // need not be nil, hence the test of `forces` where it is handed over).
                var saved = [T].filled(count: forces ? FourChannelTriplets<T>.savedCount(triplets: nt) : 0) { _ in }
                // Not nested in the closures of `filled`, which calls none for an empty array.
                updatedS.withUnsafeMutableBufferPointer { us in updatedV.withUnsafeMutableBufferPointer { uv in
                saved.withUnsafeMutableBufferPointer { savedp in
                graph.tripletIn.withUnsafeBufferPointer { tin in graph.tripletOut.withUnsafeBufferPointer { tout in
                fromIn.withUnsafeBufferPointer { ip in fromOut.withUnsafeBufferPointer { op in hv.withUnsafeBufferPointer { hvp in
                ts.withUnsafeBufferPointer { tsp in tv.withUnsafeBufferPointer { tvp in
                geo.unitTriplet.withUnsafeBufferPointer { unit in geo.tripletCut.withUnsafeBufferPointer { cutp in
                sumS.withUnsafeMutableBufferPointer { ss in sumV.withUnsafeMutableBufferPointer { sv in
                    guard nt > 0, let tin = tin.baseAddress, let tout = tout.baseAddress, let ip = ip.baseAddress, let op = op.baseAddress,
                          let hvp = hvp.baseAddress, let tsp = tsp.baseAddress, let tvp = tvp.baseAddress, let unit = unit.baseAddress,
                          let cutp = cutp.baseAddress, let ss = ss.baseAddress, let sv = sv.baseAddress else { return }
                    let buffers = FourChannelTriplets<T>.ForwardBuffers(
                        tripletIn: tin, tripletOut: tout, fromIn: ip, fromOut: op, edgeVectors: hvp, scalars: tsp, vectors: tvp,
                        unit: unit, cut: cutp, newScalars: updatesAreRead ? us.baseAddress : nil,
                        newVectors: updatesAreRead ? uv.baseAddress : nil, sumS: ss, sumV: sv,
                        saving: forces ? savedp.baseAddress : nil)
                    fused.forward(buffers, edgeCount: ne, chunks: tripletChunks)
                } } } } } } } } } } } } } }
                messages = .fourChannel(saved: saved)
                newTs = updatedS
                newTv = updatedV
            } else {
                let mapped = L.inNeighbors.outputs
                var left = [T](repeating: 0, count: nt * mapped)
                left.withUnsafeMutableBufferPointer { lp in fromIn.withUnsafeBufferPointer { ip in fromOut.withUnsafeBufferPointer { op in
                graph.tripletIn.withUnsafeBufferPointer { tin in graph.tripletOut.withUnsafeBufferPointer { tout in
                    for t in 0..<nt {
                        let e1 = Int(tin[t]), e2 = Int(tout[t])
                        for ch in 0..<mapped { lp[t * mapped + ch] = ip[e1 * mapped + ch] + op[e2 * mapped + ch] }
                    }
                } } } } }
                let right = L.tripletProjection.forward(ts, rows: nt)
                let product = Elementwise.product(left, right)
                let (gated, gateCache) = L.gate.forward(product, rows: nt)
                let dts = Elementwise.scaledRows(gated, geo.tripletCut, width: ft)
                let abc = L.tripletVector.forward(dts, rows: nt)
                var dtv = [T](repeating: 0, count: nt * 3 * ft)
                graph.tripletIn.withUnsafeBufferPointer { tin in graph.tripletOut.withUnsafeBufferPointer { tout in
                geo.tripletCut.withUnsafeBufferPointer { cutp in geo.unitTriplet.withUnsafeBufferPointer { unit in
                abc.withUnsafeBufferPointer { abcp in tv.withUnsafeBufferPointer { tvp in hv.withUnsafeBufferPointer { hvp in dts.withUnsafeBufferPointer { dtsp in
                dtv.withUnsafeMutableBufferPointer { dtvp in sumV.withUnsafeMutableBufferPointer { sv in sumS.withUnsafeMutableBufferPointer { ss in
                    for t in 0..<nt {
                        let e1 = Int(tin[t]), e2 = Int(tout[t])
                        let cut = cutp[t], ab = t * 3 * ft
                        for x in 0..<3 {
                            let w = unit[3 * t + x]
                            let to = (t * 3 + x) * ft, h1 = (e1 * 3 + x) * ft, o2 = (e2 * 3 + x) * ft
                            for ch in 0..<ft {
                                let v = (tvp[to + ch] * abcp[ab + ch] + hvp[h1 + ch] * abcp[ab + ft + ch] + w * abcp[ab + 2 * ft + ch]) * cut
                                dtvp[to + ch] = v
                                sv[o2 + ch] += v
                            }
                        }
                        for ch in 0..<ft { ss[e2 * ft + ch] += dtsp[t * ft + ch] }
                    }
                } } } } } } } } } } }
                messages = .general(left: left, right: right, gateCache: gateCache, gated: gated, abc: abc)
                newTs = Elementwise.sum(ts, dts)
                newTv = Elementwise.sum(tv, dtv)
            }
            let hvNorm = VectorChannels.norms(hv, rows: ne, channels: ft)
            let (outS, outHidden) = L.outputScalar.forward(VectorChannels.concatenate(sumS, ft, hvNorm, ft, rows: ne), rows: ne)
            let scalarNormInput = Elementwise.sum(outS, es)
            // ev is replaced below; handing it over lets the GEMM accumulate in its buffer.
            let vectorNormInput = L.outputVector.forward(sumV, rows: 3 * ne, adding: consume ev)
            if forces {
                threeCaches.append(ThreeBodyCache(hiddenPre: hiddenPre, hs: hs, hv: hv, messages: messages, ts: ts, tv: tv,
                                                  hvNorm: hvNorm, outHidden: outHidden,
                                                  scalarNormInput: scalarNormInput, vectorNormInput: vectorNormInput))
            }
            es = L.scalarNorm.forward(scalarNormInput, rows: ne)
            ev = L.vectorNorm.forward(vectorNormInput, rows: ne)
            ts = newTs
            tv = newTv
            record?("layer\(l).threebody.edge_s", es); record?("layer\(l).threebody.edge_v", ev)
            record?("layer\(l).threebody.triplet_s", ts); record?("layer\(l).threebody.triplet_v", tv)

            let B = twoBody[l]
            let fromSource = B.sourceNeighbors.forward(ns, rows: n), fromDestination = B.destinationNeighbors.forward(ns, rows: n)
            // Its bias is added by the loop below (no preloaded bias rows for the GEMM).
            var right2 = B.edgeProjection.product(es, rows: ne)
            // Both written once (no zero fill, and no copy-on-write of a shared empty array).
            var product2 = [T]()
            let left2 = [T].filled(count: ne * f) { lp in
                product2 = [T].filled(count: ne * f) { pp in
                    graph.edgeSource.withUnsafeBufferPointer { src in graph.edgeDestination.withUnsafeBufferPointer { dst in
                    fromSource.withUnsafeBufferPointer { ps in fromDestination.withUnsafeBufferPointer { pd in
                    right2.withUnsafeMutableBufferPointer { rp in B.edgeProjection.biasOrZeros.withUnsafeBufferPointer { bp in
                        guard let ps = ps.baseAddress, let pd = pd.baseAddress, let rp = rp.baseAddress, let bp = bp.baseAddress else { return }
                        let wide = f - f % 8
                        TensorThreads.forChunks(ne, work: 4 * ne * f) { range in for e in range {
                            let so = Int(src[e]) * f, dof = Int(dst[e]) * f, eo = e * f
                            for ch in stride(from: 0, to: wide, by: 8) {
                                let v = ps.lanes(so + ch) + pd.lanes(dof + ch), r = rp.lanes(eo + ch) + bp.lanes(ch)
                                rp.setLanes(eo + ch, r)
                                lp.setLanes(eo + ch, v)
                                pp.setLanes(eo + ch, v * r)
                            }
                            for ch in wide..<f {
                                let v = ps[so + ch] + pd[dof + ch], r = rp[eo + ch] + bp[ch]
                                rp[eo + ch] = r
                                lp[eo + ch] = v
                                pp[eo + ch] = v * r
                            }
                        } }
                    } } } } } }
                }
            }
            let (gated2, gateCache2) = B.gate.forward(product2, rows: ne)
            let des = Elementwise.scaledRows(gated2, geo.edgeCut, width: f)
            // Its bias is added row by row in the message loop, where the row is read next.
            var abc2 = B.edgeVector.product(des, rows: ne)
            // The updated edge vectors `ev + dev` are written directly (dev itself is not kept).
            var aggS = [T](repeating: 0, count: n * f), aggV = [T](repeating: 0, count: n * 3 * f)
            let evNext = [T].filled(count: ne * 3 * f) { nextp in
            graph.edgeSource.withUnsafeBufferPointer { src in graph.edgeDestination.withUnsafeBufferPointer { dst in
            abc2.withUnsafeMutableBufferPointer { abc in nv.withUnsafeBufferPointer { nvp in ev.withUnsafeBufferPointer { evp in
            des.withUnsafeBufferPointer { desp in geo.unitEdge.withUnsafeBufferPointer { unit in geo.edgeCut.withUnsafeBufferPointer { cutp in
            aggV.withUnsafeMutableBufferPointer { av in aggS.withUnsafeMutableBufferPointer { asp in B.edgeVector.biasOrZeros.withUnsafeBufferPointer { bp in
                guard let abc = abc.baseAddress, let nvp = nvp.baseAddress, let evp = evp.baseAddress, let desp = desp.baseAddress,
                      let av = av.baseAddress, let asp = asp.baseAddress, let bp = bp.baseAddress else { return }
                let wide = f - f % 8, rowWidth = 3 * f, rowWide = rowWidth - rowWidth % 8
                overEdges(ne, work: 12 * ne * f, adding: [(av, count: n * 3 * f), (asp, count: n * f)]) { range, sums in
                let av = sums[0], asp = sums[1]
                for e in range {
                    let s = Int(src[e]), d = Int(dst[e])
                    let cut = cutp[e]
                    let ab = e * 3 * f
                    for q in stride(from: 0, to: rowWide, by: 8) { abc.setLanes(ab + q, abc.lanes(ab + q) + bp.lanes(q)) }
                    for q in rowWide..<rowWidth { abc[ab + q] += bp[q] }
                    for x in 0..<3 {
                        let u = rc * unit[3 * e + x]
                        let ns0 = (s * 3 + x) * f, eo = (e * 3 + x) * f, dO = (d * 3 + x) * f
                        for ch in stride(from: 0, to: wide, by: 8) {
                            let old = evp.lanes(eo + ch)
                            let v = (nvp.lanes(ns0 + ch) * abc.lanes(ab + ch)).adding(old, times: abc.lanes(ab + f + ch))
                                .adding(abc.lanes(ab + 2 * f + ch), times: u) * cut
                            nextp.setLanes(eo + ch, old + v)
                            av.setLanes(dO + ch, av.lanes(dO + ch) + v)
                        }
                        for ch in wide..<f {
                            let v = (nvp[ns0 + ch] * abc[ab + ch] + evp[eo + ch] * abc[ab + f + ch] + u * abc[ab + 2 * f + ch]) * cut
                            nextp[eo + ch] = evp[eo + ch] + v
                            av[dO + ch] += v
                        }
                    }
                    let dS = d * f, eS = e * f
                    for ch in stride(from: 0, to: wide, by: 8) { asp.setLanes(dS + ch, asp.lanes(dS + ch) + desp.lanes(eS + ch)) }
                    for ch in wide..<f { asp[dS + ch] += desp[eS + ch] }
                }
                }
            } } } } } } } } } } }
            }
            if c.aggregation != .sum {
                aggS.withUnsafeMutableBufferPointer { sp in aggV.withUnsafeMutableBufferPointer { vp in divisor.withUnsafeBufferPointer { dp in
                    for i in 0..<n {
                        let inv = 1 / dp[i]
                        for ch in 0..<f { sp[i * f + ch] *= inv }
                        for q in 0..<(3 * f) { vp[i * 3 * f + q] *= inv }
                    }
                } } }
            }
            // o = [o1, o2, o3] along channels, [N, 3, 3F], read in place.
            let o = B.vectorOut.forward(aggV, rows: 3 * n)
            var o3Norm = [T](repeating: 0, count: n * f)
            o.withUnsafeBufferPointer { op in o3Norm.withUnsafeMutableBufferPointer { np in
                for i in 0..<n { for ch in 0..<f {
                    var sum: T = 0
                    for x in 0..<3 { let v = op[(i * 3 + x) * 3 * f + 2 * f + ch]; sum += v * v }
                    np[i * f + ch] = sum.squareRoot()
                } }
            } }
            let gate = B.vectorChannel.forward(VectorChannels.concatenate(aggS, f, o3Norm, f, rows: n), rows: n)
            var nvu = [T](repeating: 0, count: n * 3 * f)
            nvu.withUnsafeMutableBufferPointer { up in o.withUnsafeBufferPointer { op in gate.withUnsafeBufferPointer { gp in
                TensorThreads.forChunks(n, work: 6 * n * f) { atoms in for i in atoms { for x in 0..<3 {
                    let r = (i * 3 + x) * 3 * f, q = (i * 3 + x) * f
                    for ch in 0..<f { up[q + ch] = op[r + ch] * gp[i * f + ch] + op[r + f + ch] }
                } } }
            } } }
            let pp = B.vectorProjection.forward(nvu, rows: 3 * n)  // [N,3,2F]
            let qPre = B.scalarProjection.forward(aggS, rows: n)   // [N,2F]
            var nsu = [T](repeating: 0, count: n * f)
            nsu.withUnsafeMutableBufferPointer { sp in pp.withUnsafeBufferPointer { p in qPre.withUnsafeBufferPointer { qp in
                TensorThreads.forChunks(n, work: 20 * n * f) { atoms in for i in atoms { for ch in 0..<f {
                    var sum: T = 0
                    for x in 0..<3 { sum += p[(i * 3 + x) * 2 * f + ch] * p[(i * 3 + x) * 2 * f + f + ch] }
                    sp[i * f + ch] = sum * silu(qp[i * 2 * f + ch]) + silu(qp[i * 2 * f + f + ch])
                } } }
            } } }
            let scalarNormInput2 = Elementwise.sum(nsu, ns)
            let vectorNormInput2 = Elementwise.sum(nvu, nv)
            if forces {
                twoCaches.append(TwoBodyCache(ns: ns, nv: nv, ev: ev, left: left2, right: right2, gateCache: gateCache2, gated: gated2,
                                              abc: abc2, aggS: aggS, o: o, o3Norm: o3Norm, gate: gate, nvu: nvu, pp: pp, qPre: qPre,
                                              scalarNormInput: scalarNormInput2, vectorNormInput: vectorNormInput2))
            }
            ns = B.scalarNorm.forward(scalarNormInput2, rows: n)
            nv = B.vectorNorm.forward(vectorNormInput2, rows: n)
            es = Elementwise.sum(es, des)
            ev = evNext
            record?("layer\(l).twobody.node_s", ns); record?("layer\(l).twobody.node_v", nv)
            record?("layer\(l).twobody.edge_s", es); record?("layer\(l).twobody.edge_v", ev)
        }
        record?("final.node_s", ns); record?("final.node_v", nv)
        let finalNorms = VectorChannels.norms(nv, rows: n, channels: f)

        // Readout.
        var s = ns, v = nv, width = f
        var readoutCaches: [ReadoutCache] = []
        for block in readout {
            let out = block.outputs
            let uv = block.vectorLinear.forward(v, rows: 3 * n)  // [N,3,2out]
            let vPart = VectorChannels.columns(uv, rows: 3 * n, width: 2 * out, from: out, count: out)
            let vNorm = VectorChannels.norms(vPart, rows: n, channels: out)
            let (h, hidden) = block.mix.forward(VectorChannels.concatenate(s, width, vNorm, out, rows: n), rows: n)
            readoutCaches.append(ReadoutCache(s: s, v: v, uv: uv, vNorm: vNorm, h: h, hidden: hidden))
            var newS = [T](repeating: 0, count: n * out), newV = [T](repeating: 0, count: n * 3 * out)
            for i in 0..<n { for ch in 0..<out {
                newS[i * out + ch] = block.activation ? silu(h[i * 2 * out + ch]) : h[i * 2 * out + ch]
                for x in 0..<3 { newV[(i * 3 + x) * out + ch] = uv[(i * 3 + x) * 2 * out + ch] * h[i * 2 * out + out + ch] }
            } }
            s = newS; v = newV; width = out
        }
        record?("readout.s_raw", s)

        let scalars = s.map { Double($0) }
        let energies = scalars.indices.map { c.scaleStd * scalars[$0] + c.scaleMean + c.elementEnergy(atomicNumbers[$0]) }
        var output = ENINetOutput(energy: energies.reduce(0, +), forces: [], virial: .zero, atomScalars: scalars,
                                  atomVectors: (0..<n).map { Vec3(Double(v[3 * $0]), Double(v[3 * $0 + 1]), Double(v[3 * $0 + 2])) },
                                  atomEnergies: energies, finalNodeScalars: ns.map { Double($0) },
                                  finalNodeVectorNorms: finalNorms.map { Double($0) })
        guard forces else { return (output, [], []) }

        // MARK: Backward, from dE/dq_i = std to dE/d(edge vectors).
        var gs = [T](repeating: T(c.scaleStd), count: n)
        var gv = [T](repeating: 0, count: n * 3)
        for (index, block) in readout.enumerated().reversed() {
            let cache = readoutCaches[index]
            let out = block.outputs
            let inWidth = index == 0 ? f : readout[0].outputs
            var gh = [T](repeating: 0, count: n * 2 * out)
            var guv = [T](repeating: 0, count: n * 3 * 2 * out)
            for i in 0..<n { for ch in 0..<out {
                let sPre = cache.h[i * 2 * out + ch]
                gh[i * 2 * out + ch] = block.activation ? gs[i * out + ch] * siluDerivative(sPre) : gs[i * out + ch]
                var gg: T = 0
                for x in 0..<3 {
                    let q = (i * 3 + x) * out + ch
                    gg += gv[q] * cache.uv[(i * 3 + x) * 2 * out + ch]
                    guv[(i * 3 + x) * 2 * out + ch] = gv[q] * cache.h[i * 2 * out + out + ch]
                }
                gh[i * 2 * out + out + ch] = gg
            } }
            let gx = block.mix.backward(gh, hidden: cache.hidden, rows: n)  // [N, inWidth + out]
            let gsIn = VectorChannels.columns(gx, rows: n, width: inWidth + out, from: 0, count: inWidth)
            let gNorm = VectorChannels.columns(gx, rows: n, width: inWidth + out, from: inWidth, count: out)
            let vPart = VectorChannels.columns(cache.uv, rows: 3 * n, width: 2 * out, from: out, count: out)
            var gvPart = [T](repeating: 0, count: n * 3 * out)
            VectorChannels.accumulateNormBackward(gNorm, norms: cache.vNorm, vectors: vPart, rows: n, channels: out, into: &gvPart)
            for r in 0..<(3 * n) { for ch in 0..<out { guv[r * 2 * out + out + ch] += gvPart[r * out + ch] } }
            gv = block.vectorLinear.backward(guv, rows: 3 * n)
            gs = gsIn
        }
        var gns = gs, gnv = gv
        var ges = [T](repeating: 0, count: ne * f), gev = [T](repeating: 0, count: ne * 3 * f)
        // The last interaction's fused backward writes every element without reading it (its
        // updated triplet features are not read); the general one adds to zeros.
        let lastIsFused = threeBody.last?.fourChannel != nil
        var gts = lastIsFused ? [T].filled(count: nt * ft) { _ in } : [T](repeating: 0, count: nt * ft)
        var gtv = lastIsFused ? [T].filled(count: nt * 3 * ft) { _ in } : [T](repeating: 0, count: nt * 3 * ft)
        // Geometry gradients: on edge lengths, unit edge vectors, edge cutoffs; likewise for triplets.
        var gEdgeLength = [T](repeating: 0, count: ne), gUnitEdge = [T](repeating: 0, count: 3 * ne), gEdgeCut = [T](repeating: 0, count: ne)
        var gUnitTriplet = [T](repeating: 0, count: 3 * nt), gTripletCut = [T](repeating: 0, count: nt)

        for l in stride(from: c.interactionCount - 1, through: 0, by: -1) {
            // Two-body block.
            let B = twoBody[l], C2 = twoCaches[l]
            // es <- des + es, so des's gradient starts as es's; likewise ev <- dev + ev, whose
            // gradient the message loop below reads from gev in place before adding to it.
            var gdes = [T]()  // written by the message loop from ges (no copy, then update)
            let gz = B.scalarNorm.backward(gns, input: C2.scalarNormInput, rows: n)
            let gy = B.vectorNorm.backward(gnv, input: C2.vectorNormInput, rows: n)
            gns = gz
            var gnvu = gy
            // gnvu's first update copies gy; consuming gy leaves gnv the sole owner of its buffer.
            gnv = consume gy
            // nsu = (Σ_x p1 p2) silu(q1) + silu(q2)
            var gpp = [T](repeating: 0, count: n * 3 * 2 * f)
            var gqPre = [T](repeating: 0, count: n * 2 * f)
            gz.withUnsafeBufferPointer { gzp in C2.qPre.withUnsafeBufferPointer { qp in C2.pp.withUnsafeBufferPointer { p in
            gqPre.withUnsafeMutableBufferPointer { gq in gpp.withUnsafeMutableBufferPointer { gp in
                TensorThreads.forChunks(n, work: 30 * n * f) { atoms in for i in atoms { for ch in 0..<f {
                    let g = gzp[i * f + ch]
                    let q1 = qp[i * 2 * f + ch], q2 = qp[i * 2 * f + f + ch]
                    var pSum: T = 0
                    for x in 0..<3 { pSum += p[(i * 3 + x) * 2 * f + ch] * p[(i * 3 + x) * 2 * f + f + ch] }
                    let s1 = sigmoid(q1)
                    gq[i * 2 * f + ch] = g * pSum * s1 * (1 + q1 * (1 - s1))
                    gq[i * 2 * f + f + ch] = g * siluDerivative(q2)
                    let gP = g * q1 * s1
                    for x in 0..<3 {
                        let r = (i * 3 + x) * 2 * f
                        gp[r + ch] = gP * p[r + f + ch]
                        gp[r + f + ch] = gP * p[r + ch]
                    }
                } } }
            } } } } }
            var gA = B.scalarProjection.backward(gqPre, rows: n)
            B.vectorProjection.backward(gpp, rows: 3 * n, addingInto: &gnvu)
            // nvu = o1 * gate + o2
            var go = [T](repeating: 0, count: n * 3 * 3 * f)
            var ggate = [T](repeating: 0, count: n * f)
            gnvu.withUnsafeBufferPointer { gu in C2.o.withUnsafeBufferPointer { op in C2.gate.withUnsafeBufferPointer { gatep in
            go.withUnsafeMutableBufferPointer { gop in ggate.withUnsafeMutableBufferPointer { gg in
                TensorThreads.forChunks(n, work: 9 * n * f) { atoms in for i in atoms { for ch in 0..<f {
                    var acc: T = 0
                    for x in 0..<3 {
                        let q = (i * 3 + x) * f + ch, r = (i * 3 + x) * 3 * f
                        acc += gu[q] * op[r + ch]
                        gop[r + ch] = gu[q] * gatep[i * f + ch]
                        gop[r + f + ch] = gu[q]
                    }
                    gg[i * f + ch] = acc
                } } }
            } } } } }
            let gxc = B.vectorChannel.backward(ggate, rows: n)  // [N, 2F]
            gA.withUnsafeMutableBufferPointer { ga in gxc.withUnsafeBufferPointer { gx in C2.o3Norm.withUnsafeBufferPointer { np in
            C2.o.withUnsafeBufferPointer { op in go.withUnsafeMutableBufferPointer { gop in
                TensorThreads.forChunks(n, work: 8 * n * f) { atoms in for i in atoms {
                    for ch in 0..<f { ga[i * f + ch] += gx[i * 2 * f + ch] }
                    for ch in 0..<f where np[i * f + ch] > 0 {
                        let k = gx[i * 2 * f + f + ch] / np[i * f + ch]
                        for x in 0..<3 { let r = (i * 3 + x) * 3 * f; gop[r + 2 * f + ch] += k * op[r + 2 * f + ch] }
                    }
                } }
            } } } } }
            let gB = B.vectorOut.backward(go, rows: 3 * n)  // [N,3,F]
            // Aggregation and messages.
            // gabc2 sums over x: the first component writes it, so it is not zero-filled first.
            let gabc2 = [T].filled(count: ne * 3 * f) { gab in
            graph.edgeSource.withUnsafeBufferPointer { src in graph.edgeDestination.withUnsafeBufferPointer { dst in
            C2.abc.withUnsafeBufferPointer { abc in C2.nv.withUnsafeBufferPointer { nvp in C2.ev.withUnsafeBufferPointer { evp in
            gB.withUnsafeBufferPointer { gBp in gA.withUnsafeBufferPointer { gAp in
            geo.unitEdge.withUnsafeBufferPointer { unit in geo.edgeCut.withUnsafeBufferPointer { cutp in
            gdes = [T].filled(count: ne * f) { gdesp in ges.withUnsafeBufferPointer { gesp in
            gnv.withUnsafeMutableBufferPointer { gnvp in gev.withUnsafeMutableBufferPointer { gevp in
            gUnitEdge.withUnsafeMutableBufferPointer { gUnit in gEdgeCut.withUnsafeMutableBufferPointer { gCutp in
                guard let abc = abc.baseAddress, let nvp = nvp.baseAddress, let evp = evp.baseAddress,
                      let gBp = gBp.baseAddress, let gnvp = gnvp.baseAddress, let gevp = gevp.baseAddress,
                      let gesP = gesp.baseAddress, let gAP = gAp.baseAddress else { return }
                let wide = f - f % 8
                overEdges(ne, work: 20 * ne * f, adding: [(gnvp, count: n * 3 * f)]) { range, sums in
                let gnvp = sums[0]
                for e in range {
                    let s = Int(src[e]), d = Int(dst[e])
                    let cut = cutp[e], inv = 1 / divisor[d]
                    let eS = e * f, dS = d * f
                    for ch in stride(from: 0, to: wide, by: 8) { gdesp.setLanes(eS + ch, gesP.lanes(eS + ch) + gAP.lanes(dS + ch) * inv) }
                    for ch in wide..<f { gdesp[eS + ch] = gesP[eS + ch] + gAP[dS + ch] * inv }
                    var gCut: T = 0
                    let ab = e * 3 * f
                    for x in 0..<3 {
                        let u = rc * unit[3 * e + x]
                        var gU: T = 0
                        let eo = (e * 3 + x) * f, so = (s * 3 + x) * f, dO = (d * 3 + x) * f
                        var gU8 = Lanes<T>(), gCut8 = Lanes<T>()
                        for ch in stride(from: 0, to: wide, by: 8) {
                            let gNext = gevp.lanes(eo + ch)
                            let g = gNext.adding(gBp.lanes(dO + ch), times: inv)
                            let a = abc.lanes(ab + ch), b = abc.lanes(ab + f + ch), cc = abc.lanes(ab + 2 * f + ch)
                            let nvs = nvp.lanes(so + ch), evq = evp.lanes(eo + ch)
                            let gc = g * cut
                            gnvp.setLanes(so + ch, gnvp.lanes(so + ch).adding(gc, times: a))
                            gevp.setLanes(eo + ch, gNext.adding(gc, times: b))
                            // x = 0 writes, the others add (gab is not zero-filled).
                            gab.setLanes(ab + ch, x == 0 ? gc * nvs : gab.lanes(ab + ch).adding(gc, times: nvs))
                            gab.setLanes(ab + f + ch, x == 0 ? gc * evq : gab.lanes(ab + f + ch).adding(gc, times: evq))
                            gab.setLanes(ab + 2 * f + ch, x == 0 ? gc * u : gab.lanes(ab + 2 * f + ch).adding(gc, times: u))
                            gU8 = gU8.adding(gc, times: cc)
                            gCut8 = gCut8.adding(g, times: (nvs * a).adding(evq, times: b).adding(cc, times: u))
                        }
                        gU += gU8.sum()
                        gCut += gCut8.sum()
                        for ch in wide..<f {
                            let gNext = gevp[eo + ch]
                            let g = gNext + gBp[dO + ch] * inv
                            let a = abc[ab + ch], b = abc[ab + f + ch], cc = abc[ab + 2 * f + ch]
                            let nvs = nvp[so + ch], evq = evp[eo + ch]
                            let gc = g * cut
                            gnvp[so + ch] += gc * a
                            gevp[eo + ch] = gNext + gc * b
                            gab[ab + ch] = x == 0 ? gc * nvs : gab[ab + ch] + gc * nvs
                            gab[ab + f + ch] = x == 0 ? gc * evq : gab[ab + f + ch] + gc * evq
                            gab[ab + 2 * f + ch] = x == 0 ? gc * u : gab[ab + 2 * f + ch] + gc * u
                            gU += gc * cc
                            gCut += g * (nvs * a + evq * b + u * cc)
                        }
                        gUnit[3 * e + x] += rc * gU
                    }
                    gCutp[e] += gCut
                }
                }
            } } } } } } } } } } } } } } }
            }
            let gdesAbc = B.edgeVector.backward(gabc2, rows: ne)
            let ggated2 = Self.cutProductBackward(gdes, gdesAbc, gated: C2.gated, cut: geo.edgeCut, width: f, cutGradient: &gEdgeCut)
            // The product's gradient becomes the right factor's in place (read before written).
            var gRight2 = B.gate.backward(ggated2, cache: C2.gateCache, rows: ne)
            var gFromSource = [T](repeating: 0, count: n * f), gFromDestination = [T](repeating: 0, count: n * f)
            graph.edgeSource.withUnsafeBufferPointer { src in graph.edgeDestination.withUnsafeBufferPointer { dst in
            C2.right.withUnsafeBufferPointer { rp in C2.left.withUnsafeBufferPointer { lp in
            gRight2.withUnsafeMutableBufferPointer { gp in gFromSource.withUnsafeMutableBufferPointer { gs in gFromDestination.withUnsafeMutableBufferPointer { gd in
                guard let gp = gp.baseAddress, let rp = rp.baseAddress, let lp = lp.baseAddress,
                      let gs = gs.baseAddress, let gd = gd.baseAddress else { return }
                let wide = f - f % 8
                overEdges(ne, work: 4 * ne * f, adding: [(gs, count: n * f), (gd, count: n * f)]) { range, sums in
                let gs = sums[0], gd = sums[1]
                for e in range {
                    let eo = e * f, so = Int(src[e]) * f, dof = Int(dst[e]) * f
                    for ch in stride(from: 0, to: wide, by: 8) {
                        let gProduct = gp.lanes(eo + ch)
                        let gl = gProduct * rp.lanes(eo + ch)
                        gp.setLanes(eo + ch, gProduct * lp.lanes(eo + ch))
                        gs.setLanes(so + ch, gs.lanes(so + ch) + gl)
                        gd.setLanes(dof + ch, gd.lanes(dof + ch) + gl)
                    }
                    for ch in wide..<f {
                        let gProduct = gp[eo + ch]
                        let gl = gProduct * rp[eo + ch]
                        gp[eo + ch] = gProduct * lp[eo + ch]
                        gs[so + ch] += gl
                        gd[dof + ch] += gl
                    }
                }
                }
            } } } } } } }
            B.edgeProjection.backward(gRight2, rows: ne, addingInto: &ges)
            B.sourceNeighbors.backward(gFromSource, rows: n, addingInto: &gns)
            B.destinationNeighbors.backward(gFromDestination, rows: n, addingInto: &gns)

            // Three-body block.
            let L = threeBody[l], C3 = threeCaches[l]
            // Reassigned, not bound to new names, so that the GEMMs below add into unshared buffers.
            ges = L.scalarNorm.backward(ges, input: C3.scalarNormInput, rows: ne)
            gev = L.vectorNorm.backward(gev, input: C3.vectorNormInput, rows: ne)
            let gxo = L.outputScalar.backward(ges, hidden: C3.outHidden, rows: ne)  // [E, 2Ft]
            var ghv = [T](repeating: 0, count: ne * 3 * ft)
            let gHvNorm = VectorChannels.columns(gxo, rows: ne, width: 2 * ft, from: ft, count: ft)
            VectorChannels.accumulateNormBackward(gHvNorm, norms: C3.hvNorm, vectors: C3.hv, rows: ne, channels: ft, into: &ghv)
            let gSumV = L.outputVector.backward(gev, rows: 3 * ne)  // [E,3,Ft]
            let mapped = L.inNeighbors.outputs
            var gFromIn = [T](repeating: 0, count: ne * mapped), gFromOut = [T](repeating: 0, count: ne * mapped)
            switch C3.messages {
            case let .fourChannel(saved):
                guard let fused = L.fourChannel else { break }
                graph.tripletIn.withUnsafeBufferPointer { tin in graph.tripletOut.withUnsafeBufferPointer { tout in
                saved.withUnsafeBufferPointer { savedp in C3.hv.withUnsafeBufferPointer { hvp in
                C3.ts.withUnsafeBufferPointer { tsp in C3.tv.withUnsafeBufferPointer { tvp in
                geo.unitTriplet.withUnsafeBufferPointer { unit in geo.tripletCut.withUnsafeBufferPointer { cutp in
                gts.withUnsafeMutableBufferPointer { gsp in gtv.withUnsafeMutableBufferPointer { gvp in
                gxo.withUnsafeBufferPointer { gxop in gSumV.withUnsafeBufferPointer { gsv in
                gFromIn.withUnsafeMutableBufferPointer { gi in gFromOut.withUnsafeMutableBufferPointer { go in ghv.withUnsafeMutableBufferPointer { ghvp in
                gUnitTriplet.withUnsafeMutableBufferPointer { gUnit in gTripletCut.withUnsafeMutableBufferPointer { gCutp in
                    guard nt > 0, let tin = tin.baseAddress, let tout = tout.baseAddress, let savedp = savedp.baseAddress,
                          let hvp = hvp.baseAddress, let tsp = tsp.baseAddress, let tvp = tvp.baseAddress, let unit = unit.baseAddress,
                          let cutp = cutp.baseAddress, let gsp = gsp.baseAddress, let gvp = gvp.baseAddress, let gxop = gxop.baseAddress,
                          let gsv = gsv.baseAddress, let gi = gi.baseAddress, let go = go.baseAddress, let ghvp = ghvp.baseAddress,
                          let gUnit = gUnit.baseAddress, let gCutp = gCutp.baseAddress else { return }
                    let buffers = FourChannelTriplets<T>.BackwardBuffers(
                        tripletIn: tin, tripletOut: tout, saved: savedp, edgeVectors: hvp, scalars: tsp, vectors: tvp, unit: unit,
                        cut: cutp, gScalars: gsp, gVectors: gvp, updatesAreUnused: l == c.interactionCount - 1,
                        gSumS: gxop, sumStride: 2 * ft, gSumV: gsv,
                        gFromIn: gi, gFromOut: go, gEdgeVectors: ghvp, gUnit: gUnit, gCut: gCutp)
                    fused.backward(buffers, edgeCount: ne, chunks: tripletChunks)
                } } } } } } } } } } } } } } } } }
            case let .general(left, right, gateCache, gated, abc):
                var gdts = gts, gdtv = gtv  // ts <- dts + ts; tv <- dtv + tv
                var gabc = [T](repeating: 0, count: nt * 3 * ft)
                graph.tripletIn.withUnsafeBufferPointer { tin in graph.tripletOut.withUnsafeBufferPointer { tout in
                geo.tripletCut.withUnsafeBufferPointer { cutp in geo.unitTriplet.withUnsafeBufferPointer { unit in
                abc.withUnsafeBufferPointer { abcp in C3.tv.withUnsafeBufferPointer { tvp in C3.hv.withUnsafeBufferPointer { hvp in
                gdtv.withUnsafeBufferPointer { gdtvp in gSumV.withUnsafeBufferPointer { gsv in gxo.withUnsafeBufferPointer { gxop in
                gdts.withUnsafeMutableBufferPointer { gdtsp in gtv.withUnsafeMutableBufferPointer { gtvp in ghv.withUnsafeMutableBufferPointer { ghvp in
                gabc.withUnsafeMutableBufferPointer { gab in gUnitTriplet.withUnsafeMutableBufferPointer { gUnit in gTripletCut.withUnsafeMutableBufferPointer { gCutp in
                    for t in 0..<nt {
                        let e1 = Int(tin[t]), e2 = Int(tout[t])
                        let cut = cutp[t], ab = t * 3 * ft
                        for ch in 0..<ft { gdtsp[t * ft + ch] += gxop[e2 * 2 * ft + ch] }
                        var gCut: T = 0
                        for x in 0..<3 {
                            let w = unit[3 * t + x]
                            var gW: T = 0
                            let to = (t * 3 + x) * ft, h1 = (e1 * 3 + x) * ft, o2 = (e2 * 3 + x) * ft
                            for ch in 0..<ft {
                                let g = gdtvp[to + ch] + gsv[o2 + ch]
                                let a = abcp[ab + ch], b = abcp[ab + ft + ch], cc = abcp[ab + 2 * ft + ch]
                                let tvq = tvp[to + ch], hv1 = hvp[h1 + ch]
                                let gc = g * cut
                                gtvp[to + ch] += gc * a
                                ghvp[h1 + ch] += gc * b
                                gab[ab + ch] += gc * tvq
                                gab[ab + ft + ch] += gc * hv1
                                gab[ab + 2 * ft + ch] += gc * w
                                gW += gc * cc
                                gCut += g * (tvq * a + hv1 * b + w * cc)
                            }
                            gUnit[3 * t + x] += gW
                        }
                        gCutp[t] += gCut
                    }
                } } } } } } } } } } } } } } } }
                let gdtsAbc = L.tripletVector.backward(gabc, rows: nt)
                let ggated = Self.cutProductBackward(gdts, gdtsAbc, gated: gated, cut: geo.tripletCut, width: ft, cutGradient: &gTripletCut)
                let gProduct = L.gate.backward(ggated, cache: gateCache, rows: nt)
                let gLeft = Elementwise.product(gProduct, right), gRight = Elementwise.product(gProduct, left)
                let gtsP = L.tripletProjection.backward(gRight, rows: nt)
                Elementwise.add(&gts, gtsP)
                gFromIn.withUnsafeMutableBufferPointer { gi in gFromOut.withUnsafeMutableBufferPointer { go in gLeft.withUnsafeBufferPointer { gl in
                graph.tripletIn.withUnsafeBufferPointer { tin in graph.tripletOut.withUnsafeBufferPointer { tout in
                    for t in 0..<nt {
                        let e1 = Int(tin[t]), e2 = Int(tout[t])
                        for ch in 0..<mapped { gi[e1 * mapped + ch] += gl[t * mapped + ch]; go[e2 * mapped + ch] += gl[t * mapped + ch] }
                    }
                } } } } }
            }
            var ghs = L.inNeighbors.backward(gFromIn, rows: ne)
            L.outNeighbors.backward(gFromOut, rows: ne, addingInto: &ghs)
            Elementwise.multiplySiluDerivative(&ghs, C3.hiddenPre)
            L.inputScalar.backward(ghs, rows: ne, addingInto: &ges)
            L.inputVector.backward(ghv, rows: 3 * ne, addingInto: &gev)
        }

        // Initial features.
        let k = c.radialBasisCount
        let gPre = Self.initialFeatureBackward(scalarGradient: ges, vectorGradient: gev, initialScalar: geo.initialEdgeScalar,
                                               unit: geo.unitEdge, cut: geo.edgeCut, scale: rc, channels: f,
                                               unitGradient: &gUnitEdge, cutGradient: &gEdgeCut)
        Self.gaussianBackward(edgeEmbedding.backward(gPre, rows: ne), lengths: geo.edgeLength, centres: twoBodyCentres,
                              gamma: T(c.twoBodyGamma), values: geo.edgeRBF, count: k, into: &gEdgeLength)
        let gPreT = Self.initialFeatureBackward(scalarGradient: gts, vectorGradient: gtv, initialScalar: geo.initialTripletScalar,
                                                unit: geo.unitTriplet, cut: geo.tripletCut, scale: 1, channels: ft,
                                                unitGradient: &gUnitTriplet, cutGradient: &gTripletCut)
        // From here on, the triplets' radial terms add up at their spans (``ENINetGraph``).
        let spanCount = graph.spanCount
        let gPreSpan = Self.gatherSpans(gPreT, width: ft, over: graph)
        var gSpanLength = [T](repeating: 0, count: spanCount)
        switch geo.tripletRadial {
        case let .embedded(slopes):
            gPreSpan.withUnsafeBufferPointer { g in slopes.withUnsafeBufferPointer { slope in
            gSpanLength.withUnsafeMutableBufferPointer { gl in
                guard let g = g.baseAddress, let slope = slope.baseAddress else { return }
                for p in 0..<spanCount { gl[p] = (g.quad(4 * p) * slope.quad(4 * p)).sum() }
            } } }
        case let .basis(rbf):
            Self.gaussianBackward(tripletEmbedding.backward(gPreSpan, rows: spanCount), lengths: geo.spanLength, centres: threeBodyCentres,
                                  gamma: T(c.threeBodyGamma), values: rbf, count: k, into: &gSpanLength)
        }

        // The triplets' cutoffs and directions: their gradients add up at the spans (and, for the
        // bonds' cutoffs, at the edges), each span's as [distance cutoff, direction x, y, z]. The
        // triplet chunks after the first add to rows of their own (``ChunkSums``).
        var gSpan = [T](repeating: 0, count: 4 * spanCount)
        let bondCutoff = c.tripletBondCutoff
        graph.tripletIn.withUnsafeBufferPointer { tin in graph.tripletOut.withUnsafeBufferPointer { tout in
        graph.tripletSpan.withUnsafeBufferPointer { span in
        gTripletCut.withUnsafeBufferPointer { gCut in gUnitTriplet.withUnsafeBufferPointer { gUnit in
        geo.spanDistanceCut.withUnsafeBufferPointer { distanceCut in geo.edgeCut.withUnsafeBufferPointer { edgeCut in
        gEdgeCut.withUnsafeMutableBufferPointer { gEdgeCutP in gSpan.withUnsafeMutableBufferPointer { gSpanP in
            guard let gEdgeCutP = gEdgeCutP.baseAddress, let gSpanP = gSpanP.baseAddress else { return }
            ChunkSums.run(tripletChunks.ranges, ownWidth: 4 * spanCount + ne, pass: { range, own in
                let spanSums = own ?? gSpanP, edgeSums = own.map { $0 + 4 * spanCount } ?? gEdgeCutP
                for t in range {
                    let p = Int(span[t])
                    var row = SIMD4(gCut[t], gUnit[3 * t], gUnit[3 * t + 1], gUnit[3 * t + 2])
                    if bondCutoff {
                        let e1 = Int(tin[t]), e2 = Int(tout[t]), dc = distanceCut[p]
                        edgeSums[e1] += gCut[t] * dc * edgeCut[e2]
                        edgeSums[e2] += gCut[t] * dc * edgeCut[e1]
                        row[0] *= edgeCut[e1] * edgeCut[e2]
                    }
                    spanSums.setQuad(4 * p, spanSums.quad(4 * p) + row)
                }
            }, merge: { own in
                ChunkSums.add(own, into: gSpanP, count: 4 * spanCount)
                ChunkSums.add(own + 4 * spanCount, into: gEdgeCutP, count: ne)
            })
        } } } } } } } } }

        // Lengths and directions to edge and span vectors (Double from here on), and to atoms:
        // a vector d from atom a to atom b, whose energy gradient is g, pulls a by g and b by −g.
        var forcesOut = [Vec3](repeating: .zero, count: n)
        var virial = Mat3.zero
        func vectorGradient(length gLength: T, direction g: SIMD3<T>, vector d: Vec3, length r: T, from a: Int, to b: Int) -> Vec3 {
            let r = Double(r), u = d / r, gu = Vec3(Double(g.x), Double(g.y), Double(g.z))
            let gd = Double(gLength) * u + (gu - dot(gu, u) * u) / r
            forcesOut[a] += gd
            forcesOut[b] -= gd
            virial = virial - Mat3.outer(d, gd)
            return gd
        }
        let gEdge: [Vec3] = (0..<ne).map { (e: Int) -> Vec3 in
            let gLength: T = gEdgeLength[e] + gEdgeCut[e] * geo.edgeCutDerivative[e]
            let gUnit = SIMD3<T>(gUnitEdge[3 * e], gUnitEdge[3 * e + 1], gUnitEdge[3 * e + 2])
            let a = Int(graph.edgeSource[e]), b = Int(graph.edgeDestination[e])
            return vectorGradient(length: gLength, direction: gUnit, vector: geo.edgeVector[e], length: geo.edgeLength[e], from: a, to: b)
        }
        let gSpanVector: [Vec3] = (0..<spanCount).map { (p: Int) -> Vec3 in
            let gLength: T = gSpanLength[p] + gSpan[4 * p] * geo.spanDistanceCutDerivative[p]
            let gUnit = SIMD3<T>(gSpan[4 * p + 1], gSpan[4 * p + 2], gSpan[4 * p + 3])
            let (a, b) = graph.spanAtoms(p)
            return vectorGradient(length: gLength, direction: gUnit, vector: geo.spanVector[p], length: geo.spanLength[p], from: a, to: b)
        }
        output.forces = forcesOut
        output.virial = virial
        return (output, gEdge, gSpanVector)
    }
}

