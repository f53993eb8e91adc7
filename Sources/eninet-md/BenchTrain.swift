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

    @Option(help: "Aspirin frames with energies and forces (extended XYZ); when absent, the aspirin case of eninet-small.json with zero labels.")
    var data = "../shared/data/xtb/aspirin-gfn2-500K.extxyz"

    @Option(help: "Timed steps per batch size (the median is reported).")
    var repetitions = 5

    @Option(help: "Threads.")
    var threads = 1

    @Flag(help: "Run the network in Double instead of Float.")
    var double = false

    /// The reference code's training-step medians (ms, float32, 1 thread).
    static let referenceMilliseconds = [1: 61.0, 8: 267.0]

    func run() throws {
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1") }
        TensorThreads.set(threads)
        let frames = try aspirinFrames(count: 8)
        print("ENINet training step (E + F loss, double backward, AdamW), 'small' on aspirin, \(double ? "Double" : "Float"), median of \(repetitions); threads \(threads) (machine: \(ProcessInfo.processInfo.activeProcessorCount)); OpenBLAS core \(TensorThreads.blasCore)")
        let results = double ? try measure(Double.self, frames) : try measure(Float.self, frames)
        for (b, ms) in results {
            print(String(format: "batch %d: %9.2f ms per step   (reference: %.0f ms; goal: %.1f ms)", b, ms,
                         Self.referenceMilliseconds[b] ?? 0, (Self.referenceMilliseconds[b] ?? 0) / 10))
        }
        for (b, ms) in results { print(String(format: "RESULT train_step_ms_small_aspirin_b%d %.3f ms", b, ms)) }
    }

    private func measure<T: ENINetFloat>(_: T.Type, _ frames: [TrainingFrame]) throws -> [(Int, Double)] {
        let file = try ENINetModelFile(contentsOf: reference + "/eninet-small.safetensors")
        let model = try ENINetDifferentiableModel<T>(file: file)
        let optimizer = Adam<T>.adamW(parameters: model.parameters.tensors, learningRate: 1e-4)
        let weights = LossWeights(energy: 1, forces: 10, dipole: 0)
        let prepared = try frames.map { try PreparedFrame($0, configuration: model.configuration) }
        var out: [(Int, Double)] = []
        for b in [1, 8] {
            let batch = try TrainingBatch(Array(prepared.prefix(b)))
            func step() throws {
                let loss = try model.loss(on: batch, weights: weights)
                let gradients = try grad(of: loss.total, wrt: model.parameters.tensors)
                try optimizer.step(gradients: clipGradientNorm(gradients, maxNorm: 10).gradients)
            }
            try step()  // warm-up: buffer pool, first-touch pages
            var times: [Double] = []
            for _ in 0..<repetitions {
                let start = DispatchTime.now().uptimeNanoseconds
                try step()
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
            print(String(format: "batch %d: %d atoms, %d edges, %d triplets", b, batch.positions.count, batch.graph.edgeCount, batch.graph.tripletCount))
            out.append((b, times.sorted()[times.count / 2]))
        }
        return out
    }

    private func aspirinFrames(count: Int) throws -> [TrainingFrame] {
        if FileManager.default.fileExists(atPath: data) {
            // Only the first frames are needed: 23 lines per aspirin frame.
            let text = try String(contentsOfFile: data, encoding: .utf8)
            let head = text.split(separator: "\n", maxSplits: 23 * count, omittingEmptySubsequences: false).prefix(23 * count).joined(separator: "\n")
            return try ExtendedXYZDataset.parse(head, source: data)
        }
        let aspirin = try BenchEninet.aspirin(jsonPath: reference + "/eninet-small.json")
        return (0..<count).map { k in
            TrainingFrame(atomicNumbers: aspirin.numbers, positions: aspirin.positions.map { $0 * (1 + 0.001 * Double(k)) }, energy: 0,
                          forces: aspirin.positions.map { _ in .zero }, index: k)
        }
    }
}
