import CFFTW
import Foundation

/// Time-correlation functions through FFTW and the Wiener–Khinchin theorem.
///
/// An engine is built for one series length and one maximum lag; its FFTW plans are made once
/// and reused for every series it sees. The estimator is the unbiased one,
/// `C(k) = 1/(N−k) Σ_n x(n)·x(n+k)`.
///
/// Zero padding: a circular correlation of period `P` mixes lag `k` with lag `P − k`, so it
/// equals the linear one for every lag `k ≤ P − N`. Padding to `2N` (`spectra.md`) makes that
/// every lag; only lags up to `maxLag` are ever returned, so by default the engine pads to
/// `N + maxLag`, which is exact for all of them and, for a 10,000-frame run kept to 2,000
/// lags, transforms 12,000 points instead of 20,000. `.twiceLength` restores the 2N rule.
///
/// Many series are summed in frequency space: the power spectra `|X|²` of all the series of a
/// group (the atoms of one element, say, times their three components) are accumulated with a
/// weight each, and only the sum is transformed back. That halves the number of transforms and
/// means no complex spectrum is ever held for more than one batch of series.
///
/// FFTW's planner is not thread-safe: build engines on one thread. A built engine may spread
/// one `accumulatePower` call over several threads (`threads:`), since executing a plan is.
public final class CorrelationEngine {
    /// Samples per series.
    public let length: Int
    /// The largest lag returned (samples).
    public let maxLag: Int
    /// FFT length: the smallest 2^a·3^b·5^c·7^d at least `length + maxLag` (or `2·length`).
    public let paddedLength: Int
    /// Series transformed together by one batched plan.
    public let batchSize: Int
    /// Frequency bins of a real transform: `paddedLength/2 + 1`.
    public var binCount: Int { paddedLength / 2 + 1 }

    private let forwardPlan: OpaquePointer
    private let inversePlan: OpaquePointer
    /// One set of FFT buffers per worker thread.
    private var workspaces: [Workspace]
    private let inverseInput: UnsafeMutablePointer<fftw_complex>
    private let inverseOutput: UnsafeMutablePointer<Double>

    /// How hard FFTW's planner works: `.estimate` plans instantly; `.measure` times candidate
    /// algorithms once (a second or so for long series) and pays off when thousands of series
    /// share the plan.
    public enum Planning: Sendable { case estimate, measure }

    /// How far series are zero-padded; both are exact for every lag returned.
    public enum Padding: Sendable {
        /// At least `length + maxLag` points.
        case exactToMaxLag
        /// At least `2·length` points (exact at every lag, as `spectra.md` states it).
        case twiceLength
    }

    /// Buffers for one batch: each series contiguous (`[series][time]`), which lets FFTW run its
    /// codelets in place of copying a strided batch first (measured: an interleaved layout
    /// spent a quarter of the transform time in FFTW's internal copy).
    private final class Workspace {
        let real: UnsafeMutablePointer<Double>
        let complex: UnsafeMutablePointer<fftw_complex>
        let realCount: Int
        let complexCount: Int
        init?(realCount: Int, complexCount: Int) {
            guard let r = fftw_alloc_real(realCount), let c = fftw_alloc_complex(complexCount) else { return nil }
            real = r
            complex = c
            self.realCount = realCount
            self.complexCount = complexCount
            r.initialize(repeating: 0, count: realCount)
            UnsafeMutableRawPointer(c).bindMemory(to: Double.self, capacity: 2 * complexCount)
                .initialize(repeating: 0, count: 2 * complexCount)
        }
        deinit {
            fftw_free(real)
            fftw_free(complex)
        }
    }

