import Tensors

/// An affine map of four inputs to four outputs, `y = W x + b`, applied to eight triplets at
/// once: output `o` reads row `o` of `W`, and input gradient `k` of `Wᵀ g` reads column `k`.
/// In `Float` only, like the pass that uses it (``FourChannelTriplets``).
struct QuadMap {
    typealias T = Float
    let columns: (SIMD4<T>, SIMD4<T>, SIMD4<T>, SIMD4<T>)
    let rows: (SIMD4<T>, SIMD4<T>, SIMD4<T>, SIMD4<T>)
    let bias: SIMD4<T>

    /// Output rows `from ..< from + 4` of `layer` (whose inputs must be 4).
    init(_ layer: LinearLayer<T>, outputsFrom from: Int = 0) {
        let w = layer.weight, k = layer.inputs
        func column(_ i: Int) -> SIMD4<T> { SIMD4(w[from * k + i], w[(from + 1) * k + i], w[(from + 2) * k + i], w[(from + 3) * k + i]) }
        func row(_ o: Int) -> SIMD4<T> { SIMD4(w[(from + o) * k], w[(from + o) * k + 1], w[(from + o) * k + 2], w[(from + o) * k + 3]) }
        columns = (column(0), column(1), column(2), column(3))
        rows = (row(0), row(1), row(2), row(3))
        if let b = layer.bias { bias = SIMD4(b[from], b[from + 1], b[from + 2], b[from + 3]) } else { bias = .zero }
    }

    @inline(__always) func callAsFunction(_ x: EightTriplets<T>) -> EightTriplets<T> {
        @inline(__always) func output(_ row: SIMD4<T>, _ b: T) -> SIMD8<T> {
            SIMD8(repeating: b).adding(x.c0, times: row[0]).adding(x.c1, times: row[1])
                .adding(x.c2, times: row[2]).adding(x.c3, times: row[3])
        }
        return EightTriplets(c0: output(rows.0, bias[0]), c1: output(rows.1, bias[1]), c2: output(rows.2, bias[2]), c3: output(rows.3, bias[3]))
    }

    @inline(__always) func transposed(_ g: EightTriplets<T>) -> EightTriplets<T> {
        @inline(__always) func input(_ column: SIMD4<T>) -> SIMD8<T> {
            (g.c0 * column[0]).adding(g.c1, times: column[1]).adding(g.c2, times: column[2]).adding(g.c3, times: column[3])
        }
        return EightTriplets(c0: input(columns.0), c1: input(columns.1), c2: input(columns.2), c3: input(columns.3))
    }
}

/// Four channels of eight triplets, one vector per channel: the layout in which both passes
/// run the gated MLP, so that a 4 × 4 map is sixteen multiply-adds without shuffles.
struct EightTriplets<T: ENINetFloat> {
    var c0 = SIMD8<T>(), c1 = SIMD8<T>(), c2 = SIMD8<T>(), c3 = SIMD8<T>()

