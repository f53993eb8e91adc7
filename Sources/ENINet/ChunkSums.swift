import Tensors

/// A loop that adds into shared arrays, run in chunks concurrently without locks: the first
/// chunk adds to the arrays themselves, each later one to zeroed buffers of its own, added to
/// the arrays afterwards in chunk order, so the same chunks give the same sums every run.
enum ChunkSums {
    /// `pass(range, own)` for every range, concurrently when there are several: `own` is nil for
    /// the first range and a buffer of `width` elements set to `zero` for each later one, which
    /// `merge` then adds to the shared arrays, in range order.
    static func run<Element>(_ ranges: [Range<Int>], ownWidth width: Int, zero: Element,
                             pass: (Range<Int>, UnsafeMutablePointer<Element>?) -> Void,
                             merge: (UnsafeMutablePointer<Element>) -> Void) {
        guard ranges.count > 1 else {
            // One chunk (or none) runs on this thread, with nothing to allocate or merge.
            if let only = ranges.first { pass(only, nil) }
            return
        }
        let own = UnsafeMutablePointer<Element>.allocate(capacity: (ranges.count - 1) * width)
        own.initialize(repeating: zero, count: (ranges.count - 1) * width)
        defer { own.deallocate() }
        TensorThreads.perform(iterations: ranges.count) { k in pass(ranges[k], k == 0 ? nil : own + (k - 1) * width) }
        for k in 1..<ranges.count { merge(own + (k - 1) * width) }
    }

    /// ``run(_:ownWidth:zero:pass:merge:)`` for buffers of network numbers, which start at 0.
    static func run<T: ENINetFloat>(_ ranges: [Range<Int>], ownWidth width: Int,
                                    pass: (Range<Int>, UnsafeMutablePointer<T>?) -> Void,
                                    merge: (UnsafeMutablePointer<T>) -> Void) {
        run(ranges, ownWidth: width, zero: T.zero, pass: pass, merge: merge)
    }

    /// `target[i] += source[i]` for `i < count`: what a `merge` does per shared array.
    static func add<T: ENINetFloat>(_ source: UnsafePointer<T>, into target: UnsafeMutablePointer<T>, count: Int) {
        for i in 0..<count { target[i] += source[i] }
    }

    /// ``add(_:into:count:)`` for rows of three Doubles (`SIMD3` is not `AdditiveArithmetic`).
    static func add(_ source: UnsafePointer<SIMD3<Double>>, into target: UnsafeMutablePointer<SIMD3<Double>>, count: Int) {
        for i in 0..<count { target[i] += source[i] }
    }
}