    /// Builds the plans for series of `length` samples, keeping lags `0...maxLag`.
    public init(length: Int, maxLag: Int, batchSize: Int = 16, planning: Planning = .estimate,
                padding: Padding = .exactToMaxLag) throws {
        guard length >= 2 else { throw AnalysisError("a correlation needs at least 2 samples; got \(length)") }
        guard maxLag >= 0, maxLag < length else {
            throw AnalysisError("maximum lag \(maxLag) samples must be below the series length \(length) samples")
        }
        self.length = length
        self.maxLag = maxLag
        self.batchSize = max(1, batchSize)
        self.paddedLength = CorrelationEngine.fastLength(atLeast: padding == .twiceLength ? 2 * length : length + maxLag)
        let bins = paddedLength / 2 + 1
        guard let w = Workspace(realCount: paddedLength * self.batchSize, complexCount: bins * self.batchSize),
              let ii = fftw_alloc_complex(bins), let io = fftw_alloc_real(paddedLength) else {
            throw AnalysisError("cannot allocate FFT buffers for \(length)-sample series")
        }
        workspaces = [w]
        inverseInput = ii
        inverseOutput = io
        let flags = (planning == .measure ? UInt32(FFTW_MEASURE) : UInt32(FFTW_ESTIMATE))
        let padded = Int32(paddedLength)
        var n = [padded]
        let b = Int32(self.batchSize)
        let forward = n.withUnsafeMutableBufferPointer { np in
            fftw_plan_many_dft_r2c(1, np.baseAddress, b, w.real, nil, 1, padded, w.complex, nil, 1, Int32(bins), flags)
        }
        let inverse = fftw_plan_dft_c2r_1d(Int32(paddedLength), ii, io, flags)
        guard let forward, let inverse else {
            fftw_free(ii)
            fftw_free(io)
            throw AnalysisError("FFTW could not plan a transform of length \(paddedLength)")
        }
        forwardPlan = forward
        inversePlan = inverse
        // Planning with .measure scribbles on the buffers; the padding must be zero.
        w.real.initialize(repeating: 0, count: w.realCount)
    }

    deinit {
        fftw_destroy_plan(forwardPlan)
        fftw_destroy_plan(inversePlan)
        fftw_free(inverseInput)
        fftw_free(inverseOutput)
    }

    /// The smallest integer at least `n` whose only prime factors are 2, 3, 5 and 7, for which
    /// FFTW's codelets are fastest.
    public static func fastLength(atLeast n: Int) -> Int {
        var m = max(1, n)
        while true {
            var r = m
            for p in [2, 3, 5, 7] { while r % p == 0 { r /= p } }
            if r == 1 { return m }
            m += 1
        }
    }

