import Tensors

/// Block-aligned ranges of a graph's triplets, the split of the triplet work (the fused triplet
/// pass, the sums of the triplets' geometry gradients at their spans) over threads.
struct TripletChunks {
    /// In order, covering `0 ..< nt`, each starting at a multiple of eight.
    let ranges: [Range<Int>]

    /// Up to `threads` ranges, each holding at least `minimumBlocks` blocks of eight (one range
    /// when the triplets are fewer): a thread hand-off costs microseconds, a block of eight tens
    /// of nanoseconds. Each range also holds at least as many triplets as there are edges (`ne`),
    /// because every range after the first has edge buffers of its own that are added up on one
    /// thread afterwards (with many threads, that sum would otherwise outgrow the split work).
    init(triplets nt: Int, edges ne: Int, threads: Int, minimumBlocks: Int) {
        let blocks = (nt + 7) / 8
        let count = max(1, min(threads, blocks / max(1, minimumBlocks), nt / max(1, ne)))
        ranges = (0..<count).map { k in min(nt, blocks * k / count * 8) ..< min(nt, blocks * (k + 1) / count * 8) }
    }

    var count: Int { ranges.count }
}
