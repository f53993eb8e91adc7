import Tensors

/// A loop that adds into shared arrays, run in chunks concurrently without locks: the first
/// chunk adds to the arrays themselves, each later one to zeroed buffers of its own, added to
/// the arrays afterwards in chunk order, so the same chunks give the same sums every run.
enum ChunkSums {
    /// `pass(range, own)` for every range, concurrently when there are several: `own` is nil for
    /// the first range and a zeroed buffer of `width` elements for each later one, which `merge`
    /// then adds to the shared arrays, in range order.
    static func run<T: ENINetFloat>(_ ranges: [Range<Int>], ownWidth width: Int,
                                    pass: (Range<Int>, UnsafeMutablePointer<T>?) -> Void,
                                    merge: (UnsafeMutablePointer<T>) -> Void) {
        guard ranges.count > 1 else {
            // One chunk (or none) runs on this thread, with nothing to allocate or merge.
            if let only = ranges.first { pass(only, nil) }
            return
        }
        let own = UnsafeMutablePointer<T>.allocate(capacity: (ranges.count - 1) * width)
        own.initialize(repeating: 0, count: (ranges.count - 1) * width)
        defer { own.deallocate() }
        TensorThreads.perform(iterations: ranges.count) { k in pass(ranges[k], k == 0 ? nil : own + (k - 1) * width) }
        for k in 1..<ranges.count { merge(own + (k - 1) * width) }
    }

    /// `target[i] += source[i]` for `i < count`: what a `merge` does per shared array.
    static func add<T: ENINetFloat>(_ source: UnsafePointer<T>, into target: UnsafeMutablePointer<T>, count: Int) {
        for i in 0..<count { target[i] += source[i] }
    }
}
