import Foundation
import ENINet
import Geometry
import Tensors
@testable import Training
import XCTest

/// Stresses as training labels: read from extended XYZ, predicted by the differentiable network
/// as `(1/V) ∂E/∂ε`, fitted through the double backward, scored by `evaluate --data`.
final class StressTrainingTests: XCTestCase {
    static let cuPath = Fixture.directory.appendingPathComponent("cu64-triclinic-stress-18.extxyz").path
    static func copper() throws -> [TrainingFrame] { try ExtendedXYZDataset.read(path: cuPath) }

    static let configuration = ENINetConfiguration(featureCount: 4, tripletFeatureCount: 2, radialBasisCount: 4, cutoff: 3.0,
                                                   interactionCount: 1, scaleMean: 0.05, scaleStd: 3, averageNeighborCount: 12)

    func testStressIsReadInBothOfASEsLayouts() throws {
        let frames = try Self.copper()
        XCTAssertEqual(frames.count, 18)
        let first = try XCTUnwrap(frames[0].stress)
        // The fixture's first comment line: xx, xy and zz of the 3×3 form.
        XCTAssertEqual(first[0, 0], 0.004710596257603033)
        XCTAssertEqual(first[0, 1], 0.007438581904531417)
        XCTAssertEqual(first[2, 2], 0.004588902111606185)
        XCTAssertEqual(frames[0].cell?.pbc, .all)

        let lattice = #"Lattice="5 0 0 0 6 0 0 0 7""#
        func frame(_ info: String) throws -> TrainingFrame {
            try XCTUnwrap(ExtendedXYZDataset.parse("1\n\(info) Properties=species:S:1:pos:R:3:forces:R:3 energy=-1.5\nCu 0 0 0 0 0 0\n",
                                                   source: "t.xyz").first)
        }
        // Voigt order xx yy zz yz xz xy, as ASE's stress_voigt and calculators give it.
        let voigt = try XCTUnwrap(try frame(#"\#(lattice) stress="1 2 3 4 5 6""#).stress)
        XCTAssertEqual(voigt, Mat3(Vec3(1, 6, 5), Vec3(6, 2, 4), Vec3(5, 4, 3)))
        let full = try XCTUnwrap(try frame(#"\#(lattice) REF_stress="1 6 5 6 2 4 5 4 3""#).stress)
        XCTAssertEqual(full, voigt)
        // Nine numbers that are not symmetric: their symmetric part, whichever order a writer used.
        let lopsided = try XCTUnwrap(try frame(#"\#(lattice) stress="1 2 3 4 5 6 7 8 9""#).stress)
        XCTAssertEqual(lopsided, Mat3(Vec3(1, 3, 5), Vec3(3, 5, 7), Vec3(5, 7, 9)))
        // A virial W = −Vσ (eV), as GAP and libAtoms write it; the cell's volume is 210 Å³.
        let virial = try XCTUnwrap(try frame(#"\#(lattice) virial="-210 -1260 -1050 -1260 -420 -840 -1050 -840 -630""#).stress)
        for (row, expected) in [Vec3(1, 6, 5), Vec3(6, 2, 4), Vec3(5, 4, 3)].enumerated() {
            XCTAssertLessThan(norm(virial[row] - expected), 1e-12)
        }
        XCTAssertNil(try frame(lattice).stress)
        // A molecule or a slab has no volume for a stress: the label is dropped, the frame kept.
        XCTAssertNil(try frame(#"stress="1 2 3 4 5 6""#).stress)
        XCTAssertNil(try frame(#"\#(lattice) pbc="T T F" stress="1 2 3 4 5 6""#).stress)
    }

    func testBadStressesAreErrorsNamingTheFrame() throws {
        func message(_ info: String) -> String {
            let text = "1\nProperties=species:S:1:pos:R:3:forces:R:3 energy=-1.5\nCu 0 0 0 0 0 0\n"
                + "1\n\(info) Properties=species:S:1:pos:R:3:forces:R:3 energy=-1.5\nCu 0 0 0 0 0 0\n"
            do {
                _ = try ExtendedXYZDataset.parse(text, source: "bad.xyz")
                return "no error"
            } catch { return "\(error)" }
        }
        let lattice = #"Lattice="5 0 0 0 6 0 0 0 7""#
        let cases: [(String, String)] = [
            (#"\#(lattice) stress="1 2 3 4 5""#, "stress has 5 numbers"),
            (#"\#(lattice) stress="1 2 3 4 5 x""#, "stress: 'x' is not a number"),
            (#"\#(lattice) stress="1 2 3 4 5 nan""#, "non-finite stress"),
            (#"\#(lattice) REF_stress="1 2 3 4 5 inf""#, "non-finite REF_stress"),
            (#"\#(lattice) virial="1 2 3 4""#, "virial has 4 numbers"),
            (#"\#(lattice) stress="1 2 3 4 5 1e9""#, "beyond 1e4 eV/Å³"),
            // Bad numbers are errors even where the label would be dropped.
            (#"stress="1 2 3 4 5 nan""#, "non-finite stress"),
        ]
        for (info, expected) in cases {
            let m = message(info)
            XCTAssertTrue(m.contains("bad.xyz: frame 1 (line 4)") && m.contains(expected), "\(info): \(m)")
        }
    }

    /// The network's stress, `(1/V) ∂E/∂ε` through the strain leaf, is the hand-scheduled
    /// evaluator's `−W/V` (what `run` logs as pressure and `evaluate` prints), and the central
    /// difference of the evaluator's energy under a strain `r → r·(I + h e_αβ)`. The loss's
    /// stress term is the mean of `((σ − σ_ref)·V/N)²` over the labelled structures.
    func testPredictedStressIsTheStrainDerivativeAndTheLossItsError() throws {
        let copper = Array(try Self.copper().prefix(2))
        let ethanol = try XCTUnwrap(try Fixture.ethanol().first)
        var g = SplitMix64(seed: 21)
        let model = try ENINetDifferentiableModel<Double>(configuration: Self.configuration, using: &g)
        let frames = [copper[0], ethanol, copper[1]]
        let batch = try TrainingBatch(frames.map { try PreparedFrame($0, configuration: Self.configuration) })
        let loss = try model.loss(on: batch, weights: LossWeights(energy: 0, forces: 1, stress: 7), differentiable: true)
        XCTAssertEqual(loss.predictedStresses.count, 3)
        XCTAssertNil(loss.predictedStresses[1], "the molecule has no stress")
        let evaluator = try ENINetModel(file: try model.modelFile(dtype: .float64), precision: .double)

        var squares = 0.0
        for k in [0, 2] {
            let frame = frames[k], cell = try XCTUnwrap(frame.cell)
            let predicted = try XCTUnwrap(loss.predictedStresses[k])
            let out = try evaluator.evaluate(atomicNumbers: frame.atomicNumbers, positions: frame.positions, cell: cell)
            let virialStress = (-1 / cell.volume) * out.virial
            let h = 1e-5
            var largest = 0.0
            for a in 0..<3 {
                for b in 0..<3 {
                    func energy(_ e: Double) throws -> Double {
                        var strain = Mat3.zero
                        strain[a, b] = e
                        let map = Mat3.identity + strain
                        return try evaluator.evaluate(atomicNumbers: frame.atomicNumbers, positions: frame.positions.map { map.leftMultiply($0) },
                                                      cell: try cell.strained(by: strain)).energy
                    }
                    let numeric = (try energy(h) - energy(-h)) / (2 * h) / cell.volume
                    largest = max(largest, abs(numeric))
                    XCTAssertEqual(predicted[a, b], virialStress[a, b], accuracy: 1e-10, "frame \(k) σ\(a)\(b)")
                    XCTAssertEqual(predicted[a, b], numeric, accuracy: 1e-8, "frame \(k) σ\(a)\(b) against the strain derivative")
                    let reference = try XCTUnwrap(frame.stress)[a, b]
                    let perAtom = (predicted[a, b] - reference) * cell.volume / Double(frame.atomCount)
                    squares += perAtom * perAtom
                }
            }
            XCTAssertGreaterThan(largest, 3e-5, "a stress of zero would pass any comparison")
        }
        let stressMSE = squares / 18
        XCTAssertGreaterThan(stressMSE, 1e-6)
        XCTAssertEqual(loss.stressMSE, stressMSE, accuracy: 1e-10 * stressMSE)
        XCTAssertEqual(loss.total.item, loss.forceMSE + 7 * stressMSE, accuracy: 1e-10 * loss.total.item)
    }

    /// The loss with a stress term, on a batch of two crystals and a molecule: its parameter
    /// gradient (through the double backward of the strain) against central differences in
    /// Double. The step is 1e-4: at 1e-5 the differences of a loss near 30 carry round-off
    /// comparable to the smallest gradients checked.
    func testLossGradientWithStressMatchesFiniteDifferences() throws {
        let copper = Array(try Self.copper().prefix(2))
        let ethanol = try XCTUnwrap(try Fixture.ethanol().first)
        var g = SplitMix64(seed: 23)
        let model = try ENINetDifferentiableModel<Double>(configuration: Self.configuration, using: &g)
        let batch = try TrainingBatch([copper[0], ethanol, copper[1]].map { try PreparedFrame($0, configuration: Self.configuration) })
        // The stress term alone, and beside the forces (energies of ethanol and copper on one
        // scale would make a loss of thousands, whose differences are round-off).
        for weights in [LossWeights(energy: 0, forces: 0, stress: 100), LossWeights(energy: 0, forces: 10, stress: 100)] {
            let loss = try model.loss(on: batch, weights: weights)
            XCTAssertGreaterThan(loss.stressMSE, 0)
            let gradients = try grad(of: loss.total, wrt: model.parameters.tensors)
            func value() throws -> Double {
                try GradMode.with(enabled: true) { try model.loss(on: batch, weights: weights).total.item }
            }
            var picks = SplitMix64(seed: 5)
            var pairs: [(name: String, analytic: Double, numeric: Double)] = []
            for (k, p) in model.parameters.tensors.enumerated() where k % 3 == 1 {
                let i = Int(picks.next() % UInt64(p.count))
                let numeric = try centralDifference(of: value, in: p, at: i, step: 1e-4)
                pairs.append((model.parameters.names[k], gradients[k][flat: i], numeric))
            }
            // Relative to each gradient, with a floor at a hundredth of the largest. Central
            // differences at this step agree with the analytic gradient to about 1e-5 (their
            // truncation error); a wrong term is off by its own size.
            let scale = pairs.map { abs($0.numeric) }.max() ?? 0
            XCTAssertGreaterThan(scale, 1e-6)
            var worst = 0.0
            for pair in pairs {
                let floor = max(abs(pair.numeric), 1e-2 * scale)
                worst = max(worst, abs(pair.analytic - pair.numeric) / floor)
                XCTAssertEqual(pair.analytic, pair.numeric, accuracy: 1e-4 * floor, "\(pair.name), weights \(weights)")
            }
            print("loss gradient with stresses (weights \(weights)): \(pairs.count) parameters, worst relative error \(worst)")
            XCTAssertGreaterThan(pairs.count, 8)
            XCTAssertGreaterThan(pairs.filter { abs($0.numeric) > 1e-3 * scale }.count, pairs.count / 2, "most picked parameters move the loss")
        }
    }

    /// Shared among workers, a batch whose stress labels sit in some shares only gives the whole
    /// batch's loss, stress error, predictions and gradient.
    func testSharedBatchWithStressesGivesTheWholeBatchsLossAndGradient() throws {
        let previousThreads = TensorThreads.count
        TensorThreads.set(2)
        defer { TensorThreads.set(previousThreads) }
        let copper = try XCTUnwrap(try Self.copper().first)
        let ethanol = Array(try Fixture.ethanol().prefix(8))
        // The crystal first and eight molecules: every split has shares without a stress.
        let frames = [copper] + ethanol
        XCTAssertEqual(BatchGradient<Double>.shares(atomCounts: frames.map(\.atomCount), parts: 2), [0..<2, 2..<9])
        XCTAssertEqual(BatchGradient<Double>.shares(atomCounts: frames.map(\.atomCount), parts: 3), [0..<1, 1..<4, 4..<9])
        var g = SplitMix64(seed: 29)
        let model = try ENINetDifferentiableModel<Double>(configuration: Self.configuration, using: &g)
        let prepared = try frames.map { try PreparedFrame($0, configuration: Self.configuration) }
        let weights = LossWeights(energy: 1, forces: 10, stress: 50)
        let whole = try model.loss(on: try TrainingBatch(prepared), weights: weights)
        let wholeGradients = try grad(of: whole.total, wrt: model.parameters.tensors)
        let wholeValidation = try model.loss(on: try TrainingBatch(prepared), weights: weights, differentiable: false)
        let largest = wholeGradients.flatMap { $0.scalars }.map(abs).max() ?? 0
        for workers in [2, 3] {
            let gradient = BatchGradient(model: model, workers: workers)
            let (loss, gradients) = try gradient.evaluate(prepared, weights: weights)
            XCTAssertEqual(loss.total.item, whole.total.item, accuracy: 1e-12 * whole.total.item, "\(workers) workers")
            XCTAssertEqual(loss.stressMSE, whole.stressMSE, accuracy: 1e-12 * whole.stressMSE, "\(workers) workers")
            let validation = try gradient.loss(prepared, weights: weights)
            XCTAssertEqual(validation.total.item, wholeValidation.total.item, accuracy: 1e-12 * wholeValidation.total.item, "\(workers) workers, validation")
            for (shared, batch) in [(loss, whole), (validation, wholeValidation)] {
                XCTAssertEqual(shared.predictedStresses.count, 9)
                XCTAssertNotNil(shared.predictedStresses[0])
                for (a, b) in zip(shared.predictedStresses, batch.predictedStresses) {
                    XCTAssertEqual(a == nil, b == nil)
                    if let a, let b { XCTAssertLessThan(max(norm(a[0] - b[0]), norm(a[1] - b[1]), norm(a[2] - b[2])), 1e-12) }
                }
            }
            var worst = 0.0
            for (a, b) in zip(gradients, wholeGradients) { for (x, y) in zip(a.scalars, b.scalars) { worst = max(worst, abs(x - y)) } }
            XCTAssertLessThan(worst, 1e-12 * largest, "\(workers) workers")
        }
    }

    /// Fitting stresses works: the same tiny model trained on the copper frames with and without
    /// a stress weight, from the same seed for the same epochs. With it, the validation stress
    /// error falls to a third of the force-and-energy fit's (8.6 against 25.4 meV/Å³ when
    /// written); this model of 8 features pays for it in forces (257 against 159 meV/Å, 1.6
    /// times), held below twice. The log carries the stress error, and `evaluate --data`'s
    /// figure for the saved model agrees with it.
    func testTrainingOnStressesLowersTheStressError() throws {
        func train(stressWeight: Double, _ name: String) throws -> (stress: Double, force: Double, log: String, model: String) {
            let output = try Fixture.scratch("stress-\(name)")
            let settings = try Fixture.tinySettings(output: output, extra: [
                "data.file": .string(Self.cuPath), "data.train": .integer(12), "data.validation": .integer(6), "data.batch_size": .integer(3),
                "model.cutoff": .float(3.0), "optimizer.learning_rate": .float(1e-2), "optimizer.max_epochs": .integer(25),
                "loss.stress_weight": .float(stressWeight),
            ])
            let frames = try Self.copper()
            let trainer = try Trainer<Double>(settings: settings, frames: frames)
            _ = try trainer.run(resume: false, progress: { _ in })
            let log = try String(contentsOfFile: settings.logPath, encoding: .utf8)
            let model = settings.modelPath
            let validation = trainer.split.validation.map { frames[$0] }
            let metrics = try DatasetEvaluation.evaluate(model: try ENINetModel(file: try ENINetModelFile(contentsOf: model), precision: .double),
                                                         frames: validation)
            return (try XCTUnwrap(metrics.stressMAEmeVPerA3), try XCTUnwrap(metrics.forceMAEmeVPerA), log, model)
        }
        let without = try train(stressWeight: 0, "without")
        let with = try train(stressWeight: 10, "with")
        print("validation stress MAE: \(without.stress) meV/Å³ without the stress term, \(with.stress) with; force MAE \(without.force) and \(with.force) meV/Å")
        XCTAssertLessThan(with.stress, 0.5 * without.stress)
        XCTAssertLessThan(with.force, 2 * without.force)
        // Without a stress weight, validation still scores the stresses.
        XCTAssertTrue(without.log.contains("\"validation_stress_mae_meV_per_A3\""))
        XCTAssertTrue(with.log.contains("\"validation_stress_mae_meV_per_A3\""))
        // The best epoch's line reports what evaluating the saved model gives.
        let best = try XCTUnwrap(with.log.split(separator: "\n").last(where: { $0.contains("\"best\":true") }))
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(best.utf8)) as? [String: Any])
        let logged = try XCTUnwrap(object["validation_stress_mae_meV_per_A3"] as? Double)
        XCTAssertEqual(logged, with.stress, accuracy: 1e-6 * with.stress)
    }

    func testStressSettingsAreChecked() throws {
        let output = try Fixture.scratch("stress-settings")
        XCTAssertThrowsError(try Fixture.tinySettings(output: output, extra: ["model.target": .string("dipole"), "loss.stress_weight": .float(1)])) {
            XCTAssertTrue("\($0)".contains("'loss.stress_weight' must be 0 for a dipole model"), "\($0)")
        }
        XCTAssertThrowsError(try Fixture.tinySettings(output: output, extra: ["loss.stress_weight": .float(-1)])) {
            XCTAssertTrue("\($0)".contains("'loss.stress_weight' = -1.0 is outside"), "\($0)")
        }
        // Only stresses in the loss: a valid setting.
        let onlyStress = try Fixture.tinySettings(output: output, extra: ["loss.energy_weight": .float(0), "loss.force_weight": .float(0),
                                                                          "loss.stress_weight": .float(1)])
        XCTAssertEqual(onlyStress.weights.stress, 1)
        // The ethanol fixture has no stresses for the weight to fit.
        let settings = try Fixture.tinySettings(output: output, extra: ["loss.stress_weight": .float(10)])
        XCTAssertThrowsError(try Trainer<Double>(settings: settings, frames: try Fixture.ethanol())) {
            XCTAssertTrue("\($0)".contains("loss.stress_weight is 10.0, but no training frame has a stress"), "\($0)")
        }
    }
}
