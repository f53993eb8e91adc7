// A sum of vector features scaled per channel, `Σ_k v_k ⊙ w_k`, as one operation. Equivariant
// message passing builds its vector messages this way; composed from broadcast `*` and `+`,
// every term and partial sum would be written out in full and read back by the backward.

extension Tensor {
    /// `y[r, s, c] = Σ_k vectors[k][r, s, c] · weights[k][r, 0, c]`.
    ///
    /// Each vector is `[rows, spatial, channels]`, or `[rows, spatial, 1]` for one vector
    /// shared by every channel; each weight is `[rows, 1, channels]`. The result is
    /// `[rows, spatial, channels]` and is differentiable to any order.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func weightedSum(_ vectors: [Tensor], weights: [Tensor]) throws -> Tensor {
        guard !vectors.isEmpty, vectors.count == weights.count, let first = weights.first, first.rank == 3 else {
            throw TensorError("weightedSum: needs as many weights as vectors (\(vectors.count) and \(weights.count)), weights of rank 3")
        }
        let rows = first.shape[0], channels = first.shape[2]
        guard let spatial = vectors.first(where: { $0.rank == 3 })?.shape[1] else {
            throw TensorError("weightedSum: vectors must be [rows, spatial, channels]")
        }
        for (v, w) in zip(vectors, weights) {
            guard w.shape == [rows, 1, channels] else { throw TensorError.shape("weightedSum weight", w.shape, [rows, 1, channels]) }
            guard v.shape == [rows, spatial, channels] || v.shape == [rows, spatial, 1] else {
                throw TensorError.shape("weightedSum vector", v.shape, [rows, spatial, channels])
            }
        }
        let layout = WeightedSumLayout(rows: rows, spatial: spatial, channels: channels,
                                       shared: vectors.map { $0.shape[2] == 1 && channels != 1 })
        let s = Storage<Scalar>.make(count: rows * spatial * channels)
        withPointers(vectors) { v in
            withPointers(weights) { w in
                layout.shared.withUnsafeBufferPointer { shared in
                    weightedSumKernel(v, w, shared, s.base, layout)
                }
            }
        }
        return result([rows, spatial, channels], s, "weightedSum", vectors + weights) { g, y, needs in
            let k = y.inputs.count / 2
            let vectors = Array(y.inputs[..<k]), weights = Array(y.inputs[k...])
            if GradMode.recording { return try weightedSumBackward(g, vectors, weights, needs) }
            return weightedSumFusedBackward(g, vectors, weights, needs, layout)
        }
    }

    /// The backward as differentiable operations, for a graph that will be differentiated again.
    private static func weightedSumBackward(_ g: Tensor, _ vectors: [Tensor], _ weights: [Tensor],
                                            _ needs: InputMask) throws -> [Tensor?] {
        let k = vectors.count
        var grads = [Tensor?](repeating: nil, count: 2 * k)
        for i in 0..<k {
            let v = vectors[i], w = weights[i]
            if needs[i] { grads[i] = v.shape == g.shape ? try g * w : try (g * w).sum(toShape: v.shape) }
            if needs[k + i] {
                grads[k + i] = v.shape == g.shape ? try productSum(g, v, toShape: w.shape) : try (g * v).sum(toShape: w.shape)
            }
        }
        return grads
    }

    /// The first-order backward in one pass over `g`, when no graph is being recorded.
    private static func weightedSumFusedBackward(_ g: Tensor, _ vectors: [Tensor], _ weights: [Tensor],
                                                 _ needs: InputMask, _ layout: WeightedSumLayout) -> [Tensor?] {
        let k = vectors.count
        let outputs: [Storage<Scalar>?] = (0..<2 * k).map { i in
            needs[i] ? Storage<Scalar>.make(count: i < k ? vectors[i].count : weights[i - k].count) : nil
        }
        let targets = outputs.map { $0?.base }
        withPointers(vectors) { v in
            withPointers(weights) { w in
                layout.shared.withUnsafeBufferPointer { shared in
                    targets.withUnsafeBufferPointer { out in
                        weightedSumBackwardKernel(g.storage.base, v, w, shared, out, layout)
                    }
                }
            }
        }
        return (0..<2 * k).map { i in
            outputs[i].map { Tensor(shape: i < k ? vectors[i].shape : weights[i - k].shape, storage: $0) }
        }
    }

    private static func withPointers<R>(_ tensors: [Tensor], _ body: (UnsafeBufferPointer<UnsafePointer<Scalar>>) -> R) -> R {
        let pointers = tensors.map { UnsafePointer($0.storage.base) }
        return pointers.withUnsafeBufferPointer(body)
    }
}