    /// Lane `i`'s four channels.
    @inline(__always) func quad(_ i: Int) -> SIMD4<T> { SIMD4(c0[i], c1[i], c2[i], c3[i]) }
    @inline(__always) mutating func setQuad(_ i: Int, _ q: SIMD4<T>) { c0[i] = q[0]; c1[i] = q[1]; c2[i] = q[2]; c3[i] = q[3] }
    /// Σ over channels of `self ⊙ other`.
    @inline(__always) func channelDot(_ other: EightTriplets) -> SIMD8<T> {
        (c0 * other.c0).adding(c1, times: other.c1).adding(c2, times: other.c2).adding(c3, times: other.c3)
    }
    /// silu'(x) = σ(x) (1 + x (1 − σ(x))), given σ(x).
    @inline(__always) static func siluSlope(_ x: EightTriplets, sigmoid s: EightTriplets) -> EightTriplets {
        @inline(__always) func slope(_ x: SIMD8<T>, _ s: SIMD8<T>) -> SIMD8<T> { s * SIMD8(repeating: 1).adding(x, times: 1 - s) }
        return EightTriplets(c0: slope(x.c0, s.c0), c1: slope(x.c1, s.c1), c2: slope(x.c2, s.c2), c3: slope(x.c3, s.c3))
    }
    /// Eight triplets' rows of four channels, transposed in registers. Setting the lanes one
    /// by one (``setQuad(_:_:)``) stores scalars that the next vector load of the same bytes
    /// cannot take from the store buffer: it waits for them to reach the cache, a stall per
    /// vector (a standalone loop: 15 ns per block of eight, 6.4 ns through these shuffles).
    @inline(__always) init(rows r0: SIMD4<T>, _ r1: SIMD4<T>, _ r2: SIMD4<T>, _ r3: SIMD4<T>,
                           _ r4: SIMD4<T>, _ r5: SIMD4<T>, _ r6: SIMD4<T>, _ r7: SIMD4<T>) {
        let a = SIMD8(lowHalf: r0, highHalf: r4), b = SIMD8(lowHalf: r1, highHalf: r5)
        let c = SIMD8(lowHalf: r2, highHalf: r6), d = SIMD8(lowHalf: r3, highHalf: r7)
        // Interleave within each half (lanes of triplets 0–3 and 4–7), then pair the results.
        let ab0 = SIMD8(a[0], b[0], a[1], b[1], a[4], b[4], a[5], b[5])
        let ab1 = SIMD8(a[2], b[2], a[3], b[3], a[6], b[6], a[7], b[7])
        let cd0 = SIMD8(c[0], d[0], c[1], d[1], c[4], d[4], c[5], d[5])
        let cd1 = SIMD8(c[2], d[2], c[3], d[3], c[6], d[6], c[7], d[7])
        c0 = SIMD8(ab0[0], ab0[1], cd0[0], cd0[1], ab0[4], ab0[5], cd0[4], cd0[5])
        c1 = SIMD8(ab0[2], ab0[3], cd0[2], cd0[3], ab0[6], ab0[7], cd0[6], cd0[7])
        c2 = SIMD8(ab1[0], ab1[1], cd1[0], cd1[1], ab1[4], ab1[5], cd1[4], cd1[5])
        c3 = SIMD8(ab1[2], ab1[3], cd1[2], cd1[3], ab1[6], ab1[7], cd1[6], cd1[7])
    }
    /// The four channel vectors written at `p`, `p + 8`, `p + 16`, `p + 24`, so that a loop
    /// over the block's triplets reads lane `i`'s channels as four scalars
    /// (``quad(_:of:)``). Reading them from the vectors themselves with an index that is not a
    /// constant (``quad(_:)``) compiles to a copy of each whole vector to the stack and a load
    /// per lane, in every iteration. Shuffling the block into per-triplet rows instead made LLVM
    /// rebuild the surrounding arithmetic lane by lane (a whole evaluation ran 14 % slower); in
    /// the forward pass even this store added more instructions to the block's arithmetic than
    /// it saved in the loop (callgrind), so only the backward pass uses it.
    @inline(__always) func store(_ p: UnsafeMutablePointer<T>) {
        p.setLanes(0, c0); p.setLanes(8, c1); p.setLanes(16, c2); p.setLanes(24, c3)
    }
    /// Lane `i`'s four channels of a block written by ``store(_:)`` at `p`.
    @inline(__always) static func quad(_ i: Int, of p: UnsafePointer<T>) -> SIMD4<T> {
        SIMD4(p[i], p[8 + i], p[16 + i], p[24 + i])
    }
    /// Rows `row(0) … row(7)` transposed (see ``init(rows:_:_:_:_:_:_:_:)``).
    @inline(__always) init(rows row: (Int) -> SIMD4<T>) {
        self.init(rows: row(0), row(1), row(2), row(3), row(4), row(5), row(6), row(7))
    }
    @inline(__always) init(c0: SIMD8<T>, c1: SIMD8<T>, c2: SIMD8<T>, c3: SIMD8<T>) { self.c0 = c0; self.c1 = c1; self.c2 = c2; self.c3 = c3 }
    @inline(__always) init() {}
    /// Σ over channels, per triplet.
    @inline(__always) var channelSum: SIMD8<T> { c0 + c1 + c2 + c3 }

    /// The logistic sigmoid of every element.
    @inline(__always) var sigmoid: EightTriplets {
        EightTriplets(c0: T.sigmoid(c0), c1: T.sigmoid(c1), c2: T.sigmoid(c2), c3: T.sigmoid(c3))
    }
    @inline(__always) static func + (a: EightTriplets, b: EightTriplets) -> EightTriplets {
        EightTriplets(c0: a.c0 + b.c0, c1: a.c1 + b.c1, c2: a.c2 + b.c2, c3: a.c3 + b.c3)
    }
    @inline(__always) static func * (a: EightTriplets, b: EightTriplets) -> EightTriplets {
        EightTriplets(c0: a.c0 * b.c0, c1: a.c1 * b.c1, c2: a.c2 * b.c2, c3: a.c3 * b.c3)
    }
    @inline(__always) static func * (a: EightTriplets, b: SIMD8<T>) -> EightTriplets {
        EightTriplets(c0: a.c0 * b, c1: a.c1 * b, c2: a.c2 * b, c3: a.c3 * b)
    }
}