    /// Adds `Σ_c weight[c] · |FFT(x_c)|²` to `power[group[c]]` for the columns `columns` of a
    /// frame-major matrix.
    ///
    /// - Parameters:
    ///   - matrix: row `t` holds sample `t` of every series (e.g. all 3N velocity components
    ///     of frame t), `rowStride` values apart.
    ///   - firstRow: the series start at this row and run for `length` rows (block averages
    ///     use consecutive windows of one matrix).
    ///   - weights, groups: one per column of the matrix (indexed by absolute column).
    ///     A weight of zero skips the column.
    ///   - subtractMean: remove each series' mean over the window first.
    ///   - power: `groupCount` arrays of `binCount` values, accumulated into.
    ///   - threads: worker threads over batches of columns.
    public func accumulatePower(matrix: UnsafeBufferPointer<Double>, rowStride: Int, firstRow: Int = 0,
                                columns: Range<Int>, weights: [Double], groups: [Int],
                                subtractMean: Bool = false, into power: inout [[Double]],
                                threads: Int = 1) throws {
        guard firstRow >= 0, rowStride > 0, (firstRow + length - 1) * rowStride + columns.upperBound <= matrix.count,
              columns.lowerBound >= 0, columns.upperBound <= rowStride else {
            throw AnalysisError("series window rows \(firstRow)..<\(firstRow + length), columns \(columns) lie outside a \(matrix.count / max(1, rowStride))×\(rowStride) matrix")
        }
        guard weights.count >= columns.upperBound, groups.count >= columns.upperBound else {
            throw AnalysisError("weights and groups must cover columns \(columns)")
        }
        let groupCount = power.count
        let bins = binCount
        for g in groups[columns] where g < 0 || g >= groupCount {
            throw AnalysisError("group index \(g) outside 0..<\(groupCount)")
        }
        guard power.allSatisfy({ $0.count == bins }) else {
            throw AnalysisError("power accumulators must hold \(bins) bins each")
        }
        let batchCount = (columns.count + batchSize - 1) / batchSize
        let workers = max(1, min(threads, batchCount))
        while workspaces.count < workers {
            guard let w = Workspace(realCount: paddedLength * batchSize, complexCount: bins * batchSize) else {
                throw AnalysisError("cannot allocate FFT buffers for worker \(workspaces.count)")
            }
            workspaces.append(w)
        }
        // Each worker sums into its own flat [group][bin] buffer; the buffers are added at the end.
        var partials = [[Double]](repeating: [Double](repeating: 0, count: groupCount * bins), count: workers)
        let work: (Int, UnsafeMutablePointer<Double>) -> Void = { worker, acc in
            var batch = worker
            while batch < batchCount {
                let c0 = columns.lowerBound + batch * self.batchSize
                let c1 = min(columns.upperBound, c0 + self.batchSize)
                self.transformBatch(matrix: matrix, rowStride: rowStride, firstRow: firstRow, columns: c0..<c1,
                                    weights: weights, groups: groups, subtractMean: subtractMean,
                                    workspace: self.workspaces[worker], accumulator: acc, bins: bins)
                batch += workers
            }
        }
        if workers == 1 {
            partials[0].withUnsafeMutableBufferPointer { if let base = $0.baseAddress { work(0, base) } }
        } else {
            let pointers = partials.indices.map { _ in UnsafeMutablePointer<Double>.allocate(capacity: groupCount * bins) }
            defer { pointers.forEach { $0.deallocate() } }
            for p in pointers { p.initialize(repeating: 0, count: groupCount * bins) }
            DispatchQueue.concurrentPerform(iterations: workers) { w in work(w, pointers[w]) }
            for w in 0..<workers {
                partials[w] = Array(UnsafeBufferPointer(start: pointers[w], count: groupCount * bins))
            }
        }
        for w in 0..<workers {
            for g in 0..<groupCount {
                partials[w].withUnsafeBufferPointer { src in
                    power[g].withUnsafeMutableBufferPointer { dst in
                        for k in 0..<bins { dst[k] += src[g * bins + k] }
                    }
                }
            }
        }
    }

    private func transformBatch(matrix: UnsafeBufferPointer<Double>, rowStride: Int, firstRow: Int,
                                columns: Range<Int>, weights: [Double], groups: [Int], subtractMean: Bool,
                                workspace: Workspace, accumulator: UnsafeMutablePointer<Double>, bins: Int) {
        let b = batchSize
        let nb = columns.count
        let real = workspace.real
        guard let base = matrix.baseAddress else { return }
        let p = paddedLength
        // Transpose the batch out of the frame-major matrix. Rows beyond `length` stay zero
        // (the out-of-place real transform preserves its input).
        // In tiles of 64 rows, so that the rows being read stay in L1 while each series is
        // written contiguously (a row-by-row scatter into 16 far-apart streams was the
        // engine's bottleneck under perf).
        let tile = 64
        var t0 = 0
        while t0 < length {
            let t1 = min(length, t0 + tile)
            let rowBase = base + columns.lowerBound
            for j in 0..<nb {
                let dst = real + j * p
                var src = rowBase + (firstRow + t0) * rowStride + j
                for t in t0..<t1 {
                    dst[t] = src.pointee
                    src += rowStride
                }
            }
            t0 = t1
        }
        if nb < b { (real + nb * p).update(repeating: 0, count: (b - nb) * p) }
        if subtractMean {
            for j in 0..<nb {
                let series = real + j * p
                var mean = 0.0
                for t in 0..<length { mean += series[t] }
                mean /= Double(length)
                for t in 0..<length { series[t] -= mean }
            }
        }
        fftw_execute_dft_r2c(forwardPlan, real, workspace.complex)
        let spectrum = UnsafeMutableRawPointer(workspace.complex).assumingMemoryBound(to: Double.self)
        for j in 0..<nb {
            let c = columns.lowerBound + j
            let w = weights[c]
            if w == 0 { continue }
            let acc = accumulator + groups[c] * bins
            let x = spectrum + 2 * j * bins
            for k in 0..<bins {
                let re = x[2 * k], im = x[2 * k + 1]
                acc[k] += w * (re * re + im * im)
            }
        }
    }