struct WeightedSumLayout {
    let rows: Int, spatial: Int, channels: Int
    /// Per term: the vector is `[rows, spatial, 1]`, one value for every channel.
    let shared: [Bool]
}

@_specialize(where T == Float)
@_specialize(where T == Double)
func weightedSumKernel<T: TensorScalar>(_ vectors: UnsafeBufferPointer<UnsafePointer<T>>,
                                        _ weights: UnsafeBufferPointer<UnsafePointer<T>>,
                                        _ shared: UnsafeBufferPointer<Bool>,
                                        _ y: UnsafeMutablePointer<T>, _ layout: WeightedSumLayout) {
    let spatial = layout.spatial, terms = vectors.count
    ParallelLoop.forChunks(layout.rows, work: layout.rows * spatial * layout.channels * terms) { range in
        withChannelCount(layout.channels) { channels in
        for r in range {
            for s in 0..<spatial {
                let point = r * spatial + s
                let out = y + point * channels
                for k in 0..<terms {
                    let w = weights[k] + r * channels
                    if shared[k] {
                        let v = vectors[k][point]
                        if k == 0 { for c in 0..<channels { out[c] = v * w[c] } }
                        else { for c in 0..<channels { out[c] += v * w[c] } }
                    } else {
                        let v = vectors[k] + point * channels
                        if k == 0 { for c in 0..<channels { out[c] = v[c] * w[c] } }
                        else { for c in 0..<channels { out[c] += v[c] * w[c] } }
                    }
                }
            }
        }
        }
    }
}

/// For every term `k`: `out[k] = g ⊙ w_k` (summed over channels for a shared vector) and
/// `out[terms + k] = Σ_s g ⊙ v_k`; a nil output is skipped. Each row of `g` is read while it
/// is in cache for all the terms.
@_specialize(where T == Float)
@_specialize(where T == Double)
func weightedSumBackwardKernel<T: TensorScalar>(_ g: UnsafePointer<T>,
                                                _ vectors: UnsafeBufferPointer<UnsafePointer<T>>,
                                                _ weights: UnsafeBufferPointer<UnsafePointer<T>>,
                                                _ shared: UnsafeBufferPointer<Bool>,
                                                _ out: UnsafeBufferPointer<UnsafeMutablePointer<T>?>,
                                                _ layout: WeightedSumLayout) {
    let spatial = layout.spatial, terms = vectors.count
    ParallelLoop.forChunks(layout.rows, work: layout.rows * spatial * layout.channels * terms * 2) { range in
        withChannelCount(layout.channels) { channels in
        for r in range {
            for k in 0..<terms {
                let w = weights[k] + r * channels
                let dw = out[terms + k].map { $0 + r * channels }
                if let dw { for c in 0..<channels { dw[c] = 0 } }
                for s in 0..<spatial {
                    let point = r * spatial + s
                    let gs = g + point * channels
                    if shared[k] {
                        if let dv = out[k] {
                            var sum: T = 0
                            for c in 0..<channels { sum += gs[c] * w[c] }
                            dv[point] = sum
                        }
                        if let dw {
                            let v = vectors[k][point]
                            for c in 0..<channels { dw[c] += gs[c] * v }
                        }
                    } else {
                        let v = vectors[k] + point * channels
                        if let dv = out[k].map({ $0 + point * channels }) { for c in 0..<channels { dv[c] = gs[c] * w[c] } }
                        if let dw { for c in 0..<channels { dw[c] += gs[c] * v[c] } }
                    }
                }
            }
        }
        }
    }
}
