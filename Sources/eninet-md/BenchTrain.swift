import ArgumentParser
import ENINet
import Foundation
import Tensors
import Training

/// `eninet-md bench train`: one training step (energy + force loss, the double backward through
/// the forces, AdamW) of the reference 'small' network on aspirin, batches of 1 and 8, beside the
/// reference code's figures (float32, 1 thread).
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "ENINet training-step timing.")

    @Option(help: "Folder with eninet-small.safetensors and eninet-small.json.")
    var reference = "../shared/eninet-reference"

    @Option(help: "Frames with energies and forces (extended XYZ; default ../shared/data/xtb/aspirin-gfn2-500K.extxyz, and when that is absent, the aspirin case of eninet-small.json with zero labels).")
    var data: String?

    @Option(help: "Timed steps per batch size (the median is reported).")
    var repetitions = 5

    @Option(help: "Threads.")
    var threads = 1

    @Option(help: "Batch sizes to time (comma-separated; 1 to 8).")
    var batches = "1,8"

    @Flag(help: "Run the network in Double instead of Float.")
    var double = false

    /// The reference code's training-step medians (ms, float32, 1 thread).
    static let referenceMilliseconds = [1: 61.0, 8: 267.0]
    /// The reference code's energy + forces (`create_graph=True`, ms, float32, 1 thread) for the
    /// same batches: aspirin, and eight aspirins interpolated between its one and ten (25.1 and
    /// 144 ms, `timings-cpu.json`).
    static let referenceEnergyForceMilliseconds = [1: 25.1, 8: 25.1 + 7 * (144 - 25.1) / 9]

    func validate() throws { try ThreadOptions.check(threads) }

    func run() throws {
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1") }
        let batchSizes = try commaSeparatedIntegers(batches, option: "--batches", what: "a batch size from 1 to 8", allowed: 1...8)
        TensorThreads.set(threads)
        let frames = try aspirinFrames(count: 8)
        print("ENINet training step (E + F loss, double backward, AdamW), 'small' on aspirin, \(double ? "Double" : "Float"), median of \(repetitions); threads \(threads) (machine: \(ProcessInfo.processInfo.activeProcessorCount)); OpenBLAS core \(TensorThreads.blasCore)")
        let results = double ? try measure(Double.self, frames, batchSizes) : try measure(Float.self, frames, batchSizes)
        for r in results {
            let reference = Self.referenceMilliseconds[r.batch] ?? .nan
            let beside = reference.isNaN ? "(the reference was timed at batches 1 and 8 only)"
                : String(format: "(reference: %.0f ms; goal: %.1f ms)", reference, reference / 10)
            print(String(format: "batch %d: %9.2f ms per step   %@", r.batch, r.step, beside))
            // A step differentiates the forces once more, so it costs a multiple of an energy and
            // force evaluation of the same batch: the reference's own steps take about 2.3 times
            // its evaluations, and a step as lean as the inference path would still be about that
            // multiple of it.
            let referenceEvaluation = Self.referenceEnergyForceMilliseconds[r.batch].map {
                String(format: "; reference: %.0f ms (%.2f times)", $0, reference / $0)
            } ?? ""
            print(String(format: "         energy + forces of the batch: %.2f ms on the inference path (the step is %.1f times that), %.2f ms through Tensors (%.1f times)%@",
                             r.inference, r.step / r.inference, r.tensors, r.step / r.tensors, referenceEvaluation))
        }
        for r in results { print(String(format: "RESULT train_step_ms_small_aspirin_b%d %.3f ms", r.batch, r.step)) }
        for r in results { print(String(format: "RESULT train_batch_ef_ms_small_aspirin_b%d %.3f ms", r.batch, r.inference)) }
    }

    /// Per batch size, medians over interleaved repetitions: the training step, and energy +
    /// forces of the same batch on the inference path and through `Tensors` (no graph kept).
    private func measure<T: ENINetFloat>(_: T.Type, _ frames: [TrainingFrame], _ batchSizes: [Int]) throws
        -> [(batch: Int, step: Double, inference: Double, tensors: Double)] {
        let file = try ENINetModelFile(contentsOf: reference + "/eninet-small.safetensors")
        let model = try ENINetDifferentiableModel<T>(file: file)
        let inference = try ENINetModel(file: file, precision: T.self == Double.self ? .double : .float)
        let optimizer = Adam<T>.adamW(parameters: model.parameters.tensors, learningRate: 1e-4)
        let weights = LossWeights(energy: 1, forces: 10, dipole: 0)
        let gradient = BatchGradient(model: model, workers: threads)
        let prepared = try frames.map { try PreparedFrame($0, configuration: model.configuration) }
        var out: [(batch: Int, step: Double, inference: Double, tensors: Double)] = []
        for b in batchSizes {
            let frames = Array(prepared.prefix(b))
            let batch = try TrainingBatch(frames)
            // The step `train` takes: with several threads, the batch's structures are shared
            // among them (`BatchGradient`).
            func step() throws {
                let gradients = try gradient.evaluate(frames, weights: weights).gradients
                try optimizer.step(gradients: clipGradientNorm(gradients, maxNorm: 10).gradients)
            }
            func evaluate() throws {
                _ = try inference.evaluate(atomicNumbers: batch.atomicNumbers, positions: batch.positions, graph: batch.graph)
            }
            func evaluateThroughTensors() throws { _ = try model.loss(on: batch, weights: weights, differentiable: false) }
            // Warm-up: buffer pool, first-touch pages, OpenBLAS's start (`warmUp`).
            try warmUp { try step(); try evaluate(); try evaluateThroughTensors() }
            var steps: [Double] = [], evaluations: [Double] = [], tensorEvaluations: [Double] = []
            func milliseconds(_ body: () throws -> Void) rethrows -> Double {
                let start = DispatchTime.now().uptimeNanoseconds
                try body()
                return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
            }
            for _ in 0..<repetitions {
                steps.append(try milliseconds(step))
                evaluations.append(try milliseconds(evaluate))
                tensorEvaluations.append(try milliseconds(evaluateThroughTensors))
            }
            print(String(format: "batch %d: %d atoms, %d edges, %d triplets", b, batch.positions.count, batch.graph.edgeCount, batch.graph.tripletCount))
            func median(_ x: [Double]) -> Double { x.sorted()[x.count / 2] }
            out.append((b, median(steps), median(evaluations), median(tensorEvaluations)))
        }
        return out
    }

    private func aspirinFrames(count: Int) throws -> [TrainingFrame] {
        // A --data file that is missing is an error; only the default may be absent. The whole
        // file is read (cutting it at 23 lines per frame, as for aspirin, broke other molecules).
        let path = data ?? "../shared/data/xtb/aspirin-gfn2-500K.extxyz"
        if data != nil || FileManager.default.fileExists(atPath: path) {
            let frames = try ExtendedXYZDataset.read(path: path)
            guard frames.count >= count else { throw ValidationError("\(path): \(frames.count) frames, fewer than the batch of \(count)") }
            return Array(frames.prefix(count))
        }
        let aspirin = try BenchEninet.aspirin(jsonPath: reference + "/eninet-small.json")
        return (0..<count).map { k in
            TrainingFrame(atomicNumbers: aspirin.numbers, positions: aspirin.positions.map { $0 * (1 + 0.001 * Double(k)) }, energy: 0,
                          forces: aspirin.positions.map { _ in .zero }, index: k)
        }
    }
}
