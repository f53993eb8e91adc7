import CBLAS
import Foundation

/// A pool of raw, 64-byte-aligned blocks grouped by size class, so that a repeated
/// computation (an MD step, a training step) reuses the blocks the previous one released
/// instead of asking the system allocator for every intermediate.
///
/// Size classes are powers of two split in quarters (waste at most 25 %); the pool keeps
/// at most `byteLimit` bytes of free blocks and returns the rest to the system.
public final class BufferPool: @unchecked Sendable {
    /// The pool used by every tensor.
    public static let shared = BufferPool()

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    // Every access holds the mutex, so the runtime's exclusivity checks (one per access, a
    // share of every small tensor's cost) guard nothing.
    @exclusivity(unchecked) private var free: [[UnsafeMutableRawPointer]]
    @exclusivity(unchecked) private var pooledBytes = 0
    @exclusivity(unchecked) private var liveBytes = 0
    @exclusivity(unchecked) private var maximumLiveBytes = 0

    init() {
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        free = [[UnsafeMutableRawPointer]](repeating: [], count: BufferPool.classCount)
    }

    /// The most bytes of free blocks kept for reuse.
    @exclusivity(unchecked) public var byteLimit = 256 << 20

    /// Bytes currently handed out to live tensors.
    public var bytesInUse: Int { locked { liveBytes } }
    /// Bytes of free blocks waiting for reuse.
    public var bytesPooled: Int { locked { pooledBytes } }
    /// The high-water mark of `bytesInUse`.
    public var peakBytesInUse: Int { locked { maximumLiveBytes } }

    @inline(__always) private func locked<R>(_ body: () -> R) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    /// Releases every pooled block to the system.
    public func drain() {
        let blocks: [[UnsafeMutableRawPointer]] = locked {
            let b = free
            free = [[UnsafeMutableRawPointer]](repeating: [], count: BufferPool.classCount)
            pooledBytes = 0
            return b
        }
        for list in blocks { for p in list { p.deallocate() } }
    }

    static let classCount = 8 + 4 * 56

    /// The size class of a request: its index and its size in bytes. Up to 256 bytes, multiples
    /// of 64; above, powers of two split in quarters.
    @inline(__always)
    static func sizeClass(_ bytes: Int) -> (index: Int, size: Int) {
        if bytes <= 256 {
            let k = Swift.max(1, (bytes + 63) >> 6)
            return (k, k << 6)
        }
        let high = Int.bitWidth - 1 - (bytes - 1).leadingZeroBitCount  // 2^high < bytes <= 2^(high+1)
        let quarterShift = high - 2
        let k = (bytes + (1 << quarterShift) - 1) >> quarterShift       // 5 ... 8 quarters
        return (8 + (high - 8) * 4 + (k - 5), k << quarterShift)
    }

    func allocate(bytes: Int) -> (UnsafeMutableRawPointer, Int) {
        let (index, size) = BufferPool.sizeClass(bytes)
        pthread_mutex_lock(mutex)
        liveBytes += size
        if liveBytes > maximumLiveBytes { maximumLiveBytes = liveBytes }
        if let p = free[index].popLast() {
            pooledBytes -= size
            pthread_mutex_unlock(mutex)
            return (p, size)
        }
        pthread_mutex_unlock(mutex)
        return (UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64), size)
    }

    func release(_ p: UnsafeMutableRawPointer, size: Int) {
        let index = BufferPool.sizeClass(size).index
        pthread_mutex_lock(mutex)
        liveBytes -= size
        if pooledBytes + size <= byteLimit {
            free[index].append(p)
            pooledBytes += size
            pthread_mutex_unlock(mutex)
        } else {
            pthread_mutex_unlock(mutex)
            p.deallocate()
        }
    }
}

/// Where a storage's elements live.
struct StorageHeader<Scalar> {
    var base: UnsafeMutablePointer<Scalar>
    var count: Int
    /// Bytes taken from the pool; 0 when the elements are allocated inline with the object.
    var pooledSize: Int
}

