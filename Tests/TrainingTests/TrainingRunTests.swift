import Foundation
import ENINet
import Geometry
import Tensors
import Training
import XCTest

final class TrainingRunTests: XCTestCase {
    /// A run stopped after 2 epochs and resumed to 4 (in Double and in Float) ends with exactly the weights, moving average
    /// and optimiser moments of an uninterrupted 4-epoch run.
    func testResumeReproducesUninterruptedRun() throws {
        try checkResume(Double.self, tag: "d")
        try checkResume(Float.self, tag: "f")
    }

    private func checkResume<T: ENINetFloat>(_: T.Type, tag: String) throws {
        let frames = try Fixture.ethanol()
        let dirA = try Fixture.scratch("resume-a" + tag), dirB = try Fixture.scratch("resume-b" + tag)
        let full = try Trainer<T>(settings: try Fixture.tinySettings(output: dirA, extra: ["optimizer.max_epochs": .integer(4)]), frames: frames)
        _ = try full.run(resume: false)

        let first = try Trainer<T>(settings: try Fixture.tinySettings(output: dirB, extra: ["optimizer.max_epochs": .integer(2)]), frames: frames)
        _ = try first.run(resume: false)
        XCTAssertEqual(first.epoch, 2)
        let second = try Trainer<T>(settings: try Fixture.tinySettings(output: dirB, extra: ["optimizer.max_epochs": .integer(4)]), frames: frames)
        _ = try second.run(resume: true)
        XCTAssertEqual(second.epoch, 4)
        XCTAssertEqual(second.step, full.step)
        XCTAssertEqual(second.optimizer.stepCount, full.optimizer.stepCount)
        var maxDifference = 0.0
        for (a, b) in zip(full.model.parameters.tensors, second.model.parameters.tensors) {
            for (x, y) in zip(a.scalars, b.scalars) { maxDifference = max(maxDifference, abs(x.tensorDouble - y.tensorDouble)) }
        }
        XCTAssertEqual(maxDifference, 0, "resumed weights differ by \(maxDifference)")
        XCTAssertEqual(full.average.shadow, second.average.shadow)
        XCTAssertEqual(full.optimizer.secondMoments, second.optimizer.secondMoments)
        XCTAssertEqual(full.schedule, second.schedule)
        // And training moved the weights at all (the comparison is not vacuous).
        let initial = try Trainer<T>(settings: try Fixture.tinySettings(output: dirB), frames: frames)
        let moved = zip(initial.model.parameters.tensors, full.model.parameters.tensors).contains { $0.scalars != $1.scalars }
        XCTAssertTrue(moved)
        let logLines = try String(contentsOfFile: (dirB as NSString).appendingPathComponent("log.jsonl"), encoding: .utf8)
            .split(separator: "\n")
        XCTAssertEqual(logLines.count, 4)
    }

    /// When the log cannot be created (here a directory stands where the log file goes), the run
    /// stops with an error naming the log, before any epoch, instead of training without one.
    func testUncreatableLogIsAnErrorNamingIt() throws {
        let dir = try Fixture.scratch("bad-log")
        let log = (dir as NSString).appendingPathComponent("log.jsonl")
        try FileManager.default.createDirectory(atPath: log, withIntermediateDirectories: true)
        let trainer = try Trainer<Double>(settings: try Fixture.tinySettings(output: dir), frames: try Fixture.ethanol())
        XCTAssertThrowsError(try trainer.run(resume: false)) { error in
            XCTAssertTrue(error is TrainingError, "\(error)")
            XCTAssertTrue("\(error)".contains(log), "'\(error)' does not name \(log)")
        }
        XCTAssertEqual(trainer.epoch, 0)
    }

