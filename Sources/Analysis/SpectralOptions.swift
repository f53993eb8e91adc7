import Foundation

/// Settings shared by every spectrum: how long a correlation is kept, how it is tapered and
/// transformed, and how error bars are made.
public struct SpectralOptions: Sendable {
    /// Maximum lag `T_corr` in samples (frames). The resolution is `1/(c·T_corr)`.
    public var maxLag: Int
    public var window: Window
    /// The cosine transform uses `M = 2·maxLag·zeroPadding` points: grid spacing
    /// `1/(c·M·Δt)`. Padding interpolates the spectrum; it adds no resolution.
    public var zeroPadding: Int
    /// Error bars: the trajectory is cut into this many consecutive blocks, each analysed
    /// alone; the standard error is the blocks' standard deviation over √blocks. 0 or 1: none.
    public var blocks: Int
    /// Subtract each series' mean before correlating (for drifting signals).
    public var subtractMean: Bool
    /// Worker threads over batches of series.
    public var threads: Int
    public var planning: CorrelationEngine.Planning
    /// Zero padding of the correlation FFTs (both exact for every lag kept).
    public var padding: CorrelationEngine.Padding
    /// Drop frequencies above this (cm⁻¹); an error if above the Nyquist frequency.
    public var maxFrequency: Double?

    public init(maxLag: Int, window: Window = .hann, zeroPadding: Int = 4, blocks: Int = 0,
                subtractMean: Bool = false, threads: Int = 1, planning: CorrelationEngine.Planning = .estimate,
                padding: CorrelationEngine.Padding = .exactToMaxLag, maxFrequency: Double? = nil) {
        self.maxLag = maxLag
        self.window = window
        self.zeroPadding = zeroPadding
        self.blocks = blocks
        self.subtractMean = subtractMean
        self.threads = threads
        self.planning = planning
        self.padding = padding
        self.maxFrequency = maxFrequency
    }

    /// The default maximum lag (frames): the smaller of 2000 fs and half the series.
    public static func defaultMaxLag(frames: Int, frameSpacing dt: Double) -> Int {
        // In floating point first: a tiny spacing makes 2000 / dt larger than `Int` holds.
        max(1, Int(min((2000 / dt).rounded(), Double((frames - 1) / 2))))
    }

    /// The default number of blocks for error bars: 4 when each block is at least twice the
    /// maximum lag (shorter blocks give errors dominated by their own truncation), else none.
    public static func defaultBlocks(frames: Int, maxLag: Int) -> Int {
        frames / 4 >= 2 * maxLag ? 4 : 0
    }

    /// The most points a cosine transform may have (1 GB of Doubles).
    public static let maximumTransformPoints = 1 << 27

    /// Points of the cosine transform.
    public var transformPoints: Int { 2 * maxLag * max(1, zeroPadding) }

    func validate(samples: Int, sampleSpacing dt: Double, what: String) throws {
        guard dt > 0, dt.isFinite else { throw AnalysisError("\(what): the frame spacing must be positive; got \(dt) fs") }
        guard maxLag >= 1 else { throw AnalysisError("\(what): the maximum lag must be at least one frame (\(dt) fs)") }
        guard maxLag < samples else {
            throw AnalysisError("\(what): the maximum lag \(Double(maxLag) * dt) fs (\(maxLag) frames) is not shorter than the series (\(samples) frames, \(Double(samples) * dt) fs); lower --max-lag-fs")
        }
        guard zeroPadding >= 1 else { throw AnalysisError("\(what): zero padding must be at least 1") }
        // Before `transformPoints` multiplies: a padding of Int.max overflowed there and trapped.
        guard zeroPadding <= Self.maximumTransformPoints / (2 * maxLag) else {
            throw AnalysisError("\(what): zero padding \(zeroPadding) × 2 × \(maxLag) lags is more than \(Self.maximumTransformPoints) transform points; lower --padding")
        }
        if let f = maxFrequency {
            let nyq = SpectralUnits.nyquist(frameSpacing: dt)
            guard f <= nyq * (1 + 1e-12) else {
                throw AnalysisError("\(what): frames \(dt) fs apart resolve frequencies up to \(String(format: "%.1f", nyq)) cm-1 (Nyquist), below the requested \(f) cm-1; store frames at most \(String(format: "%.3g", 1 / (2 * SpectralUnits.speedOfLight * f))) fs apart or lower --max-freq-cm1")
            }
        }
        if blocks > 1 {
            let blockLength = samples / blocks
            guard blockLength > maxLag else {
                throw AnalysisError("\(what): \(blocks) blocks of \(blockLength) frames are not longer than the maximum lag (\(maxLag) frames); use fewer --blocks or a shorter --max-lag-fs")
            }
        }
    }
}

