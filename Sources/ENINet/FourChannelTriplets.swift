/// An affine map of four inputs to four outputs, `y = W x + b`, held as registers' worth of
/// columns (for `W x`) and rows (for `Wᵀ g`).
struct QuadMap<T: ENINetFloat> {
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

    @inline(__always) func callAsFunction(_ x: SIMD4<T>) -> SIMD4<T> {
        bias + x[0] * columns.0 + x[1] * columns.1 + x[2] * columns.2 + x[3] * columns.3
    }

    /// `Wᵀ g`: the input gradient.
    @inline(__always) func transposed(_ g: SIMD4<T>) -> SIMD4<T> {
        g[0] * rows.0 + g[1] * rows.1 + g[2] * rows.2 + g[3] * rows.3
    }
}

/// The three-body block's triplet work when the triplet features have four channels (both
/// shipped configurations): the pair sum, the projection product, the gated MLP, the cutoff,
/// the vector message and the sums at each out-edge, fused into one pass per triplet with a
/// triplet's channels in one `SIMD4`. Run layer by layer, the same work writes and re-reads a
/// dozen `[T, ·]` arrays and calls GEMMs of width 4, where OpenBLAS spends its time packing.
///
/// The backward pass recomputes its triplet's forward values instead of caching them, so a
/// layer keeps only its input features and the pair map's halves for the backward pass.
struct FourChannelTriplets<T: ENINetFloat> {
    let projection: QuadMap<T>
    let netFirst: QuadMap<T>, gatesFirst: QuadMap<T>, netSecond: QuadMap<T>, gatesSecond: QuadMap<T>
    /// `triplet_vec` split into the coefficients of the triplet vector, the in-edge vector and the direction.
    let tripletCoefficient: QuadMap<T>, edgeCoefficient: QuadMap<T>, directionCoefficient: QuadMap<T>

    /// Nil unless every map is 4 → 4 (the vector map 4 → 12) and the gate's hidden width is 4.
    init?(projection: LinearLayer<T>, gate: GateMLPLayer<T>, tripletVector: LinearLayer<T>) {
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

    /// The forward values of one triplet up to the cut message scalar and the vector coefficients.
    struct Values {
        var left: SIMD4<T>, right: SIMD4<T>
        var hidden: SIMD8<T>, hiddenSigmoid: SIMD8<T>
        var value: SIMD4<T>, gate: SIMD4<T>, gateSigmoid: SIMD4<T>
        var gated: SIMD4<T>, message: SIMD4<T>
        var a: SIMD4<T>, b: SIMD4<T>, c: SIMD4<T>
    }

    /// The forward values of triplets `t` and `u`, computed side by side so that both sigmoids
    /// fill eight lanes (a half-empty vector made LLVM split the exponential into scalar branches).
    @inline(__always)
    func values(_ t: Int, _ u: Int, tripletIn: UnsafePointer<Int32>, tripletOut: UnsafePointer<Int32>,
                fromIn: UnsafePointer<T>, fromOut: UnsafePointer<T>, scalars: UnsafePointer<T>,
                cut: UnsafePointer<T>) -> (Values, Values) {
        let leftT = fromIn.quad(4 * Int(tripletIn[t])) + fromOut.quad(4 * Int(tripletOut[t]))
        let leftU = fromIn.quad(4 * Int(tripletIn[u])) + fromOut.quad(4 * Int(tripletOut[u]))
        let rightT = projection(scalars.quad(4 * t)), rightU = projection(scalars.quad(4 * u))
        let productT = leftT * rightT, productU = leftU * rightU
        let hiddenT = SIMD8(lowHalf: netFirst(productT), highHalf: gatesFirst(productT))
        let hiddenU = SIMD8(lowHalf: netFirst(productU), highHalf: gatesFirst(productU))
        let sigmoidT = T.sigmoid(hiddenT), sigmoidU = T.sigmoid(hiddenU)
        let activeT = hiddenT * sigmoidT, activeU = hiddenU * sigmoidU
        let valueT = netSecond(activeT.lowHalf), valueU = netSecond(activeU.lowHalf)
        let gates = SIMD8(lowHalf: gatesSecond(activeT.highHalf), highHalf: gatesSecond(activeU.highHalf))
        let gateSigmoids = T.sigmoid(gates)
        func finish(_ left: SIMD4<T>, _ right: SIMD4<T>, _ hidden: SIMD8<T>, _ hiddenSigmoid: SIMD8<T>, _ value: SIMD4<T>,
                    _ gate: SIMD4<T>, _ gateSigmoid: SIMD4<T>, _ cut: T) -> Values {
            let gated = value * gate * gateSigmoid
            let message = gated * cut
            return Values(left: left, right: right, hidden: hidden, hiddenSigmoid: hiddenSigmoid, value: value, gate: gate,
                          gateSigmoid: gateSigmoid, gated: gated, message: message,
                          a: tripletCoefficient(message), b: edgeCoefficient(message), c: directionCoefficient(message))
        }
        return (finish(leftT, rightT, hiddenT, sigmoidT, valueT, gates.lowHalf, gateSigmoids.lowHalf, cut[t]),
                finish(leftU, rightU, hiddenU, sigmoidU, valueU, gates.highHalf, gateSigmoids.highHalf, cut[u]))
    }

    /// `body(t, values of t)` for every triplet, two per step (the last one twice when the count is odd).
    @inline(__always)
    func forEachTriplet(count nt: Int, tripletIn: UnsafePointer<Int32>, tripletOut: UnsafePointer<Int32>,
                        fromIn: UnsafePointer<T>, fromOut: UnsafePointer<T>, scalars: UnsafePointer<T>, cut: UnsafePointer<T>,
                        _ body: (Int, Values) -> Void) {
        for first in stride(from: 0, to: nt, by: 2) {
            let second = min(first + 1, nt - 1)
            let pair = values(first, second, tripletIn: tripletIn, tripletOut: tripletOut, fromIn: fromIn, fromOut: fromOut,
                              scalars: scalars, cut: cut)
            body(first, pair.0)
            if second != first { body(second, pair.1) }
        }
    }

    /// One layer's triplet messages. Reads `fromIn`/`fromOut` `[E,4]` (the pair map's halves),
    /// `edgeVectors` `[E,3,4]`, the triplet features `scalars` `[T,4]` and `vectors` `[T,3,4]`;
    /// writes the updated features to `newScalars`/`newVectors` and adds the messages summed at
    /// each out-edge to `sumS` `[E,4]` and `sumV` `[E,3,4]`.
    func forward(count nt: Int, tripletIn: UnsafePointer<Int32>, tripletOut: UnsafePointer<Int32>,
                 fromIn: UnsafePointer<T>, fromOut: UnsafePointer<T>, edgeVectors: UnsafePointer<T>,
                 scalars: UnsafePointer<T>, vectors: UnsafePointer<T>, unit: UnsafePointer<T>, cut: UnsafePointer<T>,
                 newScalars: UnsafeMutablePointer<T>, newVectors: UnsafeMutablePointer<T>,
                 sumS: UnsafeMutablePointer<T>, sumV: UnsafeMutablePointer<T>) {
        forEachTriplet(count: nt, tripletIn: tripletIn, tripletOut: tripletOut, fromIn: fromIn, fromOut: fromOut,
                       scalars: scalars, cut: cut) { t, v in
            let e1 = Int(tripletIn[t]), e2 = Int(tripletOut[t])
            let ct = cut[t]
            newScalars.setQuad(4 * t, scalars.quad(4 * t) + v.message)
            sumS.setQuad(4 * e2, sumS.quad(4 * e2) + v.message)
            for x in 0..<3 {
                let to = 12 * t + 4 * x, h1 = 12 * e1 + 4 * x, o2 = 12 * e2 + 4 * x
                let tv = vectors.quad(to)
                let m = (tv * v.a + edgeVectors.quad(h1) * v.b + unit[3 * t + x] * v.c) * ct
                newVectors.setQuad(to, tv + m)
                sumV.setQuad(o2, sumV.quad(o2) + m)
            }
        }
    }

    /// The backward of ``forward(count:tripletIn:tripletOut:fromIn:fromOut:edgeVectors:scalars:vectors:unit:cut:newScalars:newVectors:sumS:sumV:)``
    /// from the layer's inputs. `gScalars`/`gVectors` hold the gradients on the updated features
    /// and are turned in place into those on the inputs; `gSumS` (row stride `sumStride`) and
    /// `gSumV` are the gradients on the sums. Adds to the gradients on `fromIn`, `fromOut`,
    /// `edgeVectors`, the unit directions and the cutoffs.
    func backward(count nt: Int, tripletIn: UnsafePointer<Int32>, tripletOut: UnsafePointer<Int32>,
                  fromIn: UnsafePointer<T>, fromOut: UnsafePointer<T>, edgeVectors: UnsafePointer<T>,
                  scalars: UnsafePointer<T>, vectors: UnsafePointer<T>, unit: UnsafePointer<T>, cut: UnsafePointer<T>,
                  gScalars: UnsafeMutablePointer<T>, gVectors: UnsafeMutablePointer<T>,
                  gSumS: UnsafePointer<T>, sumStride: Int, gSumV: UnsafePointer<T>,
                  gFromIn: UnsafeMutablePointer<T>, gFromOut: UnsafeMutablePointer<T>, gEdgeVectors: UnsafeMutablePointer<T>,
                  gUnit: UnsafeMutablePointer<T>, gCut: UnsafeMutablePointer<T>) {
        forEachTriplet(count: nt, tripletIn: tripletIn, tripletOut: tripletOut, fromIn: fromIn, fromOut: fromOut,
                       scalars: scalars, cut: cut) { t, v in
            let e1 = Int(tripletIn[t]), e2 = Int(tripletOut[t])
            let ct = cut[t]
            let gScalarOut = gScalars.quad(4 * t)
            var gMessage = gScalarOut + gSumS.quad(sumStride * e2)
            var ga = SIMD4<T>(), gb = SIMD4<T>(), gc = SIMD4<T>(), gCutLanes = SIMD4<T>()
            for x in 0..<3 {
                let to = 12 * t + 4 * x, h1 = 12 * e1 + 4 * x, o2 = 12 * e2 + 4 * x
                let w = unit[3 * t + x]
                let gOut = gVectors.quad(to)
                let g = gOut + gSumV.quad(o2)
                let tv = vectors.quad(to), hv = edgeVectors.quad(h1)
                let gm = g * ct
                gVectors.setQuad(to, gOut + gm * v.a)
                gEdgeVectors.setQuad(h1, gEdgeVectors.quad(h1) + gm * v.b)
                ga += gm * tv
                gb += gm * hv
                gc += gm * w
                gUnit[3 * t + x] += (gm * v.c).sum()
                gCutLanes += g * (tv * v.a + hv * v.b + w * v.c)
            }
            gMessage += tripletCoefficient.transposed(ga) + edgeCoefficient.transposed(gb) + directionCoefficient.transposed(gc)
            gCutLanes += gMessage * v.gated
            gCut[t] += gCutLanes.sum()
            // gated = value · silu(gate)
            let gGated = gMessage * ct
            let gValue = gGated * v.gate * v.gateSigmoid
            let gGate = gGated * v.value * v.gateSigmoid * (1 + v.gate * (1 - v.gateSigmoid))
            let gActive = SIMD8(lowHalf: netSecond.transposed(gValue), highHalf: gatesSecond.transposed(gGate))
            let gHidden = gActive * v.hiddenSigmoid * (1 + v.hidden * (1 - v.hiddenSigmoid))
            let gProduct = netFirst.transposed(gHidden.lowHalf) + gatesFirst.transposed(gHidden.highHalf)
            let gLeft = gProduct * v.right
            gScalars.setQuad(4 * t, gScalarOut + projection.transposed(gProduct * v.left))
            gFromIn.setQuad(4 * e1, gFromIn.quad(4 * e1) + gLeft)
            gFromOut.setQuad(4 * e2, gFromOut.quad(4 * e2) + gLeft)
        }
    }
}
