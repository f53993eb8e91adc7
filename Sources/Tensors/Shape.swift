// Reshaping, broadcasting, reductions, slicing and joining.

extension Tensor {
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    func normalizedAxis(_ axis: Int, _ name: String) throws -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < rank else { throw TensorError("\(name): axis \(axis) out of range for shape \(shape)") }
        return a
    }

    // MARK: Reshape

    /// The same elements with another shape (one axis may be -1, inferred). Shares memory.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        var target = newShape
        if let hole = newShape.firstIndex(of: -1) {
            let known = newShape.enumerated().reduce(1) { $1.offset == hole ? $0 : $0 * $1.element }
            guard known > 0, count % known == 0 else { throw TensorError("reshape: \(shape) to \(newShape)") }
            target[hole] = count / known
        }
        guard target.reduce(1, *) == count, target.allSatisfy({ $0 >= 0 }) else {
            throw TensorError("reshape: \(shape) to \(newShape)")
        }
        if target == shape { return self }
        return Tensor.result(target, storage, "reshape", self) { g, y, _ in
            [try g.reshaped(y.inputs[0].shape)]
        }
    }

    /// Inserts an axis of size 1 at `axis`.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func unsqueezed(_ axis: Int) throws -> Tensor {
        let a = axis < 0 ? axis + rank + 1 : axis
        guard a >= 0 && a <= rank else { throw TensorError("unsqueeze: axis \(axis) for shape \(shape)") }
        var s = shape
        s.insert(1, at: a)
        return try reshaped(s)
    }

    /// Removes an axis of size 1.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func squeezed(_ axis: Int) throws -> Tensor {
        let a = try normalizedAxis(axis, "squeeze")
        guard shape[a] == 1 else { throw TensorError("squeeze: axis \(axis) of shape \(shape) is not 1") }
        var s = shape
        s.remove(at: a)
        return try reshaped(s)
    }

    /// The values broadcast (copied) to `target`, which must be a broadcast of this shape.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func expanded(to target: [Int]) throws -> Tensor {
        if target == shape { return self }
        guard var p = BroadcastPlan(shape, target), p.outputShape == target else {
            throw TensorError.shape("expand", shape, target)
        }
        for k in p.stridesB.indices { p.stridesB[k] = 0 }
        let s = Storage<Scalar>.make(count: p.count)
        broadcastCopyKernel(p, storage.base, s.base)
        return Tensor.result(target, s, "expand", self) { g, y, _ in
            [try g.sum(toShape: y.inputs[0].shape)]
        }
    }

    // MARK: Reductions

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    func reduced(_ kernel: ReduceKernel, axes: [Int], _ name: String) throws -> (Storage<Scalar>, [Int]) {
        // Sorted in place, repeats skipped below: a set and its sorted copy cost two
        // allocations and hashing on every reduction of a backward pass.
        var sorted = try axes.map { try normalizedAxis($0, name) }
        sorted.sort()
        var current = storage
        var cs = shape
        var i = 0
        while i < sorted.count {
            var j = i
            while j + 1 < sorted.count && (sorted[j + 1] == sorted[j] + 1 || sorted[j + 1] == sorted[j]) { j += 1 }
            let lo = sorted[i], hi = sorted[j]
            let outer = cs[..<lo].reduce(1, *)
            let length = cs[lo...hi].reduce(1, *)
            let inner = cs[(hi + 1)...].reduce(1, *)
            let out = Storage<Scalar>.make(count: outer * inner)
            reduceKernel(kernel, current.base, out.base, outer: outer, length: length, inner: inner)
            current = out
            for k in lo...hi { cs[k] = 1 }
            i = j + 1
        }
        return (current, cs)
    }

    /// Sum over `axes`; the reduced axes are removed unless `keepingDimensions`.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func sum(axes: [Int], keepingDimensions: Bool = false) throws -> Tensor {
        let (s, kept) = try reduced(.sum, axes: axes, "sum")
        let reducedSet = Set(try axes.map { try normalizedAxis($0, "sum") })
        let outShape = keepingDimensions ? kept : shape.enumerated().filter { !reducedSet.contains($0.offset) }.map(\.element)
        return Tensor.result(outShape, s, "sum", self) { g, y, _ in
            let x = y.inputs[0]
            return [try g.reshaped(kept).expanded(to: x.shape)]
        }
    }

    /// Sum over one axis.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func sum(axis: Int, keepingDimensions: Bool = false) throws -> Tensor {
        try sum(axes: [axis], keepingDimensions: keepingDimensions)
    }

    /// Sum of all elements, shape `[]`.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func sum() -> Tensor {
        let s = Storage<Scalar>.make(count: 1)
        reduceKernel(.sum, storage.base, s.base, outer: 1, length: count, inner: 1)
        return Tensor.result([], s, "sumAll", self) { g, y, _ in
            [try g.expanded(to: y.inputs[0].shape)]
        }
    }

    /// Mean over `axes`.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func mean(axes: [Int], keepingDimensions: Bool = false) throws -> Tensor {
        var n = 1
        for a in Set(try axes.map { try normalizedAxis($0, "mean") }) { n *= shape[a] }
        return try sum(axes: axes, keepingDimensions: keepingDimensions) * (1 / Scalar(n))
    }

    /// Mean over one axis.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func mean(axis: Int, keepingDimensions: Bool = false) throws -> Tensor {
        try mean(axes: [axis], keepingDimensions: keepingDimensions)
    }

    /// Mean of all elements, shape `[]`.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func mean() -> Tensor { sum() * (1 / Scalar(Swift.max(count, 1))) }

    /// Sums the broadcast axes away to get back `target` (the reverse of ``expanded(to:)``).
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func sum(toShape target: [Int]) throws -> Tensor {
        if target == shape { return self }
        guard target.count <= rank else { throw TensorError.shape("sumToShape", shape, target) }
        let lead = rank - target.count
        var axes = Array(0..<lead)
        for (k, t) in target.enumerated() {
            let d = shape[lead + k]
            if t == d { continue }
            guard t == 1 else { throw TensorError.shape("sumToShape", shape, target) }
            axes.append(lead + k)
        }
        let (s, _) = try reduced(.sum, axes: axes, "sumToShape")
        return Tensor.result(target, s, "sumToShape", self) { g, y, _ in
            [try g.expanded(to: y.inputs[0].shape)]
        }
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    func extremum(_ kernel: ReduceKernel, axis: Int, keepingDimensions: Bool, _ name: String) throws -> Tensor {
        let a = try normalizedAxis(axis, name)
        let (s, kept) = try reduced(kernel, axes: [a], name)
        var outShape = kept
        if !keepingDimensions { outShape.remove(at: a) }
        return Tensor.result(outShape, s, name, self) { g, y, _ in
            let x = y.inputs[0]
            // The gradient goes to the elements equal to the extremum, shared equally on ties.
            let hit = try GradMode.withoutGradients {
                let m = try Tensor.equal(x, y.detached().reshaped(kept))
                return try m / m.sum(axes: [a], keepingDimensions: true)
            }
            return [try g.reshaped(kept).expanded(to: x.shape) * hit]
        }
    }

    /// Maximum over one axis.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func max(axis: Int, keepingDimensions: Bool = false) throws -> Tensor {
        try extremum(.max, axis: axis, keepingDimensions: keepingDimensions, "max")
    }

    /// Minimum over one axis.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func min(axis: Int, keepingDimensions: Bool = false) throws -> Tensor {
        try extremum(.min, axis: axis, keepingDimensions: keepingDimensions, "min")
    }

    // MARK: Permutations

    /// Axes reordered: result axis `i` is input axis `permutation[i]`.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func permuted(_ permutation: [Int]) throws -> Tensor {
        guard permutation.sorted() == Array(0..<rank) else {
            throw TensorError("permute: \(permutation) for shape \(shape)")
        }
        if permutation == Array(0..<rank) { return self }
        let s = Storage<Scalar>.make(count: count)
        permuteKernel(storage.base, s.base, shape: shape, permutation: permutation)
        var inverse = permutation
        for (i, p) in permutation.enumerated() { inverse[p] = i }
        return Tensor.result(permutation.map { shape[$0] }, s, "permute", self) { g, _, _ in
            [try g.permuted(inverse)]
        }
    }

    /// A matrix transposed (the last two axes swapped).
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func transposed() throws -> Tensor {
        guard rank >= 2 else { throw TensorError("transpose: shape \(shape)") }
        var p = Array(0..<rank)
        p.swapAt(rank - 1, rank - 2)
        return try permuted(p)
    }

    // MARK: Slicing and joining

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    func axisGeometry(_ a: Int) -> (outer: Int, length: Int, inner: Int) {
        (shape[..<a].reduce(1, *), shape[a], shape[(a + 1)...].reduce(1, *))
    }

    /// Elements `start ..< start + length` along `axis`.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func slice(axis: Int, start: Int, length: Int) throws -> Tensor {
        let a = try normalizedAxis(axis, "slice")
        guard start >= 0, length >= 0, start + length <= shape[a] else {
            throw TensorError("slice: \(start)..<\(start + length) of axis \(axis) in shape \(shape)")
        }
        if start == 0 && length == shape[a] { return self }
        let (outer, full, inner) = axisGeometry(a)
        var outShape = shape
        outShape[a] = length
        let s = Storage<Scalar>.make(count: outer * length * inner)
        blockCopyKernel(storage.base, xLength: full, xStart: start, s.base, yLength: length, yStart: 0,
                        outer: outer, length: length, inner: inner)
        let y = Tensor.result(outShape, s, "slice", self) { g, _, _ in
            [try g.embedded(axis: a, start: start, length: full)]
        }
        if y.requiresGrad { y.sliceRegion = SliceRegion(axis: a, start: start, inputLength: full) }
        return y
    }

    /// Places this tensor at `start` along `axis` of a zero tensor whose axis has `length` elements.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    func embedded(axis a: Int, start: Int, length full: Int) throws -> Tensor {
        let (outer, part, inner) = axisGeometry(a)
        var outShape = shape
        outShape[a] = full
        let s = Storage<Scalar>.make(zeros: outer * full * inner)
        blockCopyKernel(storage.base, xLength: part, xStart: 0, s.base, yLength: full, yStart: start,
                        outer: outer, length: part, inner: inner)
        return Tensor.result(outShape, s, "embed", self) { g, _, _ in
            [try g.slice(axis: a, start: start, length: part)]
        }
    }

    /// Cuts `axis` into consecutive pieces of the given sizes.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func split(axis: Int, sizes: [Int]) throws -> [Tensor] {
        let a = try normalizedAxis(axis, "split")
        guard sizes.reduce(0, +) == shape[a], sizes.allSatisfy({ $0 >= 0 }) else {
            throw TensorError("split: sizes \(sizes) for axis \(axis) of shape \(shape)")
        }
        var start = 0
        var pieces: [Tensor] = []
        for n in sizes {
            pieces.append(try slice(axis: a, start: start, length: n))
            start += n
        }
        return pieces
    }

    /// Cuts `axis` into `parts` equal pieces.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func split(axis: Int, parts: Int) throws -> [Tensor] {
        let a = try normalizedAxis(axis, "split")
        guard parts > 0, shape[a] % parts == 0 else {
            throw TensorError("split: axis \(axis) of shape \(shape) into \(parts) parts")
        }
        return try split(axis: a, sizes: [Int](repeating: shape[a] / parts, count: parts))
    }
}

