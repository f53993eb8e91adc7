// A sum of vector features scaled per channel, `Σ_k v_k ⊙ w_k`, as one operation, with the two
// contractions its gradients need. Equivariant message passing builds its vector messages this
// way; composed from broadcast `*` and `+`, every term and partial sum would be written out in
// full and read back by the backward.

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
    /// `weightedSum`, `spatialDot` and `channelDot` are closed under differentiation: each one's
    /// gradients are the others, so a second backward runs the same fused kernels.
    private static func weightedSumBackward(_ g: Tensor, _ vectors: [Tensor], _ weights: [Tensor],
                                            _ needs: InputMask) throws -> [Tensor?] {
        let k = vectors.count
        var grads = [Tensor?](repeating: nil, count: 2 * k)
        for i in 0..<k {
            let v = vectors[i], w = weights[i]
            if needs[i] { grads[i] = v.shape == g.shape ? try weightedSum([g], weights: [w]) : try channelDot(g, w) }
            if needs[k + i] { grads[k + i] = try spatialDot(g, v) }
        }
        return grads
    }

    /// `y[r, 0, c] = Σ_s a[r, s, c] · v[r, s, c]`: the per-channel dot product of vectors.
    ///
    /// `a` is `[rows, spatial, channels]`; `v` the same, or `[rows, spatial, 1]` for one vector
    /// shared by every channel. The result is `[rows, 1, channels]`.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func spatialDot(_ a: Tensor, _ v: Tensor) throws -> Tensor {
        guard a.rank == 3, v.rank == 3, v.shape[0] == a.shape[0], v.shape[1] == a.shape[1],
              v.shape[2] == a.shape[2] || v.shape[2] == 1 else {
            throw TensorError.shape("spatialDot", a.shape, v.shape)
        }
        let rows = a.shape[0], spatial = a.shape[1], channels = a.shape[2]
        let shared = v.shape[2] == 1 && channels != 1
        let s = Storage<Scalar>.make(count: rows * channels)
        if shared {
            sharedSpatialDotKernel(a.storage.base, v.storage.base, s.base, rows: rows, spatial: spatial, channels: channels)
        } else {
            productSumKernel(a.storage.base, v.storage.base, s.base, outer: rows, length: spatial, inner: channels)
        }
        return result([rows, 1, channels], s, "spatialDot", [a, v]) { g, y, needs in
            let a = y.inputs[0], v = y.inputs[1]
            let ga: Tensor? = needs[0] ? try weightedSum([v], weights: [g]) : nil
            let gv: Tensor? = needs[1] ? (shared ? try channelDot(a, g) : try weightedSum([a], weights: [g])) : nil
            return [ga, gv]
        }
    }

    /// `y[r, s, 0] = Σ_c a[r, s, c] · w[r, 0, c]`: each vector's channels summed with weights.
    ///
    /// `a` is `[rows, spatial, channels]` and `w` `[rows, 1, channels]`; the result is
    /// `[rows, spatial, 1]`.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func channelDot(_ a: Tensor, _ w: Tensor) throws -> Tensor {
        guard a.rank == 3, w.shape == [a.shape[0], 1, a.shape[2]] else {
            throw TensorError.shape("channelDot", a.shape, w.shape)
        }
        let rows = a.shape[0], spatial = a.shape[1], channels = a.shape[2]
        let s = Storage<Scalar>.make(count: rows * spatial)
        channelDotKernel(a.storage.base, w.storage.base, s.base, rows: rows, spatial: spatial, channels: channels)
        return result([rows, spatial, 1], s, "channelDot", [a, w]) { g, y, needs in
            let a = y.inputs[0], w = y.inputs[1]
            return [needs[0] ? try weightedSum([g], weights: [w]) : nil, needs[1] ? try spatialDot(a, g) : nil]
        }
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

// The kernels loop over terms outside rows: with 4 channels and 3 spatial components a row of
// a term is 12 multiply-adds, too few to pay for looking up the term's pointers and kind.
// Four channels (the triplet features of both shipped configurations) take one `SIMD4` per
// point: LLVM left the shared-vector loops (a value times four weights) scalar, an element
// loaded, multiplied and stored at a time.


/// ``weightedSumKernel(_:_:_:_:_:)`` over `range` with four channels.
@inline(__always)
private func weightedSumFourChannels<T: TensorScalar>(_ range: Range<Int>, _ vectors: UnsafeBufferPointer<UnsafePointer<T>>,
                                                      _ weights: UnsafeBufferPointer<UnsafePointer<T>>,
                                                      _ shared: UnsafeBufferPointer<Bool>,
                                                      _ y: UnsafeMutablePointer<T>, spatial: Int) {
    // `first` and `isShared` literals in each copy, so that the point loop tests neither.
    @inline(__always) func term(_ vk: UnsafePointer<T>, _ wk: UnsafePointer<T>, first: Bool, isShared: Bool) {
        for r in range {
            let w = quad(wk + 4 * r)
            for s in 0..<spatial {
                let point = r * spatial + s
                let out = y + 4 * point
                let product = isShared ? w * vk[point] : quad(vk + 4 * point) * w
                setQuad(out, first ? product : quad(out) + product)
            }
        }
    }
    for k in 0..<vectors.count {
        switch (k == 0, shared[k]) {
        case (true, true): term(vectors[k], weights[k], first: true, isShared: true)
        case (true, false): term(vectors[k], weights[k], first: true, isShared: false)
        case (false, true): term(vectors[k], weights[k], first: false, isShared: true)
        case (false, false): term(vectors[k], weights[k], first: false, isShared: false)
        }
    }
}

@_specialize(where T == Float)
@_specialize(where T == Double)
func weightedSumKernel<T: TensorScalar>(_ vectors: UnsafeBufferPointer<UnsafePointer<T>>,
                                        _ weights: UnsafeBufferPointer<UnsafePointer<T>>,
                                        _ shared: UnsafeBufferPointer<Bool>,
                                        _ y: UnsafeMutablePointer<T>, _ layout: WeightedSumLayout) {
    let spatial = layout.spatial, terms = vectors.count
    ParallelLoop.forChunks(layout.rows, work: layout.rows * spatial * layout.channels * terms) { range in
        if layout.channels == 4 { return weightedSumFourChannels(range, vectors, weights, shared, y, spatial: spatial) }
        withChannelCount(layout.channels) { channels in
            for k in 0..<terms {
                let vk = vectors[k], wk = weights[k], first = k == 0
                if shared[k] {
                    for r in range {
                        let w = wk + r * channels
                        for s in 0..<spatial {
                            let point = r * spatial + s
                            let out = y + point * channels, v = vk[point]
                            if first { for c in 0..<channels { out[c] = v * w[c] } }
                            else { for c in 0..<channels { out[c] += v * w[c] } }
                        }
                    }
                } else {
                    for r in range {
                        let w = wk + r * channels
                        for s in 0..<spatial {
                            let point = r * spatial + s
                            let out = y + point * channels, v = vk + point * channels
                            if first { for c in 0..<channels { out[c] = v[c] * w[c] } }
                            else { for c in 0..<channels { out[c] += v[c] * w[c] } }
                        }
                    }
                }
            }
        }
    }
}

