import ArgumentParser
import Foundation
import Tensors

/// `eninet-md bench tensors`: GEMM throughput at the shapes ENINet uses against a large square
/// GEMM, the per-operation cost of the autodiff graph, and resident memory over repeated passes.
struct BenchTensors: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tensors", abstract: "GEMM throughput and autodiff overhead.")

    @Option(parsing: .unconditional, help: "Threads for OpenBLAS and the element loops. One by default: on a shared machine a second thread mostly measures the neighbours.")
    var threads: Int = 1

    @Option(parsing: .unconditional, help: "OpenBLAS threads, if different from --threads.")
    var blasThreads: Int?

    @Option(parsing: .unconditional, help: "Seconds spent timing each GEMM shape.")
    var seconds: Double = 0.15

    @Flag(help: "Skip the memory loop of 10,000 passes.")
    var skipMemory = false

    @Flag(help: "Skip the GEMM table (graph overhead, layer timings and memory only).")
    var skipGEMM = false

    @Flag(help: "Skip the ENINet-like layer timings.")
    var skipLayer = false

    @Option(help: "Only these row counts in the GEMM table (comma-separated).")
    var rows: String?

    /// With one thread, times are the calling thread's CPU time (immune to being descheduled on a
    /// shared machine); with more, wall-clock time.
    var useThreadClock: Bool { threads == 1 && (blasThreads ?? 1) == 1 }

    func validate() throws {
        try ThreadOptions.check(threads)
        if let blasThreads { try ThreadOptions.check(blasThreads, option: "--blas-threads") }
        // inf never returned; nan and 0 timed nothing.
        guard seconds > 0, seconds <= 3600 else { throw ValidationError("--seconds must be above 0 and at most 3600; got \(seconds)") }
        if let rows {
            let counts = rows.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !counts.isEmpty, counts.allSatisfy({ ($0 ?? 0) >= 1 && ($0 ?? 0) <= 1_000_000 }) else {
                throw ValidationError("--rows must list row counts from 1 to 1000000, comma-separated; got '\(rows)'")
            }
        }
    }

    func run() throws {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        TensorThreads.set(blas: blasThreads ?? threads, loops: threads)
        print("cores \(cores), BLAS threads \(TensorThreads.blasCount), loop threads \(TensorThreads.count), OpenBLAS core \(TensorThreads.blasCore); clock: \(useThreadClock ? "thread CPU time" : "wall")")

        var large = 0.0, worst = Double.infinity
        if !skipGEMM { (large, worst) = try gemmTable() }

        let (forward, backward, inference) = try chainOverhead()
        print(String(format: "\nchain of 1,000 tiny ops: forward %.3f us/op, backward %.3f us/op (forward + backward %.3f), no-grad forward %.3f us/op",
                     forward, backward, forward + backward, inference))

        if !skipLayer { try layerTimings() }
        if !skipMemory {
            // Start from an empty pool so that the resident figures show the loop's own needs.
            BufferPool.shared.drain()
            try memoryLoop()
        }

        if !skipGEMM {
            print(String(format: "RESULT gemm_large_gflops %.1f GFLOP/s", large))
            print(String(format: "RESULT gemm_eninet_fraction %.3f ratio", worst))
        }
        print(String(format: "RESULT op_overhead_us %.3f us", forward + backward))
    }

    /// Seconds per call of `body`, best of repeated batches for `duration` seconds.
    func bestTime(duration: Double, _ body: () throws -> Void) rethrows -> Double {
        try body()
        var best = Double.infinity
        var reps = 1
        let deadline = Date().addingTimeInterval(duration)
        repeat {
            let w0 = DispatchTime.now().uptimeNanoseconds, c0 = threadCPUSeconds()
            for _ in 0..<reps { try body() }
            let wall = Double(DispatchTime.now().uptimeNanoseconds - w0) * 1e-9
            let elapsed = useThreadClock ? threadCPUSeconds() - c0 : wall
            best = min(best, elapsed / Double(reps))
            if wall < 2e-3 { reps *= 2 }
        } while Date() < deadline
        return best
    }

    /// GFLOP/s of `[rows, inner] · Wᵀ` with W `[outer, inner]` (as ``linear`` runs it).
    func gemmRate(rows: Int, inner: Int, outer: Int, duration: Double) throws -> Double {
        var rng = BenchRandom(state: UInt64(rows * 131 + inner * 7 + outer))
        let a = Tensor<Float>.randomUniform([rows, inner], in: -1...1, using: &rng)
        let b = Tensor<Float>.randomUniform([outer, inner], in: -1...1, using: &rng)
        let t = try bestTime(duration: duration) { _ = try matmul(a, b, transposeB: true) }
        return 2.0 * Double(rows) * Double(inner) * Double(outer) / t * 1e-9
    }

    /// The ENINet shapes against the large square GEMM. Returns the large figure and the smallest
    /// ratio over shapes with at least 400 rows.
    func gemmTable() throws -> (Double, Double) {
        // Aspirin-sized: atoms, atom vectors (atoms×3), edges, edge vectors (edges×3), triplets.
        // Triplet vectors are only combined elementwise, never through a linear map.
        let rowCounts = rows.map { $0.split(separator: ",").compactMap { Int($0) } } ?? [21, 63, 420, 1260, 8000]
        var shapes: [(rows: Int, inF: Int, outF: Int)] = []
        for rows in rowCounts {
            for c in [32, 64, 128, 256] {
                for (inF, outF) in [(c, c), (2 * c, c), (c, 3 * c)] { shapes.append((rows, inF, outF)) }
            }
        }
        // Three rounds, each the large GEMM and then every shape, and the best of the three for
        // each: the large figure and the shapes are treated alike, so that a busy minute on the
        // shared machine lowers neither side alone.
        var large = 0.0
        var best = [Double](repeating: 0, count: shapes.count)
        for _ in 0..<3 {
            large = max(large, try gemmRate(rows: 1024, inner: 1024, outer: 1024, duration: 4 * seconds))
            for (index, shape) in shapes.enumerated() {
                best[index] = max(best[index], try gemmRate(rows: shape.rows, inner: shape.inF, outer: shape.outF, duration: seconds))
            }
        }
        let rates = zip(shapes, best).map { (rows: $0.rows, inF: $0.inF, outF: $0.outF, rate: $1) }
        print(String(format: "large GEMM 1024x1024x1024 (Float), best of three: %.1f GFLOP/s", large))
        print("\nENINet shapes: x[rows, in] · Wᵀ, W stored [out, in] as linear() runs them")
        print("   rows    in   out   GFLOP/s  of large")
        var worst = Double.infinity, worstShape = ""
        for r in rates {
            let fraction = r.rate / large
            print(String(format: "%7d %5d %5d %9.1f %9.2f", r.rows, r.inF, r.outF, r.rate, fraction))
            if r.rows >= 400 && fraction < worst {
                worst = fraction
                worstShape = "\(r.rows)x\(r.inF)->\(r.outF)"
            }
        }
        print(String(format: "smallest fraction over shapes with >= 400 rows: %.2f (%@)", worst, worstShape))
        return (large, worst)
    }

    /// Microseconds per op of a chain of 1,000 ops on a 4-element tensor: building the graph,
    /// differentiating it and freeing it, and evaluating without a graph. Best of 40 runs.
    func chainOverhead() throws -> (Double, Double, Double) {
        let x = try Tensor<Float>(shape: [4], scalars: [0.1, 0.2, 0.3, 0.4], requiresGrad: true)
        let c = try Tensor<Float>(shape: [4], scalars: [0.5, 0.25, 0.125, 1])
        func chain() throws -> Tensor<Float> {
            var y = x
            for i in 0..<250 {
                y = try y * c
                y = y + 0.01
                y = y.silu()
                y = i % 2 == 0 ? try y + x : try y - c
            }
            return y.sum()
        }
        func now() -> Double { useThreadClock ? threadCPUSeconds() : Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }
        var bestForward = Double.infinity, bestBackward = Double.infinity, bestInference = Double.infinity
        for _ in 0..<(skipGEMM && skipLayer && skipMemory ? 400 : 40) {
            let t0 = now()
            var y: Tensor<Float>? = try chain()
            let t1 = now()
            if let root = y { _ = try grad(of: root, wrt: [x]) }
            y = nil  // the graph's teardown counts as part of the backward
            let t2 = now()
            _ = try GradMode.withoutGradients { try chain() }
            let t3 = now()
            bestForward = min(bestForward, (t1 - t0) * 1e6 / 1001)
            bestBackward = min(bestBackward, (t2 - t1) * 1e6 / 1001)
            bestInference = min(bestInference, (t3 - t2) * 1e6 / 1001)
        }
        return (bestForward, bestBackward, bestInference)
    }

    /// 10,000 forward/backward passes of the chain; resident memory must stay flat.
    func memoryLoop() throws {
        let x = try Tensor<Float>(shape: [64, 32], scalars: (0..<2048).map { Float($0 % 7) * 0.1 }, requiresGrad: true)
        let w = try Tensor<Float>(shape: [32, 32], scalars: (0..<1024).map { Float($0 % 5) * 0.01 }, requiresGrad: true)
        print("\nresident memory over 10,000 forward/backward passes (second order):")
        for i in 1...10_000 {
            let h = try linear(x, weight: w).silu()
            let e = try (h * h).sum()
            let g = try grad(of: e, wrt: [x], createGraph: true)[0]
            _ = try grad(of: g.square().sum(), wrt: [w])
            if i == 1 || i % 2500 == 0 {
                let rss = residentKiB().map { "\($0) KiB" } ?? "n/a"
                print("  pass \(i): resident \(rss), tensor memory in use \(BufferPool.shared.bytesInUse / 1024) KiB, pooled \(BufferPool.shared.bytesPooled / 1024) KiB")
            }
        }
    }

    func residentKiB() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE))) / 1024
    }

    /// One ENINet-like interaction (three-body block on 8,000 triplets, two-body block on 400
    /// edges, 21 atoms, 64 channels) built from Tensors operations: the op mix of the
    /// differentiable model. Times the energy, the forces, and a training step on a force loss.
    func layerTimings() throws {
        var rng = BenchRandom(state: 2024)
        let atoms = 21, edges = 420, triplets = 8000, f = 64
        func indices(_ n: Int, below: Int) -> [Int32] { (0..<n).map { _ in Int32.random(in: 0..<Int32(below), using: &rng) } }
        let src = indices(edges, below: atoms), dst = indices(edges, below: atoms)
        let tin = indices(triplets, below: edges), tout = indices(triplets, below: edges)
        let params = ParameterSet<Float>()
        func weight(_ name: String, _ out: Int, _ inF: Int) throws -> Tensor<Float> {
            try params.add(name, Tensor<Float>.randomNormal([out, inF], standardDeviation: 1 / Float(inF).squareRoot(), using: &rng))
        }
        let wIn = try weight("in", f, f), vIn = try weight("vin", f, f), wEn = try weight("en", f, 2 * f)
        let wTp = try weight("tp", f, f), g1 = try weight("g1", f, f), g2 = try weight("g2", f, f)
        let wTv = try weight("tv", 3 * f, f), wOut = try weight("out", f, 2 * f), vOut = try weight("vout", f, f)
        let wNn = try weight("nn", f, 2 * f), wEv = try weight("ev", 3 * f, f), wReadout = try weight("readout", 1, 2 * f)
        let bias = try params.add("bias", Tensor<Float>.zeros([f]))
        let positions = Tensor<Float>.randomUniform([atoms, 3], in: 0...4, using: &rng, requiresGrad: true)
        let ts0 = Tensor<Float>.randomUniform([triplets, f], in: -1...1, using: &rng)
        let tv0 = Tensor<Float>.randomUniform([triplets, 3, f], in: -1...1, using: &rng)
        let ns = Tensor<Float>.randomUniform([atoms, f], in: -1...1, using: &rng)

        func energy() throws -> Tensor<Float> {
            let d = try positions.gather(rows: dst) - positions.gather(rows: src) + 0.5    // [E, 3]
            let r = try d.norm(axis: 1, keepingDimensions: true)
            let u = try d / r
            let cut = ((r * 0.5).cos() + 1) * 0.5
            let es = try (r - Tensor<Float>.ones([f])).square().exp() * cut                // [E, F]
            let ev = try (u * cut).unsqueezed(2).expanded(to: [edges, 3, f])               // [E, 3, F]
            let hs = try linear(es, weight: wIn, bias: bias).silu()
            let hv = try linear(ev, weight: vIn)
            let pair = try concat([hs.gather(rows: tin), hs.gather(rows: tout)], axis: 1)
            let m = try linear(pair, weight: wEn, bias: bias) * linear(ts0, weight: wTp, bias: bias)
            let dts = try linear(linear(m, weight: g1, bias: bias).silu(), weight: g2, bias: bias) * m.silu()
            let abc = try linear(dts, weight: wTv).split(axis: 1, parts: 3).map { try $0.unsqueezed(1) }
            let dtv = try tv0 * abc[0] + hv.gather(rows: tin) * abc[1] + abc[2]
            let sumS = try dts.scatterAdd(rows: tout, count: edges)
            let sumV = try dtv.scatterAdd(rows: tout, count: edges)
            let es2 = try (linear(concat([sumS, hv.norm(axis: 1)], axis: 1), weight: wOut) + es).layerNorm(weight: nil, bias: nil)
            let ev2 = try linear(sumV, weight: vOut) + ev
            let m2 = try linear(concat([ns.gather(rows: src), ns.gather(rows: dst)], axis: 1), weight: wNn) * es2
            let abc2 = try linear(m2.silu(), weight: wEv).split(axis: 1, parts: 3).map { try $0.unsqueezed(1) }
            let dev = try ev2 * abc2[0] + u.unsqueezed(2) * abc2[1]
            let aggS = try m2.scatterAdd(rows: dst, count: atoms)
            let aggV = try dev.scatterAdd(rows: dst, count: atoms)
            let features = try concat([aggS, aggV.norm(axis: 1)], axis: 1)
            return try linear(features, weight: wReadout).sum()
        }
        let reference = Tensor<Float>.zeros([atoms, 3])
        // Wall-clock and main-thread CPU time (the latter is steadier on a shared machine).
        func best(_ body: () throws -> Void) rethrows -> (Double, Double) {
            var wall = Double.infinity, cpu = Double.infinity
            for _ in 0..<8 {
                let t0 = DispatchTime.now().uptimeNanoseconds, c0 = threadCPUSeconds()
                try body()
                wall = min(wall, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-6)
                cpu = min(cpu, (threadCPUSeconds() - c0) * 1e3)
            }
            return (wall, cpu)
        }
        let inference = try best { _ = try GradMode.withoutGradients { try energy() } }
        let forces = try best { _ = try grad(of: energy(), wrt: [positions]) }
        let training = try best {
            let f = try grad(of: energy(), wrt: [positions], createGraph: true)[0]
            let loss = try (f - reference).square().sum()
            _ = try grad(of: loss, wrt: params.tensors)
        }
        print(String(format: "\nENINet-like interaction (21 atoms, 420 edges, 8,000 triplets, 64 channels, Float):"))
        print(String(format: "  energy (no graph) %.2f ms, energy + forces %.2f ms, force-loss training step %.2f ms (wall)",
                     inference.0, forces.0, training.0))
        print(String(format: "  energy (no graph) %.2f ms, energy + forces %.2f ms, force-loss training step %.2f ms (main-thread CPU)",
                     inference.1, forces.1, training.1))
    }
}

/// A small seeded generator (SplitMix64) so that the benchmark inputs are the same every run.
struct BenchRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// CPU seconds used by the calling thread.
func threadCPUSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}