    /// A tiny smooth model trained for 60 epochs (180 steps) on 12 ethanol frames: the training
    /// loss falls by more than 5×; the saved best model file loads with `ENINetModel` and gives
    /// the energy and forces of the averaged weights it was saved from.
    func testTinyEndToEndTrainingLearnsAndSavesALoadableModel() throws {
        let frames = try Fixture.ethanol()
        let dir = try Fixture.scratch("e2e")
        let settings = try Fixture.tinySettings(output: dir, extra: ["optimizer.max_epochs": .integer(60), "optimizer.learning_rate": .float(1e-2),
                                                                     "loss.force_weight": .float(1)])
        let trainer = try Trainer<Double>(settings: settings, frames: frames)
        let batch = try trainer.batch(trainer.split.train)
        let before = try trainer.model.loss(on: batch, weights: settings.weights, differentiable: false).total.item
        var reports: [EpochReport] = []
        // The averaged weights' prediction on a validation frame at each best epoch: what the
        // saved file must reproduce, whichever epoch was best.
        let frame = frames[trainer.split.validation[0]]
        let prepared = try PreparedFrame(frame, configuration: trainer.model.configuration)
        var bestPrediction: Double?
        _ = try trainer.run(resume: false, progress: { report in
            reports.append(report)
            guard report.isBest else { return }
            bestPrediction = try? trainer.average.withAveragedWeights(trainer.model.parameters.tensors) {
                try trainer.model.loss(on: try TrainingBatch([prepared]), weights: settings.weights, differentiable: false)
            }.predictedEnergies[0]
        })
        let after = try trainer.model.loss(on: batch, weights: settings.weights, differentiable: false).total.item
        print("tiny e2e: train loss \(before) -> \(after); first epoch \(reports.first?.trainLoss ?? 0), last \(reports.last?.trainLoss ?? 0)")
        XCTAssertLessThan(after, before / 5)
        XCTAssertTrue(reports.contains { $0.isBest })
        XCTAssertTrue(reports.last?.line.contains("meV/atom") ?? false)

        // The saved file holds the last best epoch's averaged weights (as float64 for a Double
        // run): the inference path and the differentiable network on it agree, and both give
        // that epoch's prediction.
        let saved = try ENINetModel(contentsOf: settings.modelPath, precision: .double)
        XCTAssertEqual(saved.configuration, trainer.model.configuration)
        let reference = try ENINetDifferentiableModel<Double>(file: try ENINetModelFile(contentsOf: settings.modelPath))
        let out = try saved.evaluate(atomicNumbers: frame.atomicNumbers, positions: frame.positions, cell: nil)
        let differentiable = try reference.loss(on: try TrainingBatch([prepared]), weights: settings.weights, differentiable: false)
        XCTAssertEqual(out.energy, differentiable.predictedEnergies[0], accuracy: 1e-9)
        for i in 0..<frame.atomCount { XCTAssertEqual(out.forces[i].y, differentiable.predictedForces[i].y, accuracy: 1e-8) }
        XCTAssertEqual(out.energy, try XCTUnwrap(bestPrediction), accuracy: 1e-9, "the saved model is not the best epoch's averaged weights")
        // Training moved on after its best epoch, or the check above could not tell the two apart.
        let live = try trainer.average.withAveragedWeights(trainer.model.parameters.tensors) {
            try trainer.model.loss(on: try TrainingBatch([prepared]), weights: settings.weights, differentiable: false)
        }
        if reports.last?.isBest != true { XCTAssertNotEqual(live.predictedEnergies[0], out.energy) }
    }

    /// A trained model records the elements of its training frames as `species`, and where it
    /// came from; a model fine-tuned from one with species knows the old and the new elements,
    /// one fine-tuned from a model without species still records none. The frames of the
    /// fixture are ethanol (H, C, O); the initial model claims only H and C.
    func testModelsRecordTheirSpeciesAndProvenance() throws {
        let frames = try Fixture.ethanol()
        let dir = try Fixture.scratch("species")
        let trainer = try Trainer<Double>(settings: try Fixture.tinySettings(output: dir), frames: frames)
        let c = trainer.model.configuration
        XCTAssertEqual(c.species, [1, 6, 8])
        XCTAssertEqual(c.provenance["data"], "ethanol-20.extxyz")
        XCTAssertEqual(c.provenance["data_frames"], "20")
        XCTAssertEqual(c.provenance["training_frames"], "12")
        XCTAssertEqual(c.provenance["validation_frames"], "4")
        XCTAssertEqual(c.provenance["split"], "random, seed 1")
        XCTAssertNil(c.provenance["initial_model"])

        for (claimed, expected) in [([1, 6], [1, 6, 8]), ([], [])] {
            var initial = try trainer.model.modelFile(dtype: .float64)
            initial.configuration.species = claimed
            let path = (dir as NSString).appendingPathComponent("initial-\(claimed.count).safetensors")
            try initial.write(to: path)
            let tuned = try Trainer<Double>(settings: try Fixture.tinySettings(output: dir, extra: ["model.initial": .string(path)]),
                                            frames: frames)
            XCTAssertEqual(tuned.model.configuration.species, expected, "initial species \(claimed)")
            XCTAssertEqual(tuned.model.configuration.provenance["initial_model"], "initial-\(claimed.count).safetensors")
        }
    }

