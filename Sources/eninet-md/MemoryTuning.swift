#if os(Linux)
import Glibc
#endif

/// Process-wide allocator settings, made once by the executable (a library should not change
/// them behind its user's back).
enum MemoryTuning {
    /// An ENINet evaluation allocates tens of megabytes of short-lived arrays; glibc would map
    /// and unmap each from the kernel and pay a page fault per page on every call (11% of the
    /// time in a profile). Raising the mmap and trim thresholds keeps them in the reusable heap.
    static func keepLargeBuffersInTheHeap() {
        #if os(Linux)
        _ = glibcMallopt(-3, 512 << 20)  // M_MMAP_THRESHOLD
        _ = glibcMallopt(-1, 1 << 30)    // M_TRIM_THRESHOLD
        #endif
    }
}

#if os(Linux)
// glibc's mallopt(3); <malloc.h> is not part of the Glibc module.
@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif
