import Foundation
import ENINet
import Geometry
import Tensors
@testable import Training
import XCTest

final class LossGradientTests: XCTestCase {
    /// The full loss (energy per atom + forces through the double backward + dipole) on a batch of
    /// three ethanol frames: its parameter gradient against central differences in Double.
    func testFullLossGradientMatchesFiniteDifferences() throws {
        let frames = Array(try Fixture.ethanol().prefix(3))
        let configuration = ENINetConfiguration(featureCount: 4, tripletFeatureCount: 2, radialBasisCount: 4, cutoff: 3.0,
                                                interactionCount: 1, scaleMean: -34.4, scaleStd: 0.7, averageNeighborCount: 6)
        var g = SplitMix64(seed: 7)
        let model = try ENINetDifferentiableModel<Double>(configuration: configuration, using: &g)
        let batch = try TrainingBatch(frames.map { try PreparedFrame($0, configuration: configuration) })
        XCTAssertEqual(batch.structureCount, 3)
        XCTAssertGreaterThan(batch.graph.tripletCount, 0)
        let weights = LossWeights(energy: 1, forces: 10, dipole: 3)
        let loss = try model.loss(on: batch, weights: weights)
        XCTAssertGreaterThan(loss.forceMSE, 0)
        XCTAssertGreaterThan(loss.dipoleMSE, 0)
        let gradients = try grad(of: loss.total, wrt: model.parameters.tensors)

        func value() throws -> Double {
            try GradMode.with(enabled: true) { try model.loss(on: batch, weights: weights).total.item }
        }
        var picks = SplitMix64(seed: 3)
        var worst = 0.0, checked = 0
        for (k, p) in model.parameters.tensors.enumerated() where k % 3 == 0 {
            let i = Int(picks.next() % UInt64(p.count))
            let numeric = try centralDifference(of: value, in: p, at: i, step: 1e-5)
            let analytic = gradients[k][flat: i]
            let error = abs(numeric - analytic) / max(abs(numeric), 1e-3)
            worst = max(worst, error)
            checked += 1
            XCTAssertEqual(analytic, numeric, accuracy: 1e-6 * max(abs(numeric), 1e-2), model.parameters.names[k])
        }
        XCTAssertGreaterThan(checked, 10)
        print("full-loss gradient: \(checked) parameters, worst relative error \(worst)")
    }

    /// The loss's terms are the mean-squared errors, against the frames' labels, of what the
    /// evaluator that `run` and `evaluate` use predicts (the hand-scheduled network, not the
    /// tensor model the loss differentiates), and the total is their weighted sum. The gradient
    /// test above differentiates whatever the loss is: a loss fitting −F or E per structure
    /// instead of per atom would pass it.
    func testLossTermsAreTheEvaluatorsErrorsAgainstTheLabels() throws {
        let frames = Array(try Fixture.ethanol().prefix(3))
        var configuration = ENINetConfiguration(featureCount: 4, tripletFeatureCount: 2, radialBasisCount: 4, cutoff: 3.0,
                                                interactionCount: 1, scaleMean: -1.2, scaleStd: 0.7, averageNeighborCount: 6)
        configuration.elementEnergies = [1: -10.3, 6: -48.2, 8: -70.1]
        var g = SplitMix64(seed: 5)
        let model = try ENINetDifferentiableModel<Double>(configuration: configuration, using: &g)
        let batch = try TrainingBatch(frames.map { try PreparedFrame($0, configuration: configuration) })
        let weights = LossWeights(energy: 2, forces: 10, dipole: 3)
        let loss = try model.loss(on: batch, weights: weights)
        let evaluator = try ENINetModel(file: try model.modelFile(dtype: .float64), precision: .double)

        var energySquares = 0.0, forceSquares = 0.0, dipoleSquares = 0.0, forceComponents = 0
        for frame in frames {
            let out = try evaluator.evaluate(atomicNumbers: frame.atomicNumbers, positions: frame.positions, cell: nil)
            let perAtom = (out.energy - frame.energy) / Double(frame.atomicNumbers.count)
            energySquares += perAtom * perAtom
            for (f, label) in zip(out.forces, frame.forces) {
                let d = f - label
                forceSquares += d.x * d.x + d.y * d.y + d.z * d.z
                forceComponents += 3
            }
            let d = out.dipole(positions: frame.positions, atomicNumbers: frame.atomicNumbers) - (try XCTUnwrap(frame.dipole))
            dipoleSquares += d.x * d.x + d.y * d.y + d.z * d.z
        }
        let energyMSE = energySquares / Double(frames.count), forceMSE = forceSquares / Double(forceComponents)
        let dipoleMSE = dipoleSquares / Double(3 * frames.count)
        XCTAssertEqual(forceComponents, 3 * 9 * frames.count)
        XCTAssertEqual(loss.energyMSE, energyMSE, accuracy: 1e-10 * energyMSE)
        XCTAssertEqual(loss.forceMSE, forceMSE, accuracy: 1e-10 * forceMSE)
        XCTAssertEqual(loss.dipoleMSE, dipoleMSE, accuracy: 1e-10 * dipoleMSE)
        let total = 2 * energyMSE + 10 * forceMSE + 3 * dipoleMSE
        XCTAssertEqual(loss.total.item, total, accuracy: 1e-10 * total)
        // Each term is far from zero, so a sign slip in one of them cannot hide in the others.
        XCTAssertGreaterThan(min(energyMSE, forceMSE, dipoleMSE), 1e-3)
        print("loss against the labels: energy \(energyMSE) (eV/atom)², forces \(forceMSE) (eV/Å)², dipole \(dipoleMSE) (e·Å)²")
    }

