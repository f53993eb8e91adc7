import Analysis
import ArgumentParser
import Foundation
import Geometry
import Trajectory

/// `eninet-md bench analysis`: the VDOS of a large trajectory must cost less than reading it.
struct BenchAnalysis: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analysis",
        abstract: "VDOS time against trajectory read time.",
        discussion: """
        Writes a synthetic AMBER NetCDF trajectory with velocities (default 10,000 frames × \
        1,000 atoms, 1 fs apart) to a temporary directory, times reading its velocities back \
        (one bulk read, as `analyze vdos` does; the file is in the page cache), times the \
        VDOS with the `analyze vdos` defaults (T_corr 2000 fs, Hann, per-element curves, \
        padding to N + T_corr; error-bar blocks as analyze vdos chooses them, none for the \
        default size: --blocks 4 adds them), checks the spectrum, removes the file, and prints \
        `RESULT vdos_over_read_ratio <v> ratio`.
        """)

    @Option(parsing: .unconditional, help: "Frames in the synthetic trajectory.")
    var frames: Int = 10_000

    @Option(parsing: .unconditional, help: "Atoms in the synthetic trajectory.")
    var atoms: Int = 1_000

    @Option(parsing: .unconditional, help: "Worker threads for the correlation (1: none).")
    var threads: Int = 1

    @Option(parsing: .unconditional, help: "Blocks for error bars (default: as analyze vdos, 4 when each block is at least 2·T_corr long, else none).")
    var blocks: Int?

    @Flag(help: "Plan FFTs with FFTW_MEASURE instead of FFTW_ESTIMATE (planning time included).")
    var measure = false

    @Flag(name: .customLong("twice-length-padding"), help: "Pad series to 2N instead of N + T_corr (both exact for the lags kept).")
    var twiceLengthPadding = false

    func validate() throws {
        try ThreadOptions.check(threads)
        guard frames >= 100, atoms >= 1 else { throw ValidationError("need at least 100 frames and 1 atom") }
        // The synthetic file holds positions and velocities in single precision: 24 bytes per
        // atom and frame (10⁸ × 10⁸ filled /tmp and was left there).
        guard frames <= 10_000_000, atoms <= 10_000_000, frames * atoms <= 500_000_000 else {
            throw ValidationError("--frames × --atoms must be at most 5·10⁸ (a 12 GB file); got \(frames) × \(atoms)")
        }
    }

    func run() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("eninet-bench-analysis-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("synthetic.nc").path
        let dt = 1.0

        // Synthetic velocities: each atom carries two modes (1000 and 3000 cm⁻¹, by atom kind)
        // with random phases, so the spectrum has known peaks to check.
        print("threads available: \(ProcessInfo.processInfo.activeProcessorCount); correlation threads: \(threads)")
        print("writing \(frames) frames × \(atoms) atoms with velocities to \(path)")
        var rng = SplitMix(seed: 2024)
        let symbols: [String] = (0..<atoms).map { i in i % 3 == 0 ? "C" : "H" }
        let omegas = [1000.0, 3000.0].map { 2 * Double.pi * SpectralUnits.speedOfLight * $0 }
        var phases: [Double] = []
        for _ in 0..<(atoms * 3) { phases.append(2 * Double.pi * rng.uniform()) }
        var amplitudes: [Double] = []
        for _ in 0..<atoms { amplitudes.append(0.01 * (0.5 + rng.uniform())) }
        let writeStart = Date()
        let writer = try AmberTrajectoryWriter(path: path, atomCount: atoms, velocities: true, title: "eninet-md bench analysis")
        var positions = [Vec3](repeating: .zero, count: atoms)
        var velocities = [Vec3](repeating: .zero, count: atoms)
        for f in 0..<frames {
            let t = Double(f) * dt
            for i in 0..<atoms {
                let w = omegas[i % 3 == 0 ? 0 : 1]
                let a = amplitudes[i]
                var v = Vec3.zero
                for k in 0..<3 {
                    let phase: Double = w * t + phases[3 * i + k]
                    v[k] = -a * w * sin(phase)
                }
                velocities[i] = v
                let x = Double(i % 10), y = Double((i / 10) % 10), z = Double(i / 100)
                positions[i] = 3 * Vec3(x, y, z)
            }
            try writer.write(time: t, positions: positions, velocities: velocities)
        }
        try writer.close()
        let fileSize = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        print(String(format: "wrote %.1f MB in %.2f s", Double(fileSize) / 1e6, Date().timeIntervalSince(writeStart)))

        // Timed twice: from disk (the file's pages evicted from the page cache first, as for a
        // trajectory written by an earlier run) and again from the page cache.
        let evicted = evictFromPageCache(path)
        var readStart = Date()
        _ = try TrajectoryFile.load(path: path, request: LoadRequest(velocities: true))
        let diskReadTime = Date().timeIntervalSince(readStart)
        readStart = Date()
        let data = try TrajectoryFile.load(path: path, request: LoadRequest(velocities: true))
        let cachedReadTime = Date().timeIntervalSince(readStart)
        let readTime = evicted ? diskReadTime : cachedReadTime
        let note = evicted ? "" : " (could not evict the file from the page cache: a cached read)"
        print("read velocities from disk\(note): " + String(format: "%.3f s; again from the page cache: %.3f s", diskReadTime, cachedReadTime))
        let spacing = try data.frameSpacing()
        let (v, n) = try data.velocitySeries(fromPositions: false, frameSpacing: spacing)
        let masses = try data.masses(symbols: symbols)

        let maxLag = SpectralOptions.defaultMaxLag(frames: n, frameSpacing: spacing)
        let blocks = self.blocks ?? SpectralOptions.defaultBlocks(frames: n, maxLag: maxLag)
        let options = VibrationalDensityOfStates.Options(
            spectral: SpectralOptions(maxLag: maxLag, window: .hann, blocks: blocks, threads: threads,
                                      planning: measure ? .measure : .estimate,
                                      padding: twiceLengthPadding ? .twiceLength : .exactToMaxLag,
                                      maxFrequency: min(4500, SpectralUnits.nyquist(frameSpacing: spacing))))
        let vdosStart = Date()
        let result = try VibrationalDensityOfStates.compute(velocities: v, atomCount: atoms, frameSpacing: spacing, masses: masses,
                                                            symbols: symbols, options: options)
        let vdosTime = Date().timeIntervalSince(vdosStart)
        let s = result.spectrum
        let padded = CorrelationEngine.fastLength(atLeast: twiceLengthPadding ? 2 * n : n + maxLag)
        print(String(format: "VDOS of %d series × %d samples (FFT length %d, %d blocks): %.3f s", 3 * atoms, n, padded, blocks, vdosTime))
        let low = s.peak(of: "vdos_C", in: 500...2000) ?? 0, high = s.peak(of: "vdos_H", in: 2000...4000) ?? 0
        print(String(format: "check: peaks %.1f and %.1f cm-1 (synthetic 1000 and 3000, resolution %.1f); integral %.2f of %d dof; T_kin %.1f K",
                     low, high, s.resolution, s.integral(of: "vdos_total") ?? 0, result.degreesOfFreedom, result.kineticTemperature))
        guard abs(low - 1000) <= s.resolution, abs(high - 3000) <= s.resolution else {
            throw AnalysisError("benchmark VDOS peaks \(low), \(high) cm-1 are not at 1000 and 3000 cm-1")
        }
        print(String(format: "RESULT vdos_seconds %.4f s", vdosTime))
        print(String(format: "RESULT read_seconds %.4f s", readTime))
        print(String(format: "RESULT cached_read_seconds %.4f s", cachedReadTime))
        print(String(format: "RESULT vdos_over_cached_read_ratio %.4f ratio", vdosTime / cachedReadTime))
        print(String(format: "RESULT vdos_over_read_ratio %.4f ratio", vdosTime / readTime))
    }
}

/// Writes the file's dirty pages to disk and asks the kernel to drop its cached pages, so the
/// next read comes from the disk. Returns whether the kernel accepted.
private func evictFromPageCache(_ path: String) -> Bool {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    guard fsync(fd) == 0 else { return false }
    return posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED)) == 0
}

/// A seeded generator for the synthetic data (SplitMix64).
private struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