/// The memory behind one or more tensors (a reshape shares it). Small tensors keep their
/// elements in the same allocation as this object; large ones take a block from the pool.
final class Storage<Scalar: TensorScalar>: ManagedBuffer<StorageHeader<Scalar>, Scalar> {
    /// Up to this many bytes the elements are allocated inline (malloc is quick at that size and
    /// needs no lock; the pool is for the large intermediates).
    static var inlineByteLimit: Int { 1024 }

    static func make(count: Int) -> Storage<Scalar> {
        let n = Swift.max(count, 1)
        if n * MemoryLayout<Scalar>.stride <= inlineByteLimit {
            let buffer = Storage<Scalar>.create(minimumCapacity: n) { b in
                StorageHeader(base: b.withUnsafeMutablePointerToElements { $0 }, count: count, pooledSize: 0)
            }
            return unsafeDowncast(buffer, to: Storage<Scalar>.self)
        }
        let (raw, size) = BufferPool.shared.allocate(bytes: n * MemoryLayout<Scalar>.stride)
        let base = raw.bindMemory(to: Scalar.self, capacity: n)
        let buffer = Storage<Scalar>.create(minimumCapacity: 0) { _ in
            StorageHeader(base: base, count: count, pooledSize: size)
        }
        return unsafeDowncast(buffer, to: Storage<Scalar>.self)
    }

    static func make(zeros count: Int) -> Storage<Scalar> {
        let s = make(count: count)
        s.base.initialize(repeating: 0, count: count)
        return s
    }

    // Read through the header's pointer: `header` is a stored class property, and each read of
    // it paid a runtime exclusivity check (`swift_beginAccess`), several per tensor operation.
    @inline(__always) private var storedHeader: StorageHeader<Scalar> { withUnsafeMutablePointerToHeader { $0.pointee } }
    @inline(__always) var base: UnsafeMutablePointer<Scalar> { storedHeader.base }
    @inline(__always) var count: Int { storedHeader.count }

    deinit {
        let h = storedHeader
        if h.pooledSize > 0 { BufferPool.shared.release(UnsafeMutableRawPointer(h.base), size: h.pooledSize) }
    }
}

/// Splits large loops over threads; small ones run inline.
enum ParallelLoop {
    @exclusivity(unchecked) nonisolated(unsafe) static var threadCount = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Below this many scalar operations a loop is not worth a thread hand-off (about 5–10 µs
    /// of work; the team's spinning workers take a loop in about a microsecond).
    static let grain = 1 << 13

    /// Multiply-adds from which a product that reaches OpenBLAS is split among the threads
    /// (about 5 µs of work at this host's speed: `small`'s `[306, 32] · [32, 32]` products,
    /// which ran on one thread while the other waited, now split).
    static let blasGrain = 1 << 18

    /// `body(firstRow, rows)` over row blocks of an `m`-row product of `work` multiply-adds:
    /// one block per thread when OpenBLAS runs on one thread (``TensorThreads/set(_:)``) and
    /// the product is large, else one call for all rows (OpenBLAS then splits it itself, if
    /// it has threads).
    @inline(__always)
    static func blasRows(m: Int, work: Int, _ body: (Int, Int) -> Void) {
        let threads = min(threadCount, work / blasGrain, m / 16)
        guard threads > 1, openblas_get_num_threads() == 1 else {
            body(0, m)
            return
        }
        ThreadTeam.tensorThreads.perform(iterations: threads) { t in
            let lo = m * t / threads, hi = m * (t + 1) / threads
            body(lo, hi - lo)
        }
    }

    /// Calls `body(range)` over chunks of `0 ..< count`, in parallel when `work` (an estimate of
    /// scalar operations) is large enough.
    @inline(__always)
    static func forChunks(_ count: Int, work: Int, _ body: (Range<Int>) -> Void) {
        let threads = min(threadCount, work / grain, count)
        if threads <= 1 {
            body(0 ..< count)
            return
        }
        // Several chunks per thread, handed out as threads free up, so that a thread the system
        // deschedules (a shared machine) does not hold the whole loop back.
        let chunks = min(count, threads * 4, max(threads, work / grain))
        ThreadTeam.tensorThreads.perform(iterations: chunks) { t in
            let lo = count * t / chunks
            let hi = count * (t + 1) / chunks
            if lo < hi { body(lo ..< hi) }
        }
    }
}