    /// The unbiased correlation `C(k)`, `k = 0...maxLag`, from an accumulated power spectrum
    /// (or cross spectrum, real part).
    public func correlation(fromPower power: [Double]) throws -> [Double] {
        guard power.count == binCount else {
            throw AnalysisError("a power spectrum for this engine has \(binCount) bins, not \(power.count)")
        }
        let input = UnsafeMutableRawPointer(inverseInput).assumingMemoryBound(to: Double.self)
        for k in 0..<binCount {
            input[2 * k] = power[k]
            input[2 * k + 1] = 0
        }
        fftw_execute(inversePlan)
        let scale = 1 / Double(paddedLength)
        return (0...maxLag).map { inverseOutput[$0] * scale / Double(length - $0) }
    }

    /// The unbiased autocorrelation of one series of `length` samples, lags `0...maxLag`.
    public func autocorrelation(_ x: [Double], subtractMean: Bool = false) throws -> [Double] {
        guard x.count == length else { throw AnalysisError("series has \(x.count) samples; the engine expects \(length)") }
        var power = [[Double](repeating: 0, count: binCount)]
        try x.withUnsafeBufferPointer {
            try accumulatePower(matrix: $0, rowStride: 1, columns: 0..<1, weights: [1], groups: [0],
                                subtractMean: subtractMean, into: &power)
        }
        return try correlation(fromPower: power[0])
    }

    /// The unbiased cross-correlation `C_xy(k) = 1/(N−k) Σ_n x(n)·y(n+k)`, lags `0...maxLag`.
    public func crossCorrelation(_ x: [Double], _ y: [Double]) throws -> [Double] {
        guard x.count == length, y.count == length else {
            throw AnalysisError("series have \(x.count) and \(y.count) samples; the engine expects \(length)")
        }
        let w = workspaces[0]
        // x and y each go through the batched plan as its first series.
        func spectrum(of s: [Double]) -> [(Double, Double)] {
            w.real.update(repeating: 0, count: w.realCount)
            for t in 0..<length { w.real[t] = s[t] }
            fftw_execute_dft_r2c(forwardPlan, w.real, w.complex)
            let p = UnsafeMutableRawPointer(w.complex).assumingMemoryBound(to: Double.self)
            return (0..<binCount).map { (p[2 * $0], p[2 * $0 + 1]) }
        }
        let sx = spectrum(of: x), sy = spectrum(of: y)
        w.real.update(repeating: 0, count: w.realCount)
        let input = UnsafeMutableRawPointer(inverseInput).assumingMemoryBound(to: Double.self)
        for k in 0..<binCount {
            // conj(X)·Y transforms back to Σ_n x(n) y(n+k).
            input[2 * k] = sx[k].0 * sy[k].0 + sx[k].1 * sy[k].1
            input[2 * k + 1] = sx[k].0 * sy[k].1 - sx[k].1 * sy[k].0
        }
        fftw_execute(inversePlan)
        let scale = 1 / Double(paddedLength)
        return (0...maxLag).map { inverseOutput[$0] * scale / Double(length - $0) }
    }
}