/// Joins tensors along `axis`; the other axes must agree.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func concat<T: TensorScalar>(_ tensors: [Tensor<T>], axis: Int) throws -> Tensor<T> {
    guard let first = tensors.first else { throw TensorError("concat: no tensors") }
    let a = try first.normalizedAxis(axis, "concat")
    var total = 0
    for t in tensors {
        guard t.rank == first.rank,
              t.shape.enumerated().allSatisfy({ $0.offset == a || $0.element == first.shape[$0.offset] }) else {
            throw TensorError.shape("concat", first.shape, t.shape)
        }
        total += t.shape[a]
    }
    if tensors.count == 1 { return first }
    var outShape = first.shape
    outShape[a] = total
    let (outer, _, inner) = first.axisGeometry(a)
    let s = Storage<T>.make(count: outer * total * inner)
    var start = 0
    var starts: [Int] = []
    for t in tensors {
        starts.append(start)
        blockCopyKernel(t.storage.base, xLength: t.shape[a], xStart: 0, s.base, yLength: total, yStart: start,
                        outer: outer, length: t.shape[a], inner: inner)
        start += t.shape[a]
    }
    return Tensor.result(outShape, s, "concat", tensors) { g, y, needs in
        try y.inputs.enumerated().map { i, t in
            needs[i] ? try g.slice(axis: a, start: starts[i], length: t.shape[a]) : nil
        }
    }
}

/// Where a slice lies along `axis` of its input.
struct SliceRegion {
    let axis: Int, start: Int, inputLength: Int
}