/// For every term `k`: `out[k] = g ⊙ w_k` (summed over channels for a shared vector) and
/// `out[terms + k] = Σ_s g ⊙ v_k`; a nil output is skipped.
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
        if layout.channels == 4 { return weightedSumBackwardFourChannels(range, g, vectors, weights, shared, out, spatial: spatial) }
        withChannelCount(layout.channels) { channels in
            for k in 0..<terms {
                let vk = vectors[k], wk = weights[k]
                if let dw = out[terms + k] {
                    for r in range {
                        let dwr = dw + r * channels
                        for c in 0..<channels { dwr[c] = 0 }
                        for s in 0..<spatial {
                            let point = r * spatial + s
                            let gs = g + point * channels
                            if shared[k] {
                                let v = vk[point]
                                for c in 0..<channels { dwr[c] += gs[c] * v }
                            } else {
                                let v = vk + point * channels
                                for c in 0..<channels { dwr[c] += gs[c] * v[c] }
                            }
                        }
                    }
                }
                guard let dv = out[k] else { continue }
                if shared[k] {
                    for r in range {
                        let w = wk + r * channels
                        for s in 0..<spatial {
                            let point = r * spatial + s
                            let gs = g + point * channels
                            var sum: T = 0
                            for c in 0..<channels { sum += gs[c] * w[c] }
                            dv[point] = sum
                        }
                    }
                } else {
                    for r in range {
                        let w = wk + r * channels
                        for s in 0..<spatial {
                            let point = r * spatial + s
                            let gs = g + point * channels, dvp = dv + point * channels
                            for c in 0..<channels { dvp[c] = gs[c] * w[c] }
                        }
                    }
                }
            }
        }
    }
}

/// ``weightedSumBackwardKernel(_:_:_:_:_:_:)`` over `range` with four channels.
@inline(__always)
private func weightedSumBackwardFourChannels<T: TensorScalar>(_ range: Range<Int>, _ g: UnsafePointer<T>,
                                                              _ vectors: UnsafeBufferPointer<UnsafePointer<T>>,
                                                              _ weights: UnsafeBufferPointer<UnsafePointer<T>>,
                                                              _ shared: UnsafeBufferPointer<Bool>,
                                                              _ out: UnsafeBufferPointer<UnsafeMutablePointer<T>?>, spatial: Int) {
    let terms = vectors.count
    for k in 0..<terms {
        let vk = vectors[k], wk = weights[k], isShared = shared[k]
        if let dw = out[terms + k] {
            for r in range {
                var sum = SIMD4<T>()
                for s in 0..<spatial {
                    let point = r * spatial + s
                    let gs = quad(g + 4 * point)
                    sum += isShared ? gs * vk[point] : gs * quad(vk + 4 * point)
                }
                setQuad(dw + 4 * r, sum)
            }
        }
        guard let dv = out[k] else { continue }
        for r in range {
            let w = quad(wk + 4 * r)
            for s in 0..<spatial {
                let point = r * spatial + s
                let product = quad(g + 4 * point) * w
                // Summed in the order of the general loop, so that both give the same value.
                if isShared { dv[point] = ((product[0] + product[1]) + product[2]) + product[3] } else { setQuad(dv + 4 * point, product) }
            }
        }
    }
}

/// `y[r, c] = Σ_s a[r, s, c] · v[r, s]`.
@_specialize(where T == Float)
@_specialize(where T == Double)
func sharedSpatialDotKernel<T: TensorScalar>(_ a: UnsafePointer<T>, _ v: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>,
                                             rows: Int, spatial: Int, channels: Int) {
    ParallelLoop.forChunks(rows, work: rows * spatial * channels) { range in
        withChannelCount(channels) { channels in
            for r in range {
                let yr = y + r * channels
                for c in 0..<channels { yr[c] = 0 }
                for s in 0..<spatial {
                    let point = r * spatial + s
                    let ap = a + point * channels, x = v[point]
                    for c in 0..<channels { yr[c] += ap[c] * x }
                }
            }
        }
    }
}

/// `y[r, s] = Σ_c a[r, s, c] · w[r, c]`.
@_specialize(where T == Float)
@_specialize(where T == Double)
func channelDotKernel<T: TensorScalar>(_ a: UnsafePointer<T>, _ w: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>,
                                       rows: Int, spatial: Int, channels: Int) {
    ParallelLoop.forChunks(rows, work: rows * spatial * channels) { range in
        withChannelCount(channels) { channels in
            for r in range {
                let wr = w + r * channels
                for s in 0..<spatial {
                    let point = r * spatial + s
                    let ap = a + point * channels
                    var sum: T = 0
                    for c in 0..<channels { sum += ap[c] * wr[c] }
                    y[point] = sum
                }
            }
        }
    }
}