/// The three-body block's triplet work when the triplet features have four channels (both
/// shipped configurations): the pair sum, the projection product, the gated MLP, the cutoff,
/// the vector message and the sums at each out-edge, fused into one pass: the MLP on blocks of
/// eight triplets (``EightTriplets``), the vector messages and their scatter to shared edges
/// triplet by triplet in `SIMD4`s. Run layer by layer, the same work writes and re-reads a
/// dozen `[T, ·]` arrays and calls GEMMs of width 4, where OpenBLAS spends its time packing.
///
/// The forward pass saves, per block, the values that are dear to recompute (the pair sums,
/// gathered from two edges, and the three sigmoids: ``savedCount(triplets:)`` elements); the
/// backward pass recomputes the rest, which are 4 × 4 maps of those. Recomputing the whole
/// block instead took about 40 % of the backward pass.
struct FourChannelTriplets<T: ENINetFloat> {
    private let kernel: FloatTripletKernel

    /// Nil for precisions other than `Float`, and unless every map is 4 → 4 (the vector map
    /// 4 → 12) and the gate's hidden width is 4.
    ///
    /// Only `Float` has the fused pass, so that its body is compiled as concrete code. Written
    /// for a generic `T`, every `SIMD8<T>` temporary is a stack slot, and the optimiser's
    /// Mem2Reg takes time quadratic in a function's stack slots: with the generic body inlined
    /// into `Float` and `Double` callers, the `ENINet` module took 8 of the 15 minutes that
    /// `swift test -c release` spent building, 98 % of it in Mem2Reg. `Double`, which serves
    /// checks rather than long runs, takes the layer-by-layer path.
    init?(projection: LinearLayer<T>, gate: GateMLPLayer<T>, tripletVector: LinearLayer<T>) {
        guard let projection = projection as? LinearLayer<Float>, let gate = gate as? GateMLPLayer<Float>,
              let tripletVector = tripletVector as? LinearLayer<Float>,
              let kernel = FloatTripletKernel(projection: projection, gate: gate, tripletVector: tripletVector) else { return nil }
        self.kernel = kernel
    }

    /// Elements of the forward values saved for the backward pass.
    static func savedCount(triplets nt: Int) -> Int { FloatTripletKernel.savedCount(triplets: nt) }

    /// What one layer's forward pass reads and writes: `fromIn`/`fromOut` `[E,4]` (the pair
    /// map's halves), `edgeVectors` `[E,3,4]`, the triplet features `scalars` `[T,4]` and
    /// `vectors` `[T,3,4]`, the triplets' unit directions and cutoffs; the updated features
    /// `newScalars`/`newVectors` (nil when nothing reads them: after the last interaction), the
    /// messages summed at each out-edge `sumS` `[E,4]` and `sumV` `[E,3,4]` (added to), and,
    /// when given (of ``savedCount(triplets:)`` elements), `saving` for what the backward pass reads.
    struct ForwardBuffers {
        var tripletIn: UnsafePointer<Int32>, tripletOut: UnsafePointer<Int32>
        var fromIn: UnsafePointer<T>, fromOut: UnsafePointer<T>, edgeVectors: UnsafePointer<T>
        var scalars: UnsafePointer<T>, vectors: UnsafePointer<T>, unit: UnsafePointer<T>, cut: UnsafePointer<T>
        var newScalars: UnsafeMutablePointer<T>?, newVectors: UnsafeMutablePointer<T>?
        var sumS: UnsafeMutablePointer<T>, sumV: UnsafeMutablePointer<T>
        var saving: UnsafeMutablePointer<T>?
    }

    /// One layer's triplet messages (``ForwardBuffers``).
    ///
    /// The triplets run in `chunks` (``TripletChunks``), concurrently
    /// when there are several. Triplets of different chunks share out-edges, so every chunk after
    /// the first sums into buffers of its own (`edgeCount` rows), added to `sumS`/`sumV` at the end.
    func forward(_ buffers: ForwardBuffers, edgeCount ne: Int, chunks: TripletChunks) {
        // A later chunk's own buffer: its sums of scalars [E, 4], then of vectors [E, 3, 4].
        ChunkSums.run(chunks.ranges, ownWidth: 16 * ne, pass: { (range, own: UnsafeMutablePointer<T>?) in
            var chunk = buffers
            if let own { chunk.sumS = own; chunk.sumV = own + 4 * ne }
            // T is Float: the initialiser refuses every other precision.
            if let chunk = chunk as? FourChannelTriplets<Float>.ForwardBuffers { kernel.forward(triplets: range, chunk) }
        }, merge: { own in
            ChunkSums.add(own, into: buffers.sumS, count: 4 * ne)
            ChunkSums.add(own + 4 * ne, into: buffers.sumV, count: 12 * ne)
        })
    }

    /// What one layer's backward pass reads and writes: the forward pass's inputs and what it
    /// saved; `gScalars`/`gVectors`, the gradients on the updated features, turned in place into
    /// those on the input features (written, not read, when `updatesAreUnused`: nothing reads
    /// the features that the last interaction updates, so their gradients are zero); `gSumS`
    /// (row stride `sumStride`) and `gSumV`, the gradients on the sums; and the gradients on
    /// `fromIn`, `fromOut`, `edgeVectors`, the unit directions and the cutoffs, added to.
    struct BackwardBuffers {
        var tripletIn: UnsafePointer<Int32>, tripletOut: UnsafePointer<Int32>
        var saved: UnsafePointer<T>, edgeVectors: UnsafePointer<T>
        var scalars: UnsafePointer<T>, vectors: UnsafePointer<T>, unit: UnsafePointer<T>, cut: UnsafePointer<T>
        var gScalars: UnsafeMutablePointer<T>, gVectors: UnsafeMutablePointer<T>, updatesAreUnused: Bool
        var gSumS: UnsafePointer<T>, sumStride: Int, gSumV: UnsafePointer<T>
        var gFromIn: UnsafeMutablePointer<T>, gFromOut: UnsafeMutablePointer<T>, gEdgeVectors: UnsafeMutablePointer<T>
        var gUnit: UnsafeMutablePointer<T>, gCut: UnsafeMutablePointer<T>
    }

    /// The backward of ``forward(_:edgeCount:chunks:)`` (``BackwardBuffers``).
    ///
    /// The chunks run as in the forward pass; the edge gradients of every chunk after the first
    /// go to buffers of its own, added at the end. The per-triplet gradients need none.
    func backward(_ buffers: BackwardBuffers, edgeCount ne: Int, chunks: TripletChunks) {
        // A later chunk's own buffer: its gradients on fromIn [E, 4], fromOut [E, 4] and the edge vectors [E, 3, 4].
        ChunkSums.run(chunks.ranges, ownWidth: 20 * ne, pass: { (range, own: UnsafeMutablePointer<T>?) in
            var chunk = buffers
            if let own { chunk.gFromIn = own; chunk.gFromOut = own + 4 * ne; chunk.gEdgeVectors = own + 8 * ne }
            if let chunk = chunk as? FourChannelTriplets<Float>.BackwardBuffers { kernel.backward(triplets: range, chunk) }
        }, merge: { own in
            ChunkSums.add(own, into: buffers.gFromIn, count: 4 * ne)
            ChunkSums.add(own + 4 * ne, into: buffers.gFromOut, count: 4 * ne)
            ChunkSums.add(own + 8 * ne, into: buffers.gEdgeVectors, count: 12 * ne)
        })
    }
}

/// The fused passes in `Float` (``FourChannelTriplets``), on the layer's maps.
private struct FloatTripletKernel {
    typealias T = Float
    typealias ForwardBuffers = FourChannelTriplets<Float>.ForwardBuffers
    typealias BackwardBuffers = FourChannelTriplets<Float>.BackwardBuffers

    let projection: QuadMap
    let netFirst: QuadMap, gatesFirst: QuadMap, netSecond: QuadMap, gatesSecond: QuadMap
    /// `triplet_vec` split into the coefficients of the triplet vector, the in-edge vector and the direction.
    let tripletCoefficient: QuadMap, edgeCoefficient: QuadMap, directionCoefficient: QuadMap