    /// A batch shared among workers (``BatchGradient``, two threads) gives the loss, the errors,
    /// the predictions and the gradient of the whole batch: four ethanol frames and a 7-atom
    /// fragment of one (so that the shares differ in atoms as well as structures), energy per
    /// atom + forces + dipole, in Double, split in two and in three.
    func testSharedBatchGivesTheWholeBatchsLossAndGradient() throws {
        let previousThreads = TensorThreads.count
        TensorThreads.set(2)
        defer { TensorThreads.set(previousThreads) }
        var frames = Array(try Fixture.ethanol().prefix(4))
        let f = frames[1]
        frames.insert(TrainingFrame(atomicNumbers: Array(f.atomicNumbers.prefix(7)), positions: Array(f.positions.prefix(7)),
                                    energy: f.energy * 0.8, forces: Array(f.forces.prefix(7)), dipole: f.dipole, index: 9), at: 2)
        let configuration = ENINetConfiguration(featureCount: 4, tripletFeatureCount: 2, radialBasisCount: 4, cutoff: 3.0,
                                                interactionCount: 1, scaleMean: -34.4, scaleStd: 0.7, averageNeighborCount: 6)
        var g = SplitMix64(seed: 11)
        let model = try ENINetDifferentiableModel<Double>(configuration: configuration, using: &g)
        let prepared = try frames.map { try PreparedFrame($0, configuration: configuration) }
        let weights = LossWeights(energy: 1, forces: 10, dipole: 3)
        let whole = try model.loss(on: try TrainingBatch(prepared), weights: weights)
        let wholeGradients = try grad(of: whole.total, wrt: model.parameters.tensors)
        let wholeValidation = try model.loss(on: try TrainingBatch(prepared), weights: weights, differentiable: false)
        let largest = wholeGradients.flatMap { $0.scalars }.map(abs).max() ?? 0
        XCTAssertGreaterThan(largest, 0)

        func check(_ loss: BatchLoss<Double>, against expected: BatchLoss<Double>, _ label: String) {
            XCTAssertEqual(loss.total.item, expected.total.item, accuracy: 1e-12 * expected.total.item, label)
            XCTAssertEqual(loss.energyMSE, expected.energyMSE, accuracy: 1e-12 * expected.energyMSE, label)
            XCTAssertEqual(loss.forceMSE, expected.forceMSE, accuracy: 1e-12 * expected.forceMSE, label)
            XCTAssertEqual(loss.dipoleMSE, expected.dipoleMSE, accuracy: 1e-12 * expected.dipoleMSE, label)
            XCTAssertEqual(loss.predictedEnergies.count, expected.predictedEnergies.count, label)
            for (a, b) in zip(loss.predictedEnergies, expected.predictedEnergies) { XCTAssertEqual(a, b, accuracy: 1e-10, label) }
            XCTAssertEqual(loss.predictedForces.count, expected.predictedForces.count, label)
            let forceError = zip(loss.predictedForces, expected.predictedForces).map { a, b -> Double in
                let d = a - b
                return max(abs(d.x), abs(d.y), abs(d.z))
            }.max() ?? 0
            XCTAssertLessThan(forceError, 1e-12, label)
            XCTAssertEqual(loss.predictedDipoles.count, expected.predictedDipoles.count, label)
            // Frame by frame: the shares' dipoles in the batch's order (validation pairs them with frames).
            XCTAssertFalse(expected.predictedDipoles.isEmpty, label)
            let dipoleError = zip(loss.predictedDipoles, expected.predictedDipoles).map { norm($0 - $1) }.max() ?? 0
            XCTAssertLessThan(dipoleError, 1e-12, label)
        }
        for workers in [2, 3] {
            let gradient = BatchGradient(model: model, workers: workers)
            let (loss, gradients) = try gradient.evaluate(prepared, weights: weights)
            check(loss, against: whole, "\(workers) workers")
            var worst = 0.0
            for (a, b) in zip(gradients, wholeGradients) {
                XCTAssertEqual(a.shape, b.shape)
                for (x, y) in zip(a.scalars, b.scalars) { worst = max(worst, abs(x - y)) }
            }
            XCTAssertLessThan(worst, 1e-12 * largest, "\(workers) workers: gradients differ by \(worst) (largest \(largest))")
            check(try gradient.loss(prepared, weights: weights), against: wholeValidation, "\(workers) workers, validation")
        }
    }