/// Correlations of the columns of a frame-major matrix, summed per group, for the whole series
/// and for each block.
struct GroupCorrelator {
    let options: SpectralOptions

    /// Correlation per group, lags `0...maxLag`, over rows `firstRow..<firstRow+length`.
    func correlations(engine: CorrelationEngine, matrix: UnsafeBufferPointer<Double>, rowStride: Int, firstRow: Int,
                      weights: [Double], groups: [Int], groupCount: Int) throws -> [[Double]] {
        var power = [[Double]](repeating: [Double](repeating: 0, count: engine.binCount), count: groupCount)
        try engine.accumulatePower(matrix: matrix, rowStride: rowStride, firstRow: firstRow, columns: 0..<rowStride,
                                   weights: weights, groups: groups, subtractMean: options.subtractMean,
                                   into: &power, threads: options.threads)
        return try power.map { try engine.correlation(fromPower: $0) }
    }

    /// Whole-series correlations and, if blocks are requested, one set per block.
    func run(matrix: [Double], rows: Int, rowStride: Int, weights: [Double], groups: [Int],
             groupCount: Int) throws -> (whole: [[Double]], blocks: [[[Double]]]) {
        try matrix.withUnsafeBufferPointer { m in
            let engine = try CorrelationEngine(length: rows, maxLag: options.maxLag, planning: options.planning,
                                               padding: options.padding)
            let whole = try correlations(engine: engine, matrix: m, rowStride: rowStride, firstRow: 0,
                                         weights: weights, groups: groups, groupCount: groupCount)
            var perBlock: [[[Double]]] = []
            if options.blocks > 1 {
                let blockLength = rows / options.blocks
                let blockEngine = try CorrelationEngine(length: blockLength, maxLag: options.maxLag, planning: options.planning,
                                                        padding: options.padding)
                for b in 0..<options.blocks {
                    perBlock.append(try correlations(engine: blockEngine, matrix: m, rowStride: rowStride,
                                                     firstRow: b * blockLength, weights: weights, groups: groups,
                                                     groupCount: groupCount))
                }
            }
            return (whole, perBlock)
        }
    }
}

/// Mean and standard error over independent estimates.
public enum BlockStatistics {
    /// Pointwise standard error of the mean of `samples` (each an array of equal length):
    /// sample standard deviation / √count.
    public static func standardError(_ samples: [[Double]]) -> [Double]? {
        let n = samples.count
        guard n > 1, let len = samples.first?.count else { return nil }
        var out = [Double](repeating: 0, count: len)
        for k in 0..<len {
            var mean = 0.0
            for s in samples { mean += s[k] }
            mean /= Double(n)
            var v = 0.0
            for s in samples { v += (s[k] - mean) * (s[k] - mean) }
            out[k] = (v / Double(n - 1) / Double(n)).squareRoot()
        }
        return out
    }

    /// Mean and standard error of a correlated scalar series from `blocks` consecutive block means.
    public static func blockAverage(_ x: [Double], blocks: Int) -> (mean: Double, standardError: Double?) {
        guard !x.isEmpty else { return (.nan, nil) }
        let mean = x.reduce(0, +) / Double(x.count)
        let b = min(blocks, x.count)
        guard b > 1 else { return (mean, nil) }
        let len = x.count / b
        let means = (0..<b).map { i in x[(i * len)..<((i + 1) * len)].reduce(0, +) / Double(len) }
        let m = means.reduce(0, +) / Double(b)
        let v = means.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(b - 1)
        return (mean, (v / Double(b)).squareRoot())
    }
}