    init?(projection: LinearLayer<Float>, gate: GateMLPLayer<Float>, tripletVector: LinearLayer<Float>) {
        guard projection.inputs == 4, projection.outputs == 4, gate.hidden == 4, gate.first.inputs == 4,
              gate.netSecond.outputs == 4, gate.gatesSecond.outputs == 4,
              tripletVector.inputs == 4, tripletVector.outputs == 12 else { return nil }
        self.projection = QuadMap(projection)
        netFirst = QuadMap(gate.first, outputsFrom: 0)
        gatesFirst = QuadMap(gate.first, outputsFrom: 4)
        netSecond = QuadMap(gate.netSecond)
        gatesSecond = QuadMap(gate.gatesSecond)
        tripletCoefficient = QuadMap(tripletVector, outputsFrom: 0)
        edgeCoefficient = QuadMap(tripletVector, outputsFrom: 4)
        directionCoefficient = QuadMap(tripletVector, outputsFrom: 8)
    }

    /// The forward values of eight triplets from `base` (the last one repeated when fewer remain).
    struct Block {
        var left = EightTriplets<T>(), right = EightTriplets<T>(), cuts = SIMD8<T>()
        var netHidden = EightTriplets<T>(), netSigmoid = EightTriplets<T>()
        var gateHidden = EightTriplets<T>(), gateHiddenSigmoid = EightTriplets<T>()
        var value = EightTriplets<T>(), gate = EightTriplets<T>(), gateSigmoid = EightTriplets<T>()
        var gated = EightTriplets<T>(), message = EightTriplets<T>()
        var a = EightTriplets<T>(), b = EightTriplets<T>(), c = EightTriplets<T>()
    }

    @inline(__always)
    private func block(_ base: Int, lanes: Int, tripletIn: UnsafePointer<Int32>, tripletOut: UnsafePointer<Int32>,
               fromIn: UnsafePointer<T>, fromOut: UnsafePointer<T>, scalars: UnsafePointer<T>, cut: UnsafePointer<T>) -> Block {
        var v = Block()
        v.left = EightTriplets(rows: { i in
            let t = base + min(i, lanes - 1)
            return fromIn.quad(4 * Int(tripletIn[t])) + fromOut.quad(4 * Int(tripletOut[t]))
        })
        complete(&v, base, lanes: lanes, scalars: scalars, cut: cut, saved: nil)
        return v
    }

    /// Elements of the forward values saved for the backward pass: 16 vectors of eight per block.
    static func savedCount(triplets nt: Int) -> Int { (nt + 7) / 8 * savedPerBlock }
    static var savedPerBlock: Int { 16 * 8 }
    /// Where a block's saved values lie, in elements from the block's start.
    private static var leftOffset: Int { 0 }
    private static var netSigmoidOffset: Int { 32 }
    private static var gateHiddenSigmoidOffset: Int { 64 }
    private static var gateSigmoidOffset: Int { 96 }

    /// The block's values from those ``block(_:lanes:tripletIn:tripletOut:fromIn:fromOut:scalars:cut:)``
    /// saved at `saved`: the same operations on the same inputs, so the same values.
    @inline(__always)
    private func restoredBlock(_ base: Int, lanes: Int, saved: UnsafePointer<T>, scalars: UnsafePointer<T>, cut: UnsafePointer<T>) -> Block {
        var v = Block()
        v.left = Self.load(saved, Self.leftOffset)
        complete(&v, base, lanes: lanes, scalars: scalars, cut: cut, saved: saved)
        return v
    }

    /// Everything after the pair sums `v.left`: the sigmoids are computed, or read from `saved`.
    @inline(__always)
    private func complete(_ v: inout Block, _ base: Int, lanes: Int, scalars: UnsafePointer<T>, cut: UnsafePointer<T>,
                          saved: UnsafePointer<T>?) {
        let scalar = EightTriplets(rows: { i in scalars.quad(4 * (base + min(i, lanes - 1))) })
        v.cuts = cut.lanes(base, count: lanes)
        v.right = projection(scalar)
        let product = v.left * v.right
        v.netHidden = netFirst(product)
        v.gateHidden = gatesFirst(product)
        if let saved {
            v.netSigmoid = Self.load(saved, Self.netSigmoidOffset)
            v.gateHiddenSigmoid = Self.load(saved, Self.gateHiddenSigmoidOffset)
        } else {
            v.netSigmoid = v.netHidden.sigmoid
            v.gateHiddenSigmoid = v.gateHidden.sigmoid
        }
        v.value = netSecond(v.netHidden * v.netSigmoid)
        v.gate = gatesSecond(v.gateHidden * v.gateHiddenSigmoid)
        if let saved { v.gateSigmoid = Self.load(saved, Self.gateSigmoidOffset) } else { v.gateSigmoid = v.gate.sigmoid }
        v.gated = v.value * v.gate * v.gateSigmoid
        v.message = v.gated * v.cuts
        v.a = tripletCoefficient(v.message)
        v.b = edgeCoefficient(v.message)
        v.c = directionCoefficient(v.message)
    }

