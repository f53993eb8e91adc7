import Dispatch
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

    private let lock = NSLock()
    private var free: [Int: [UnsafeMutableRawPointer]] = [:]
    private var pooledBytes = 0
    private var liveBytes = 0
    private var maximumLiveBytes = 0

    /// The most bytes of free blocks kept for reuse.
    public var byteLimit = 1 << 30

    /// Bytes currently handed out to live tensors.
    public var bytesInUse: Int { lock.lock(); defer { lock.unlock() }; return liveBytes }
    /// Bytes of free blocks waiting for reuse.
    public var bytesPooled: Int { lock.lock(); defer { lock.unlock() }; return pooledBytes }
    /// The high-water mark of `bytesInUse`.
    public var peakBytesInUse: Int { lock.lock(); defer { lock.unlock() }; return maximumLiveBytes }

    /// Releases every pooled block to the system.
    public func drain() {
        lock.lock()
        let blocks = free
        free = [:]
        pooledBytes = 0
        lock.unlock()
        for (_, list) in blocks { for p in list { p.deallocate() } }
    }

    static func sizeClass(_ bytes: Int) -> Int {
        if bytes <= 256 { return max(64, (bytes + 63) & ~63) }
        let high = Int.bitWidth - 1 - (bytes - 1).leadingZeroBitCount  // floor(log2(bytes - 1))
        let quarter = 1 << (high - 2)
        return (bytes + quarter - 1) / quarter * quarter
    }

    func allocate(bytes: Int) -> (UnsafeMutableRawPointer, Int) {
        let size = BufferPool.sizeClass(bytes)
        lock.lock()
        liveBytes += size
        if liveBytes > maximumLiveBytes { maximumLiveBytes = liveBytes }
        if var list = free[size], let p = list.popLast() {
            free[size] = list
            pooledBytes -= size
            lock.unlock()
            return (p, size)
        }
        lock.unlock()
        return (UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64), size)
    }

    func release(_ p: UnsafeMutableRawPointer, size: Int) {
        lock.lock()
        liveBytes -= size
        if pooledBytes + size <= byteLimit {
            free[size, default: []].append(p)
            pooledBytes += size
            lock.unlock()
        } else {
            lock.unlock()
            p.deallocate()
        }
    }
}

/// The memory behind one or more tensors (a reshape shares it).
final class Storage<Scalar: TensorScalar> {
    let base: UnsafeMutablePointer<Scalar>
    let count: Int
    private let byteSize: Int

    init(count: Int) {
        self.count = count
        let (raw, size) = BufferPool.shared.allocate(bytes: max(1, count) * MemoryLayout<Scalar>.stride)
        byteSize = size
        base = raw.bindMemory(to: Scalar.self, capacity: max(1, count))
    }

    convenience init(zeros count: Int) {
        self.init(count: count)
        base.initialize(repeating: 0, count: count)
    }

    deinit {
        BufferPool.shared.release(UnsafeMutableRawPointer(base), size: byteSize)
    }
}

/// Splits large loops over threads; small ones run inline.
enum ParallelLoop {
    nonisolated(unsafe) static var threadCount = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Below this many scalar operations a loop is not worth a thread hand-off.
    static let grain = 1 << 15

    /// Calls `body(range)` over chunks of `0 ..< count`, in parallel when `work` (an estimate of
    /// scalar operations) is large enough.
    @inline(__always)
    static func forChunks(_ count: Int, work: Int, _ body: (Range<Int>) -> Void) {
        let threads = min(threadCount, work / grain, count)
        if threads <= 1 {
            body(0 ..< count)
            return
        }
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            let lo = count * t / threads
            let hi = count * (t + 1) / threads
            if lo < hi { body(lo ..< hi) }
        }
    }
}
