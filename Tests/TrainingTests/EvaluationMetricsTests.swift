import Foundation
import ENINet
import Geometry
import Training
import XCTest

/// `DatasetEvaluation` (what `evaluate --data` and the accuracy tests report) scores the model
/// against the frames' labels: with labels set to the model's own predictions plus known
/// offsets, every figure is that offset. Tests of the metric arithmetic alone would not see a
/// prediction compared with itself.
final class EvaluationMetricsTests: XCTestCase {
    func model(target: ENINetConfiguration.Target) throws -> ENINetModel {
        var generator = SplitMix64(seed: 5)
        let configuration = ENINetConfiguration(featureCount: 4, tripletFeatureCount: 2, radialBasisCount: 4, cutoff: 3,
                                                interactionCount: 1, averageNeighborCount: 6, target: target)
        let network = try ENINetDifferentiableModel<Double>(configuration: configuration, using: &generator)
        return try ENINetModel(file: try network.modelFile(dtype: .float64), precision: .double)
    }

    /// The first `count` ethanol frames, each with the model's output on it.
    func predictions(_ model: ENINetModel, count: Int, forces: Bool) throws -> [(frame: TrainingFrame, output: ENINetOutput)] {
        let list = model.makeNeighborList(skin: 1.0)
        return try Fixture.ethanol().prefix(count).map { f in
            let graph = try model.graph(positions: f.positions, cell: f.cell, neighborList: list)
            return (f, try model.evaluate(atomicNumbers: f.atomicNumbers, positions: f.positions, graph: graph, forces: forces))
        }
    }

    func testEnergyAndForceErrorsAreThoseOfTheLabels() throws {
        let model = try model(target: .energy)
        let frames = try predictions(model, count: 4, forces: true).enumerated().map { k, p -> TrainingFrame in
            var f = p.frame
            // 3 meV per atom above or below, alternately; every force component 2 meV/Å off.
            f.energy = p.output.energy + (k % 2 == 0 ? 1 : -1) * 0.003 * Double(f.atomicNumbers.count)
            f.forces = p.output.forces.enumerated().map { i, force in force + Vec3(0.002, -0.002, i % 2 == 0 ? 0.002 : -0.002) }
            return f
        }
        let metrics = try DatasetEvaluation.evaluate(model: model, frames: frames)
        XCTAssertEqual(metrics.frameCount, 4)
        XCTAssertEqual(try XCTUnwrap(metrics.energyMAEmeVPerAtom), 3, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(metrics.energyRMSEmeVPerAtom), 3, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(metrics.forceMAEmeVPerA), 2, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(metrics.forceRMSEmeVPerA), 2, accuracy: 1e-9)
    }

    func testDipoleErrorsAreThoseOfTheLabels() throws {
        let model = try model(target: .dipole)
        let frames = try predictions(model, count: 3, forces: false).map { p -> TrainingFrame in
            var f = p.frame
            let mu = p.output.dipole(positions: f.positions, atomicNumbers: f.atomicNumbers)
            XCTAssertGreaterThan(norm(mu), 1e-3, "a zero dipole would not tell a sign slip from the truth")
            f.dipole = mu + Vec3(0.05, -0.05, 0.05)
            return f
        }
        let metrics = try DatasetEvaluation.evaluate(model: model, frames: frames)
        XCTAssertEqual(try XCTUnwrap(metrics.dipoleMAE), 0.05, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(metrics.dipoleRMSE), 0.05, accuracy: 1e-12)
    }
}