    @inline(__always) private static func load(_ saved: UnsafePointer<T>, _ offset: Int) -> EightTriplets<T> {
        EightTriplets(c0: saved.lanes(offset), c1: saved.lanes(offset + 8), c2: saved.lanes(offset + 16), c3: saved.lanes(offset + 24))
    }

    @inline(__always) private static func save(_ v: Block, at saved: UnsafeMutablePointer<T>) {
        @inline(__always) func store(_ part: EightTriplets<T>, _ offset: Int) {
            saved.setLanes(offset, part.c0)
            saved.setLanes(offset + 8, part.c1)
            saved.setLanes(offset + 16, part.c2)
            saved.setLanes(offset + 24, part.c3)
        }
        store(v.left, leftOffset)
        store(v.netSigmoid, netSigmoidOffset)
        store(v.gateHiddenSigmoid, gateHiddenSigmoidOffset)
        store(v.gateSigmoid, gateSigmoidOffset)
    }

    /// The forward pass over the triplets of `range`, whose start is a multiple of eight.
    func forward(triplets range: Range<Int>, _ buffers: ForwardBuffers) {
        let tripletIn = buffers.tripletIn, tripletOut = buffers.tripletOut
        let fromIn = buffers.fromIn, fromOut = buffers.fromOut, edgeVectors = buffers.edgeVectors
        let scalars = buffers.scalars, vectors = buffers.vectors, unit = buffers.unit, cut = buffers.cut
        let sumS = buffers.sumS, sumV = buffers.sumV, saving = buffers.saving
        @inline(__always) func run<Update: TripletFeatureUpdate>(_ update: Update) {
            for base in stride(from: range.lowerBound, to: range.upperBound, by: 8) {
                let lanes = min(8, range.upperBound - base)
                let v = block(base, lanes: lanes, tripletIn: tripletIn, tripletOut: tripletOut, fromIn: fromIn, fromOut: fromOut,
                              scalars: scalars, cut: cut)
                if let saving { Self.save(v, at: saving + base / 8 * Self.savedPerBlock) }
                // The vector messages, triplet by triplet (their sums scatter to shared edges).
                for i in 0..<lanes {
                    let t = base + i
                    let e1 = Int(tripletIn[t]), e2 = Int(tripletOut[t])
                    let ct = v.cuts[i], message = v.message.quad(i)
                    let va = v.a.quad(i), vb = v.b.quad(i), vc = v.c.quad(i)
                    update.setScalars(4 * t, scalars.quad(4 * t) + message)
                    sumS.setQuad(4 * e2, sumS.quad(4 * e2) + message)
                    for x in 0..<3 {
                        let to = 12 * t + 4 * x, h1 = 12 * e1 + 4 * x, o2 = 12 * e2 + 4 * x
                        let tv = vectors.quad(to)
                        let m = (tv * va).adding(edgeVectors.quad(h1), times: vb).adding(vc, times: unit[3 * t + x]) * ct
                        update.setVectors(to, tv + m)
                        sumV.setQuad(o2, sumV.quad(o2) + m)
                    }
                }
            }
        }
        // Two copies, one writing the updated features and one not, so that neither tests per
        // triplet: the type parameter fixes which, whether the optimiser inlines them or not (in
        // the concrete pass it inlines only one; the other stays a function of its own).
        if let newScalars = buffers.newScalars, let newVectors = buffers.newVectors {
            run(WrittenFeatures(scalars: newScalars, vectors: newVectors))
        } else {
            run(UnwrittenFeatures())
        }
    }

    /// The backward pass over the triplets of `range`, whose start is a multiple of eight.
    func backward(triplets range: Range<Int>, _ buffers: BackwardBuffers) {
        let tripletIn = buffers.tripletIn, tripletOut = buffers.tripletOut, saved = buffers.saved
        let edgeVectors = buffers.edgeVectors, scalars = buffers.scalars, vectors = buffers.vectors
        let unit = buffers.unit, cut = buffers.cut, gScalars = buffers.gScalars, gVectors = buffers.gVectors
        let gSumS = buffers.gSumS, sumStride = buffers.sumStride, gSumV = buffers.gSumV
        let gFromIn = buffers.gFromIn, gFromOut = buffers.gFromOut, gEdgeVectors = buffers.gEdgeVectors
        let gUnit = buffers.gUnit, gCut = buffers.gCut
        // Each triplet's rows of the block's gradients (on its scalar output, message, the three
        // vector coefficients, and the cutoff's channel terms), stored whole and transposed
        // afterwards (see ``EightTriplets/init(rows:_:_:_:_:_:_:_:)``). Zeroed once, so that the
        // unused lanes of a last, partial block hold finite values.
        let rowCount = GradientRow.allCases.count * 32
        let rows = UnsafeMutablePointer<T>.allocate(capacity: rowCount)
        rows.initialize(repeating: 0, count: rowCount)
        defer { rows.deallocate() }
        @inline(__always) func setRow(_ slot: GradientRow, _ i: Int, _ row: SIMD4<T>) { rows.setQuad(32 * slot.rawValue + 4 * i, row) }
        @inline(__always) func part(_ slot: GradientRow) -> EightTriplets<T> {
            EightTriplets(rows: { i in rows.quad(32 * slot.rawValue + 4 * i) })
        }
        // The block's vector coefficients and its input gradients, stored for the loops over its triplets.
        let blockValues = UnsafeMutablePointer<T>.allocate(capacity: BlockValue.allCases.count * 32)
        defer { blockValues.deallocate() }
        @inline(__always) func blockValue(_ slot: BlockValue, _ i: Int) -> SIMD4<T> { EightTriplets.quad(i, of: blockValues + 32 * slot.rawValue) }
        // Inlined once for zero gradients on the updated features and once for others, so that
        // neither copy tests per triplet.
        @inline(__always) func run(updatesAreUnused: Bool) {
            // The gradient on each in-edge's pair-map half, held while its triplets last.
            var fromInSum = EdgeRowSum(rows: gFromIn, stride: 4)
            for base in stride(from: range.lowerBound, to: range.upperBound, by: 8) {
                let lanes = min(8, range.upperBound - base)
                let v = restoredBlock(base, lanes: lanes, saved: saved + base / 8 * Self.savedPerBlock, scalars: scalars, cut: cut)
                v.a.store(blockValues + 32 * BlockValue.a.rawValue)
                v.b.store(blockValues + 32 * BlockValue.b.rawValue)
                v.c.store(blockValues + 32 * BlockValue.c.rawValue)
                // The vector messages, triplet by triplet (their sums scatter to shared edges).
                for i in 0..<lanes {
                    let t = base + i
                    let e1 = Int(tripletIn[t]), e2 = Int(tripletOut[t])
                    let ct = cut[t]
                    let va = blockValue(.a, i), vb = blockValue(.b, i), vc = blockValue(.c, i)
                    let gOutS = updatesAreUnused ? SIMD4<T>() : gScalars.quad(4 * t)
                    setRow(.scalarOut, i, gOutS)
                    setRow(.message, i, gOutS + gSumS.quad(sumStride * e2))
                    var gaT = SIMD4<T>(), gbT = SIMD4<T>(), gcT = SIMD4<T>(), gCutLanes = SIMD4<T>()
                    for x in 0..<3 {
                        let to = 12 * t + 4 * x, h1 = 12 * e1 + 4 * x, o2 = 12 * e2 + 4 * x
                        let w = unit[3 * t + x]
                        let gOut = updatesAreUnused ? SIMD4<T>() : gVectors.quad(to)
                        let g = gOut + gSumV.quad(o2)
                        let tv = vectors.quad(to), hv = edgeVectors.quad(h1)
                        let gm = g * ct
                        gVectors.setQuad(to, gOut.adding(gm, times: va))
                        gEdgeVectors.setQuad(h1, gEdgeVectors.quad(h1).adding(gm, times: vb))
                        gaT = gaT.adding(gm, times: tv)
                        gbT = gbT.adding(gm, times: hv)
                        gcT = gcT.adding(gm, times: w)
                        gUnit[3 * t + x] += (gm * vc).sum()
                        gCutLanes = gCutLanes.adding(g, times: (tv * va).adding(hv, times: vb).adding(vc, times: w))
                    }
                    setRow(.a, i, gaT)
                    setRow(.b, i, gbT)
                    setRow(.c, i, gcT)
                    setRow(.cutTerms, i, gCutLanes)
                }
                let gScalarOut = part(.scalarOut), ga = part(.a), gb = part(.b), gc = part(.c)
                var gCutSum = part(.cutTerms).channelSum

                // The gated MLP's backward, eight triplets at once.
                let gMessage = part(.message) + tripletCoefficient.transposed(ga) + edgeCoefficient.transposed(gb) + directionCoefficient.transposed(gc)
                gCutSum += gMessage.channelDot(v.gated)
                // gated = value · silu(gate)
                let gGated = gMessage * v.cuts
                let gValue = gGated * v.gate * v.gateSigmoid
                let gGate = gGated * v.value * EightTriplets.siluSlope(v.gate, sigmoid: v.gateSigmoid)
                let netSlope = EightTriplets.siluSlope(v.netHidden, sigmoid: v.netSigmoid)
                let gateSlope = EightTriplets.siluSlope(v.gateHidden, sigmoid: v.gateHiddenSigmoid)
                let gProduct = netFirst.transposed(netSecond.transposed(gValue) * netSlope)
                    + gatesFirst.transposed(gatesSecond.transposed(gGate) * gateSlope)
                let gLeft = gProduct * v.right
                let gScalarIn = gScalarOut + projection.transposed(gProduct * v.left)
                if lanes == 8 { gCut.setLanes(base, gCut.lanes(base) + gCutSum) }
                gScalarIn.store(blockValues + 32 * BlockValue.scalarInGradient.rawValue)
                gLeft.store(blockValues + 32 * BlockValue.leftGradient.rawValue)
                for i in 0..<lanes {
                    let t = base + i
                    let e1 = Int(tripletIn[t]), e2 = Int(tripletOut[t])
                    gScalars.setQuad(4 * t, blockValue(.scalarInGradient, i))
                    if lanes < 8 { gCut[t] += gCutSum[i] }
                    let gl = blockValue(.leftGradient, i)
                    fromInSum.add(gl, edge: e1)
                    gFromOut.setQuad(4 * e2, gFromOut.quad(4 * e2) + gl)
                }
            }
            fromInSum.release()
        }
        if buffers.updatesAreUnused { run(updatesAreUnused: true) } else { run(updatesAreUnused: false) }
    }
}