    /// Shares are consecutive, none is empty, and their atoms are about equal.
    func testSharesSplitTheAtomsEvenly() {
        typealias Shares = BatchGradient<Double>
        XCTAssertEqual(Shares.shares(atomCounts: Array(repeating: 9, count: 8), parts: 2), [0..<4, 4..<8])
        XCTAssertEqual(Shares.shares(atomCounts: Array(repeating: 3, count: 6), parts: 3), [0..<2, 2..<4, 4..<6])
        XCTAssertEqual(Shares.shares(atomCounts: [20, 1, 1, 1, 1], parts: 2), [0..<1, 1..<5])
        XCTAssertEqual(Shares.shares(atomCounts: [1, 1, 1, 1, 20], parts: 2), [0..<4, 4..<5])
        XCTAssertEqual(Shares.shares(atomCounts: [1, 1, 1, 1, 20], parts: 4), [0..<2, 2..<3, 3..<4, 4..<5])
        XCTAssertEqual(Shares.shares(atomCounts: [5, 5], parts: 3), [0..<1, 1..<2])
        XCTAssertEqual(Shares.shares(atomCounts: [5, 5], parts: 1), [0..<2])
        XCTAssertEqual(Shares.shares(atomCounts: [], parts: 2), [])
    }

    /// Packing structures into one graph changes nothing: batch energies and forces equal the
    /// single-structure ones.
    func testBatchEqualsSeparateStructures() throws {
        let frames = Array(try Fixture.ethanol().prefix(3))
        let configuration = ENINetConfiguration(featureCount: 4, tripletFeatureCount: 2, radialBasisCount: 4, cutoff: 3.0, interactionCount: 1)
        var g = SplitMix64(seed: 9)
        let model = try ENINetDifferentiableModel<Double>(configuration: configuration, using: &g)
        let prepared = try frames.map { try PreparedFrame($0, configuration: configuration) }
        let together = try model.loss(on: try TrainingBatch(prepared), weights: LossWeights(), differentiable: false)
        var atom = 0
        for (k, p) in prepared.enumerated() {
            let alone = try model.loss(on: try TrainingBatch([p]), weights: LossWeights(), differentiable: false)
            XCTAssertEqual(together.predictedEnergies[k], alone.predictedEnergies[0], accuracy: 1e-10)
            for i in 0..<p.frame.atomCount {
                XCTAssertEqual(together.predictedForces[atom + i].x, alone.predictedForces[i].x, accuracy: 1e-10)
            }
            atom += p.frame.atomCount
        }
    }

    /// Element energies from least squares recover an exactly additive synthetic energy.
    func testElementEnergiesRecoverAdditiveEnergies() throws {
        let truth: [Int: Double] = [1: -13.6, 6: -1029.0, 8: -2041.0]
        var frames: [TrainingFrame] = []
        let compositions = [[6, 1, 1, 1, 1], [8, 1, 1], [6, 8], [6, 6, 1, 1, 8]]
        for (k, z) in compositions.enumerated() {
            let r = z.indices.map { Vec3(Double($0) * 1.1, 0, 0) }
            frames.append(TrainingFrame(atomicNumbers: z, positions: r, energy: z.reduce(0) { $0 + truth[$1]! },
                                        forces: r.map { _ in Vec3(0.1, 0, 0) }, index: k))
        }
        let s = try TargetStatistics.fit(frames: frames, cutoff: 2.0, scale: .energyStd)
        for (z, e) in truth { XCTAssertEqual(s.elementEnergies[z]!, e, accuracy: 1e-5) }
        XCTAssertFalse(s.constantComposition)
        XCTAssertEqual(s.std, 1, "residuals are zero, so the scale falls back to 1")
        let f = try TargetStatistics.fit(frames: frames, cutoff: 2.0, scale: .forceRMS)
        XCTAssertEqual(f.std, (0.01 / 3).squareRoot(), accuracy: 1e-12)
        // Chains with 1.1 Å spacing and a 2 Å cutoff: only nearest neighbours count.
        let bonds = compositions.reduce(0) { $0 + 2 * ($1.count - 1) }
        XCTAssertEqual(f.averageNeighborCount, Double(bonds) / Double(compositions.reduce(0) { $0 + $1.count }), accuracy: 1e-12)
    }
}
