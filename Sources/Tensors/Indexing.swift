// Row gathers and scatter-adds: moving features between atoms, edges and triplets.

extension Tensor {
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    func checkIndices(_ index: [Int32], below n: Int, _ name: String) throws {
        // The largest index read as unsigned (a negative one becomes huge): a maximum vectorises,
        // where the short-circuit `||` of two comparisons ran element by element (1 % of a
        // training step).
        let ok = index.withUnsafeBufferPointer { p -> Bool in
            var largest: UInt32 = 0
            for i in p { largest = Swift.max(largest, UInt32(bitPattern: i)) }
            return p.isEmpty || Int(largest) < n
        }
        guard ok else { throw TensorError("\(name): an index is outside 0..<\(n)") }
    }

    /// Rows `index[e]` of this tensor (axis 0), stacked: shape `[index.count] + shape[1...]`.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func gather(rows index: [Int32]) throws -> Tensor {
        guard rank >= 1 else { throw TensorError("gather: shape \(shape) has no rows") }
        let n = shape[0]
        try checkIndices(index, below: n, "gather")
        let width = n == 0 ? 0 : count / n
        var outShape = shape
        outShape[0] = index.count
        let s = Storage<Scalar>.make(count: index.count * width)
        index.withUnsafeBufferPointer { ip in
            if let ib = ip.baseAddress { gatherKernel(storage.base, ib, s.base, rows: index.count, width: width) }
        }
        return Tensor.result(outShape, s, "gather", self) { g, _, _ in
            [try g.scatterAdd(rows: index, count: n)]
        }
    }

    /// Sums row `e` into row `index[e]` of a zero tensor with `count` rows:
    /// shape `[count] + shape[1...]`.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func scatterAdd(rows index: [Int32], count n: Int) throws -> Tensor {
        guard rank >= 1, shape[0] == index.count else {
            throw TensorError("scatterAdd: \(index.count) indices for shape \(shape)")
        }
        try checkIndices(index, below: n, "scatterAdd")
        let width = index.isEmpty ? shape[1...].reduce(1, *) : count / index.count
        var outShape = shape
        outShape[0] = n
        let s = Storage<Scalar>.make(zeros: n * width)
        index.withUnsafeBufferPointer { ip in
            if let ib = ip.baseAddress { scatterAddKernel(storage.base, ib, s.base, rows: index.count, width: width) }
        }
        return Tensor.result(outShape, s, "scatterAdd", self) { g, _, _ in
            [try g.gather(rows: index)]
        }
    }
}
