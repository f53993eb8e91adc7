import Foundation
import ENINet
import Geometry
import Tensors
import Training
import XCTest

/// Per-element reference energies: fitted on data of mixed composition, stored in the model
/// file, added by the inference network and by the training network alike.
final class ElementEnergyTests: XCTestCase {
    let elementEnergies: [Int: Double] = [1: -13.6, 6: -1029.0, 8: -2041.0]

    func configuration(elementEnergies: [Int: Double]) -> ENINetConfiguration {
        ENINetConfiguration(featureCount: 4, tripletFeatureCount: 2, radialBasisCount: 4, cutoff: 3.0, interactionCount: 1,
                            scaleMean: -0.2, scaleStd: 0.7, elementEnergies: elementEnergies, averageNeighborCount: 6)
    }

    func testModelFileKeepsElementEnergiesAndBothNetworksAddThem() throws {
        let frame = try XCTUnwrap(try Fixture.ethanol().first)
        var g1 = SplitMix64(seed: 5), g2 = SplitMix64(seed: 5)
        let with = try ENINetDifferentiableModel<Double>(configuration: configuration(elementEnergies: elementEnergies), using: &g1)
        let without = try ENINetDifferentiableModel<Double>(configuration: configuration(elementEnergies: [:]), using: &g2)
        let shift = frame.atomicNumbers.reduce(0) { $0 + (elementEnergies[$1] ?? 0) }
        XCTAssertEqual(shift, 2 * -1029.0 - 2041.0 + 6 * -13.6, accuracy: 1e-9)

        // Through a file on disk, as `run` and `evaluate` load it.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("element-energies-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try with.modelFile(dtype: .float64).write(to: path)
        let loaded = try ENINetModelFile(contentsOf: path)
        XCTAssertEqual(loaded.configuration.elementEnergies, elementEnergies)
        XCTAssertEqual(loaded.configuration, with.configuration)
        let inference = try ENINetModel(file: loaded, precision: .double)
        try without.modelFile(dtype: .float64).write(to: path)
        let plain = try ENINetModel(contentsOf: path, precision: .double)
        let a = try inference.evaluate(atomicNumbers: frame.atomicNumbers, positions: frame.positions, cell: nil)
        let b = try plain.evaluate(atomicNumbers: frame.atomicNumbers, positions: frame.positions, cell: nil)
        XCTAssertEqual(a.energy - b.energy, shift, accuracy: 1e-9)
        for (fa, fb) in zip(a.forces, b.forces) { XCTAssertLessThan(norm(fa - fb), 1e-12, "constants carry no force") }

        // The training network's energy equals the inference network's.
        let prepared = try PreparedFrame(frame, configuration: with.configuration)
        let loss = try with.loss(on: try TrainingBatch([prepared]), weights: LossWeights(), differentiable: false)
        XCTAssertEqual(loss.predictedEnergies[0], a.energy, accuracy: 1e-8)
    }

    /// Mixed compositions: the fitted model starts at the additive energies; one composition:
    /// the sum folds into the scaler's mean and the file stores no element energies.
    func testTrainingSettingsStoreElementEnergiesOnlyForMixedCompositions() throws {
        var frames: [TrainingFrame] = []
        let compositions = [[6, 1, 1, 1, 1], [8, 1, 1], [6, 8], [6, 6, 1, 1, 8]]
        for (k, z) in compositions.enumerated() {
            let r = z.indices.map { Vec3(Double($0) * 1.1, 0, 0) }
            frames.append(TrainingFrame(atomicNumbers: z, positions: r, energy: z.reduce(0) { $0 + elementEnergies[$1]! } + 0.01 * Double(k),
                                        forces: r.map { _ in Vec3(0.1, 0, 0) }, index: k))
        }
        let mixed = try TargetStatistics.fit(frames: frames, cutoff: 2.0, scale: .forceRMS)
        XCTAssertLessThan(abs(mixed.mean), 0.01, "the mean is the per-atom residual after the element energies")
        let settings = TrainingSettings()
        let stored = settings.modelConfiguration(statistics: mixed).elementEnergies
        for (z, e) in elementEnergies { XCTAssertEqual(stored[z] ?? 0, e, accuracy: 0.05) }
        let single = try TargetStatistics.fit(frames: Array(repeating: frames[0], count: 3), cutoff: 2.0, scale: .forceRMS)
        XCTAssertTrue(single.constantComposition)
        XCTAssertEqual(single.mean, frames[0].energy / 5, accuracy: 1e-9)
        XCTAssertTrue(settings.modelConfiguration(statistics: single).elementEnergies.isEmpty)

        // The smooth variant's ε reaches the model file's configuration; the reference variant has none.
        XCTAssertEqual(settings.modelConfiguration(statistics: single).vectorNormEpsilon, 1e-2)
        let damped = try TrainingSettings(values: ["data.file": .string("x.extxyz"), "model.vector_norm_epsilon": .float(1e-4)],
                                          source: "t", baseDirectory: "/tmp")
        XCTAssertEqual(damped.modelConfiguration(statistics: single).vectorNormEpsilon, 1e-4)
        XCTAssertThrowsError(try TrainingSettings(values: ["data.file": .string("x.extxyz"), "model.variant": .string("reference"),
                                                           "model.vector_norm_epsilon": .float(1e-4)], source: "t", baseDirectory: "/tmp")) {
            XCTAssertTrue("\($0)".contains("'model.vector_norm_epsilon' belongs to the smooth variant"), "\($0)")
        }
    }
}