/// Where the forward pass writes the updated triplet features (``WrittenFeatures``), or that
/// it does not (``UnwrittenFeatures``: after the last interaction nothing reads them).
private protocol TripletFeatureUpdate {
    func setScalars(_ offset: Int, _ value: SIMD4<Float>)
    func setVectors(_ offset: Int, _ value: SIMD4<Float>)
}

private struct WrittenFeatures: TripletFeatureUpdate {
    let scalars: UnsafeMutablePointer<Float>, vectors: UnsafeMutablePointer<Float>
    @inline(__always) func setScalars(_ offset: Int, _ value: SIMD4<Float>) { scalars.setQuad(offset, value) }
    @inline(__always) func setVectors(_ offset: Int, _ value: SIMD4<Float>) { vectors.setQuad(offset, value) }
}

private struct UnwrittenFeatures: TripletFeatureUpdate {
    @inline(__always) func setScalars(_ offset: Int, _ value: SIMD4<Float>) {}
    @inline(__always) func setVectors(_ offset: Int, _ value: SIMD4<Float>) {}
}

/// A four-element sum bound for one edge's row of `rows` (row `e` at `rows + stride · e`), kept
/// in registers while consecutive triplets add to the same edge and added to the row when the
/// edge changes or at ``release()``. The triplets come grouped by their in-edge, so adding
/// to the row triplet by triplet chained each addition to the previous one's store (the most
/// sampled instruction of the backward pass; holding the sum saves about 1 % of an evaluation).
private struct EdgeRowSum {
    typealias T = Float
    let rows: UnsafeMutablePointer<T>, stride: Int
    private var edge = -1, sum = SIMD4<T>()

    init(rows: UnsafeMutablePointer<T>, stride: Int) { self.rows = rows; self.stride = stride }

    @inline(__always) mutating func add(_ value: SIMD4<T>, edge e: Int) {
        if e == edge { sum += value } else { release(); edge = e; sum = value }
    }
    /// Adds the held sum to its edge's row.
    @inline(__always) mutating func release() {
        if edge >= 0 { rows.setQuad(stride * edge, rows.quad(stride * edge) + sum) }
        edge = -1
    }
}

/// The per-triplet gradient rows that the fused pass's backward gathers into eight-triplet
/// vectors, in the order of their slots in its scratch block.
private enum GradientRow: Int, CaseIterable { case scalarOut, message, a, b, c, cutTerms }

/// A block's values that the fused pass's backward reads triplet by triplet (the vector
/// coefficients, then the gradients on the triplet scalars and on the pair sums), in the order
/// of their slots in its scratch block.
private enum BlockValue: Int, CaseIterable { case a, b, c, scalarInGradient, leftGradient }