    /// `model.vector_norm_epsilon` beside `model.initial` replaces the initial model's ε (the one
    /// non-shape option a fine-tune may change: the shipped `energy-stable` ethanol model was
    /// retrained that way); without the key the initial ε stays, and an initial model with the
    /// reference max-min norm, which has no ε, is refused naming its file.
    func testFineTuningTakesTheGivenVectorNormEpsilon() throws {
        let frames = try Fixture.ethanol()
        let dir = try Fixture.scratch("fine-tune-epsilon")
        let fresh = try Trainer<Double>(settings: try Fixture.tinySettings(output: dir), frames: frames)
        XCTAssertEqual(fresh.model.configuration.vectorNormEpsilon, TrainingSettings.defaultVectorNormEpsilon)
        var initial = try fresh.model.modelFile(dtype: .float64)
        initial.configuration.vectorNormEpsilon = 1e-8
        let path = (dir as NSString).appendingPathComponent("initial-1e-8.safetensors")
        try initial.write(to: path)
        let kept = try Trainer<Double>(settings: try Fixture.tinySettings(output: dir, extra: ["model.initial": .string(path)]),
                                       frames: frames)
        XCTAssertEqual(kept.model.configuration.vectorNormEpsilon, 1e-8)
        let replaced = try Trainer<Double>(settings: try Fixture.tinySettings(output: dir, extra: [
            "model.initial": .string(path), "model.vector_norm_epsilon": .float(1e-3)]), frames: frames)
        XCTAssertEqual(replaced.model.configuration.vectorNormEpsilon, 1e-3)
        XCTAssertEqual(try replaced.model.modelFile(dtype: .float64).configuration.vectorNormEpsilon, 1e-3, "the saved file")

        let reference = try Trainer<Double>(settings: try Fixture.tinySettings(output: dir, extra: ["model.variant": .string("reference")]),
                                            frames: frames)
        let referencePath = (dir as NSString).appendingPathComponent("initial-reference.safetensors")
        try reference.model.modelFile(dtype: .float64).write(to: referencePath)
        XCTAssertThrowsError(try Trainer<Double>(settings: try Fixture.tinySettings(output: dir, extra: [
            "model.initial": .string(referencePath), "model.vector_norm_epsilon": .float(1e-3)]), frames: frames)) {
            XCTAssertTrue("\($0)".contains("initial-reference.safetensors: model.vector_norm_epsilon is given, but model.initial uses the reference max-min vector norm"), "\($0)")
        }
    }

