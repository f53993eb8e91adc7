import ArgumentParser
import ENINet
import Foundation
import Geometry
import Tensors
import Trajectory

/// `eninet-md bench eninet`: energy+forces time of the reference 'small' and 'md17' networks on
/// aspirin and on ten aspirins 12 Å apart, with 1 and 2 threads, beside the reference code's
/// figures (`shared/eninet-reference/timings-cpu.json`, float32, graph construction excluded).
struct BenchEninet: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "eninet", abstract: "ENINet energy+forces timing.")

    @Option(help: "Folder with eninet-small/eninet-md17 .safetensors and .json (aspirin's geometry is read from eninet-small.json).")
    var reference = "../shared/eninet-reference"

    @Option(help: "Timed repetitions per measurement (the median is reported).")
    var repetitions = 5

    @Flag(help: "Run the network in Double instead of Float.")
    var double = false

    @Option(help: "Measure only these configurations (comma-separated: small, md17).")
    var configs = "small,md17"

    @Option(help: "Time this model file instead of the reference configurations (labelled by its file name).")
    var model: String?

    @Option(help: "Time this structure (first frame, with its cell) instead of aspirin and ten aspirins (labelled by its file name).")
    var structure: String?

    @Option(help: "Thread counts to measure (comma-separated).")
    var threads = "1,2"

    @Flag(help: "Also print, per case, GEMM's share of a 1-thread evaluation and its shapes by time.")
    var gemmShapes = false

    /// The reference code's medians (ms, 1 thread, float32, energy+forces as its forward computes them).
    static let referenceMilliseconds: [String: Double] = [
        "small_aspirin": 25.1, "small_aspirin10": 144, "md17_aspirin": 257, "md17_aspirin10": 2125,
    ]

    func run() throws {
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1") }
        let threadCounts = try commaSeparatedIntegers(threads, option: "--threads", what: "a thread count from 1 to \(ThreadOptions.maximum)", allowed: 1...ThreadOptions.maximum)
        let models: [(label: String, path: String)] = model.map { [(Self.label($0), $0)] }
            ?? configs.split(separator: ",").map { ("\($0)", "\(reference)/eninet-\($0).safetensors") }
        guard !models.isEmpty else { throw ValidationError("--configs lists nothing; give small, md17 or both") }
        for (config, path) in models where model == nil && !FileManager.default.fileExists(atPath: path) {
            throw ValidationError("--configs: no '\(config)' network in \(reference) (\(path) is absent); the reference has small and md17")
        }
        let systems = try benchmarkSystems()
        // The GEMM figure belongs to the reference md17 network on aspirin.
        let timesReferenceCases = model == nil && structure == nil
        print("ENINet energy+forces, \(double ? "Double" : "Float"), median of \(repetitions); machine threads: \(ProcessInfo.processInfo.activeProcessorCount); OpenBLAS core \(TensorThreads.blasCore)")
        var results: [(String, Double)] = []
        var gemmFraction = 0.0
        for (config, path) in models {
            let model = try ENINetModel(contentsOf: path, precision: double ? .double : .float)
            for (name, system) in systems {
                let neighborList = model.makeNeighborList(skin: 0)
                let graph = try model.graph(positions: system.positions, cell: system.cell, neighborList: neighborList)
                // What an MD step adds to the evaluation (the list itself is kept between steps),
                // left out of the figures as the reference's figures leave out its graph.
                var graphTimes: [Double] = []
                for _ in 0..<repetitions {
                    let start = DispatchTime.now().uptimeNanoseconds
                    _ = try model.graph(positions: system.positions, cell: system.cell, neighborList: neighborList)
                    graphTimes.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
                }
                print(String(format: "%-6@ %-10@ graph from the kept neighbour list (not in the figures): %.3f ms, %d spans",
                             config, name, graphTimes.sorted()[graphTimes.count / 2], graph.spanCount))
                for threads in threadCounts {
                    TensorThreads.set(threads)
                    try warmUp { _ = try model.evaluate(atomicNumbers: system.numbers, positions: system.positions, graph: graph) }
                    var times: [Double] = []
                    for _ in 0..<repetitions {
                        let start = DispatchTime.now().uptimeNanoseconds
                        _ = try model.evaluate(atomicNumbers: system.numbers, positions: system.positions, graph: graph)
                        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
                    }
                    let median = times.sorted()[times.count / 2]
                    let key = "\(config)_\(name)"
                    let ref = Self.referenceMilliseconds[key].map { String(format: "%.1f", $0) } ?? "-"
                    print(String(format: "%-6@ %-10@ %d thread%@  %4d atoms %5d edges %6d triplets  %9.2f ms   (reference, 1 thread: %@ ms)",
                                 config, name, threads, threads == 1 ? " " : "s", system.numbers.count, graph.edgeCount,
                                 graph.tripletCount, median, ref))
                    if threads == 1 { results.append((key, median)) }
                }
                if gemmShapes { try printGEMMShapes(model: model, system: system, graph: graph) }
                if config == "md17" && name == "aspirin" && timesReferenceCases {
                    let total = try Self.profiledNanoseconds(model: model, system: system, graph: graph, evaluations: 1)
                    let timeInGEMM = Double(ENINetProfile.gemmNanoseconds) / max(total, 1)
                    let flops = Double(ENINetProfile.gemmFlops)
                    guard let median = results.last(where: { $0.0 == "md17_aspirin" })?.1 else {
                        throw ValidationError("--threads must include 1 for the md17 GEMM figure")
                    }
                    // The issue's figure: the model's GEMM FLOPs over the whole evaluation time,
                    // against the large square GEMM of `bench tensors`. Both are timed the way
                    // `bench tensors` times its shapes (the best time in thread CPU seconds over a
                    // second), in alternating rounds, so that a busy spell on the shared machine
                    // lowers neither side alone. The median's figure is printed beside it.
                    let tensorsBench = try BenchTensors.parse([])
                    var large = 0.0, bestSeconds = Double.infinity
                    for _ in 0..<3 {
                        large = max(large, try tensorsBench.gemmRate(rows: 1024, inner: 1024, outer: 1024, duration: 1))
                        bestSeconds = min(bestSeconds, try tensorsBench.bestTime(duration: 1) {
                            _ = try model.evaluate(atomicNumbers: system.numbers, positions: system.positions, graph: graph)
                        })
                    }
                    let achieved = flops / bestSeconds * 1e-9
                    let achievedAtMedian = flops / (median * 1e-3) * 1e-9
                    gemmFraction = achieved / large
                    print(String(format: "md17 aspirin, 1 thread: %.2f GFLOP in %d GEMM calls (%.0f%% of the time); large GEMM %.1f GFLOP/s",
                                 flops * 1e-9, ENINetProfile.gemmCalls, 100 * timeInGEMM, large))
                    print(String(format: "  over the whole evaluation: %.1f GFLOP/s at its best time %.2f ms (fraction %.3f, the RESULT), %.1f GFLOP/s at the median %.2f ms (fraction %.3f)",
                                 achieved, bestSeconds * 1e3, gemmFraction, achievedAtMedian, median, achievedAtMedian / large))
                    print("  GEMM shapes taking the most time (m × n × k, op(B), C):")
                    Self.printShapeTable(evaluations: 1, rows: 12)
                }
            }
        }
        for (key, value) in results { print(String(format: "RESULT eninet_ef_ms_%@ %.3f ms", key, value)) }
        if models.contains(where: { $0.label == "md17" }) && timesReferenceCases {
            print(String(format: "RESULT eninet_gemm_fraction_md17 %.3f ratio", gemmFraction))
        }
    }

    /// GEMM's share of ten 1-thread evaluations and the shapes that take its time: how much of
    /// a case's time a faster GEMM could save at most, and which shapes run below the large-GEMM rate.
    private func printGEMMShapes(model: ENINetModel, system: (numbers: [Int], positions: [Vec3], cell: Cell?), graph: ENINetGraph) throws {
        let evaluations = 10
        let total = try Self.profiledNanoseconds(model: model, system: system, graph: graph, evaluations: evaluations)
        print(String(format: "  GEMM, 1 thread: %.1f MFLOP in %d calls per evaluation, %.2f of %.2f ms (%.0f%%)",
                     Double(ENINetProfile.gemmFlops) / Double(evaluations) * 1e-6, ENINetProfile.gemmCalls / evaluations,
                     Double(ENINetProfile.gemmNanoseconds) / Double(evaluations) * 1e-6, total / Double(evaluations) * 1e-6,
                     100 * Double(ENINetProfile.gemmNanoseconds) / total))
        Self.printShapeTable(evaluations: evaluations, rows: 16)
    }

    /// The wall-clock nanoseconds of `evaluations` 1-thread evaluations, with ``ENINetProfile``
    /// reset before them and holding their GEMM tallies after.
    private static func profiledNanoseconds(model: ENINetModel, system: (numbers: [Int], positions: [Vec3], cell: Cell?),
                                            graph: ENINetGraph, evaluations: Int) throws -> Double {
        TensorThreads.set(1)
        ENINetProfile.reset()
        ENINetProfile.isEnabled = true
        defer { ENINetProfile.isEnabled = false }
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<evaluations { _ = try model.evaluate(atomicNumbers: system.numbers, positions: system.positions, graph: graph) }
        return Double(DispatchTime.now().uptimeNanoseconds - start)
    }

    /// The `rows` GEMM shapes of ``ENINetProfile`` that took the most time, per evaluation of the
    /// `evaluations` profiled: calls, milliseconds and GFLOP/s.
    private static func printShapeTable(evaluations: Int, rows: Int) {
        for (shape, tally) in ENINetProfile.shapes.sorted(by: { $0.value.nanoseconds > $1.value.nanoseconds }).prefix(rows) {
            print(String(format: "    %5d × %4d × %4d  %@ %@  %3d calls  %7.3f ms  %6.1f GFLOP/s", shape.m, shape.n, shape.k,
                         shape.transposeB ? "Bᵀ" : "B ", shape.accumulates ? "C+=" : "C= ", tally.calls / evaluations,
                         Double(tally.nanoseconds) / Double(evaluations) * 1e-6, Double(tally.flops) / Double(max(tally.nanoseconds, 1))))
        }
    }

    /// The structures to time: `--structure`, or aspirin and ten aspirins 12 Å apart.
    private func benchmarkSystems() throws -> [(String, (numbers: [Int], positions: [Vec3], cell: Cell?))] {
        if let structure {
            let s = try StructureFile.readFirst(path: structure)
            return [(Self.label(structure), (s.atomicNumbers, s.positions, s.cell))]
        }
        let aspirin = try Self.aspirin(jsonPath: reference + "/eninet-small.json")
        var ten = (numbers: [Int](), positions: [Vec3](), cell: Cell?.none)
        for k in 0..<10 {
            ten.numbers += aspirin.numbers
            ten.positions += aspirin.positions.map { $0 + Vec3(12 * Double(k), 0, 0) }
        }
        return [("aspirin", (aspirin.numbers, aspirin.positions, nil)), ("aspirin10", ten)]
    }

    /// A file's base name as a RESULT-line label (letters, digits and underscores).
    static func label(_ path: String) -> String {
        let base = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        return String(base.map { $0.isLetter || $0.isNumber ? $0 : "_" })
    }

    static func aspirin(jsonPath: String) throws -> (numbers: [Int], positions: [Vec3]) {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: jsonPath)) } catch {
            throw ValidationError("\(jsonPath): cannot read (\(error.localizedDescription)); pass --reference <folder>")
        }
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let molecules = root["molecules"] as? [[String: Any]],
              let aspirin = molecules.first(where: { $0["name"] as? String == "aspirin" }),
              let numbers = aspirin["numbers"] as? [Int],
              let rows = aspirin["positions"] as? [[Double]], rows.count == numbers.count, rows.allSatisfy({ $0.count == 3 }) else {
            throw ValidationError("\(jsonPath): no 'aspirin' case with numbers and positions")
        }
        return (numbers, rows.map { Vec3(Double(Float($0[0])), Double(Float($0[1])), Double(Float($0[2]))) })
    }
}