    /// A validation or test frame with an element that no training frame has is refused before
    /// training, naming the frame and the atom. It used to be scored with the element's untrained
    /// embedding row (validation) or to fail only after the whole training (test). An initial
    /// model that records the element among its species makes the same frames acceptable.
    func testAnElementNoTrainingFrameHasIsRefusedBeforeTraining() throws {
        let frames = try Fixture.ethanol()
        let dir = try Fixture.scratch("unseen-element")
        let settings = try Fixture.tinySettings(output: dir)
        let split = try Trainer<Double>(settings: settings, frames: frames).split
        for (part, i) in [("validation", split.validation[1]), ("test", split.test[2])] {
            var altered = frames
            altered[i].atomicNumbers[3] = 7
            XCTAssertThrowsError(try Trainer<Double>(settings: settings, frames: altered), part) { error in
                let message = "\(error)"
                XCTAssertTrue(error is TrainingError, message)
                for expected in ["frame \(i), a \(part) frame", "atom 3 is N (atomic number 7)", "its species: H, C, O"] {
                    XCTAssertTrue(message.contains(expected), "'\(message)' lacks '\(expected)'")
                }
            }
            var initial = try Trainer<Double>(settings: settings, frames: frames).model.modelFile(dtype: .float64)
            initial.configuration.species = [1, 6, 7, 8]
            let path = (dir as NSString).appendingPathComponent("initial-with-nitrogen.safetensors")
            try initial.write(to: path)
            let tuned = try Trainer<Double>(settings: try Fixture.tinySettings(output: dir, extra: ["model.initial": .string(path)]),
                                            frames: altered)
            XCTAssertEqual(tuned.model.configuration.species, [1, 6, 7, 8])
        }
    }

    /// The ENINet reference split file format (`train`/`valid`/`test` arrays) and seeded random splits.
    func testSplits() throws {
        let a = try DatasetSplit.random(frameCount: 100, train: 0.8, validation: 10, test: nil, seed: 5)
        let b = try DatasetSplit.random(frameCount: 100, train: 0.8, validation: 10, test: nil, seed: 5)
        let c = try DatasetSplit.random(frameCount: 100, train: 0.8, validation: 10, test: nil, seed: 6)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
        XCTAssertEqual(a.train.count, 80); XCTAssertEqual(a.validation.count, 10); XCTAssertEqual(a.test.count, 10)
        XCTAssertEqual(Set(a.train + a.validation + a.test).count, 100)
        XCTAssertThrowsError(try DatasetSplit.random(frameCount: 10, train: 8, validation: 5, test: nil, seed: 1))
        let dir = try Fixture.scratch("split")
        let path = (dir as NSString).appendingPathComponent("split.json")
        try #"{"recipe": "x", "train": [0, 2, 3], "valid": [1], "test": [4]}"#.write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(try DatasetSplit.read(path: path, frameCount: 5), DatasetSplit(train: [0, 2, 3], validation: [1], test: [4]))
        XCTAssertThrowsError(try DatasetSplit.read(path: path, frameCount: 4)) { error in
            XCTAssertTrue("\(error)".contains("test[0]"), "\(error)")
        }
    }

    /// Frames of `data.extra_training_file` join the training split only, shift neither the
    /// validation nor the test frames, and change the fitted statistics (they are trained on);
    /// a bad extra frame is named by its own file and index.
    func testExtraTrainingFramesJoinTheTrainingSplitOnly() throws {
        let frames = try Fixture.ethanol()
        let dataset = Array(frames.prefix(20)), extra = Array(frames.suffix(4))
        let dir = try Fixture.scratch("extra")
        let settings = try Fixture.tinySettings(output: dir, extra: ["data.extra_training_file": .string("/data/extra.extxyz")])
        XCTAssertEqual(settings.extraTrainingFile, "/data/extra.extxyz")
        let plain = try Trainer<Double>(settings: try Fixture.tinySettings(output: dir), frames: dataset)
        let augmented = try Trainer<Double>(settings: settings, frames: dataset + extra, extraTrainingFrames: extra.count)
        XCTAssertEqual(augmented.split.train, plain.split.train + [20, 21, 22, 23])
        XCTAssertEqual(augmented.split.validation, plain.split.validation)
        XCTAssertEqual(augmented.split.test, plain.split.test)
        XCTAssertNotEqual(augmented.statistics.mean, plain.statistics.mean)
        var broken = extra
        broken[2].positions[1] = broken[2].positions[0]  // coinciding atoms: no graph
        XCTAssertThrowsError(try Trainer<Double>(settings: settings, frames: dataset + broken, extraTrainingFrames: broken.count)) { error in
            XCTAssertTrue("\(error)".contains("/data/extra.extxyz: frame 2"), "\(error)")
        }
    }
}
