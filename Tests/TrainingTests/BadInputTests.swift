import Foundation
import ENINet
import Geometry
import Training
import XCTest

final class BadInputTests: XCTestCase {
    private func expectError(_ text: String, containing parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ExtendedXYZDataset.parse(text, source: "bad.extxyz"), file: file, line: line) { error in
            let message = "\(error)"
            XCTAssertTrue(error is TrainingError, message, file: file, line: line)
            for p in parts { XCTAssertTrue(message.contains(p), "'\(message)' lacks '\(p)'", file: file, line: line) }
        }
    }

    private let good = """
    2
    Properties=species:S:1:pos:R:3:forces:R:3 energy=-10.5 pbc="F F F"
    H 0 0 0 0.1 0 0
    H 0 0 0.74 -0.1 0 0

    """

    func testGoodFrameParses() throws {
        let frames = try ExtendedXYZDataset.parse(good + good.replacingOccurrences(of: "-10.5", with: "-10.25"), source: "ok")
        XCTAssertEqual(frames.count, 2)
        XCTAssertEqual(frames[1].energy, -10.25)
        XCTAssertEqual(frames[0].forces[1].x, -0.1)
        XCTAssertNil(frames[0].dipole)
        let periodic = try ExtendedXYZDataset.parse("""
        1
        Lattice="3 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3:forces:R:3 energy=-1 dipole="0.1 0.2 0.3" pbc="T T F"
        Ar 0 0 0 0 0 0
        """, source: "p")
        XCTAssertEqual(periodic[0].cell?.pbc.z, false)
        XCTAssertEqual(periodic[0].dipole?.y, 0.2)
        XCTAssertEqual(try Fixture.ethanol().count, 20)
    }

    /// A frame whose atoms are piled into a cell far smaller than the cutoff (found by fuzzing:
    /// such a frame crashed `evaluate --data` and `train`): an error that names the frame. Nine
    /// atoms in a 0.3 Å cube with a 3 Å cutoff would form about 10¹⁰ triplets.
    func testAFrameInATinyCellNamesTheFrame() throws {
        var frames = Array(try Fixture.ethanol().prefix(3))
        frames[1].positions = frames[1].positions.map { $0 * 0.05 }
        frames[1].cell = try Cell.orthorhombic(Vec3(repeating: 0.3))
        var generator = SplitMix64(seed: 1)
        let configuration = ENINetConfiguration(featureCount: 4, tripletFeatureCount: 2, radialBasisCount: 4, cutoff: 3,
                                                interactionCount: 1, averageNeighborCount: 6)
        let network = try ENINetDifferentiableModel<Double>(configuration: configuration, using: &generator)
        let model = try ENINetModel(file: try network.modelFile(dtype: .float64), precision: .double)
        XCTAssertThrowsError(try DatasetEvaluation.evaluate(model: model, frames: frames)) {
            guard let error = $0 as? FrameEvaluationError else { return XCTFail("\($0)") }
            XCTAssertEqual(error.frame, 1)
            XCTAssertTrue(error.reason.contains("triplets"), error.reason)
        }
        frames.remove(at: 1)
        XCTAssertNoThrow(try DatasetEvaluation.evaluate(model: model, frames: frames))
    }

    func testMissingForcesNamesTheFrame() {
        expectError(good + "2\nProperties=species:S:1:pos:R:3 energy=-1\nH 0 0 0\nH 0 0 1\n", containing: ["frame 1", "no forces"])
    }

    func testNaNNamesFrameAndAtom() {
        expectError(good + good.replacingOccurrences(of: "-0.1 0 0", with: "nan 0 0"), containing: ["frame 1", "atom 1", "non-finite force"])
        expectError(good.replacingOccurrences(of: "-10.5", with: "nan"), containing: ["frame 0", "energy"])
    }

    func testMismatchedAtomCountNamesTheFrame() {
        expectError(good + good.replacingOccurrences(of: "2\nProp", with: "3\nProp"), containing: ["frame 1"])
        expectError(good.replacingOccurrences(of: "2\nProp", with: "5\nProp"), containing: ["frame 0", "only 2 of 5"])
        expectError("5\nProperties=species:S:1:pos:R:3:forces:R:3 energy=1\nH 0 0 0 0 0 0\n", containing: ["frame 0", "only 1 of 5"])
    }

    func testUnknownElementAndMissingEnergy() {
        expectError(good.replacingOccurrences(of: "H 0 0 0 ", with: "Xx 0 0 0 "), containing: ["frame 0", "atom 0 (line 3): unknown element 'Xx'"])
        expectError(good + good.replacingOccurrences(of: "0 0 0.74", with: "0 0 0.7x"), containing: ["frame 1", "atom 1 (line 8): position '0.7x'"])
        // A pbc flag other than T or F is refused without a Lattice too, as the structure reader does.
        expectError(good.replacingOccurrences(of: "pbc=\"F F F\"", with: "pbc=\"F F Q\""), containing: ["frame 0", "'Q' is not T or F"])
        expectError(good.replacingOccurrences(of: "energy=-10.5 ", with: ""), containing: ["frame 0", "no energy"])
    }

    func testAKeyGivenTwiceNamesTheFrameAndKey() {
        // The energy read was whichever came last; keys are read case-blind, so Energy= collides too.
        expectError(good.replacingOccurrences(of: "energy=-10.5 ", with: "energy=-10.5 Energy=-3 "), containing: ["frame 0", "'Energy' twice"])
        expectError(good.replacingOccurrences(of: "pos:R:3", with: "pos:R:3:pos:R:3"), containing: ["frame 0", "Properties names 'pos' twice"])
    }

    func testEmptyFile() {
        expectError("", containing: ["bad.extxyz", "no frames"])
        expectError("\n\n  \n", containing: ["no frames"])
    }

    func testBadConfigurationsNameTheKey() {
        func expect(_ values: [String: SettingValue], _ parts: [String], line: UInt = #line) {
            XCTAssertThrowsError(try TrainingSettings(values: values, source: "train.toml", baseDirectory: "/tmp", lines: ["optimizer.learning_rate": 7]),
                                 line: line) { error in
                for p in parts { XCTAssertTrue("\(error)".contains(p), "'\(error)' lacks '\(p)'", line: line) }
            }
        }
        let data: [String: SettingValue] = ["data.file": .string("x.extxyz")]
        expect([:], ["data.file"])
        expect(data.merging(["optimizer.learning_rate": .string("fast")]) { $1 }, ["train.toml:7", "optimizer.learning_rate", "number"])
        expect(data.merging(["optimizer.learning_rate": .float(-1)]) { $1 }, ["optimizer.learning_rate", "outside"])
        expect(data.merging(["optimizer.learnig_rate": .float(1e-3)]) { $1 }, ["unknown key 'optimizer.learnig_rate'"])
        expect(data.merging(["model.features": .integer(7)]) { $1 }, ["model.features", "even"])
        expect(data.merging(["model.target": .string("charge")]) { $1 }, ["model.target", "energy, dipole"])
        expect(data.merging(["data.batch_size": .float(2.5)]) { $1 }, ["data.batch_size", "integer"])
        expect(data.merging(["data.train": .float(12.5)]) { $1 }, ["data.train", "whole count"])
        expect(data.merging(["loss.energy_weight": .integer(0), "loss.force_weight": .integer(0)]) { $1 }, ["every loss weight is zero"])
        expect(data.merging(["output.model": .string("x.extxyz\u{0}.safetensors")]) { $1 }, ["output.model", "NUL"])
        XCTAssertNoThrow(try TrainingSettings(values: data, source: "t", baseDirectory: "/tmp"))
        XCTAssertEqual(try TrainingSettings(values: data, source: "t", baseDirectory: "/tmp").dataFile, "/tmp/x.extxyz")
        // A floor above the rate would have raised the rate from the first step.
        expect(data.merging(["optimizer.learning_rate": .float(1e-4), "optimizer.min_learning_rate": .float(1e-3)]) { $1 },
               ["optimizer.min_learning_rate", "above", "optimizer.learning_rate"])
        // Counts beside a split file were ignored without a word.
        expect(data.merging(["data.split_file": .string("split.json"), "data.validation": .integer(50)]) { $1 },
               ["data.validation", "data.split_file"])
    }

    func testALearningRateBelowTheDefaultFloorIsKept() throws {
        let settings = try TrainingSettings(values: ["data.file": .string("x.extxyz"), "optimizer.learning_rate": .float(1e-7)],
                                            source: "t", baseDirectory: "/tmp")
        let schedule = LearningRateSchedule(base: settings.learningRate, warmupSteps: 0, factor: settings.plateauFactor,
                                            patience: settings.plateauPatience, minimum: settings.minimumLearningRate)
        XCTAssertEqual(schedule.rate(step: 0), 1e-7, accuracy: 1e-20)
        XCTAssertEqual(settings.minimumLearningRate, 1e-10, accuracy: 1e-25, "reductions still reduce")
    }

    func testResumeWithoutCheckpointNamesTheFile() throws {
        let dir = try Fixture.scratch("no-checkpoint")
        let trainer = try Trainer<Double>(settings: try Fixture.tinySettings(output: dir), frames: try Fixture.ethanol())
        XCTAssertThrowsError(try trainer.run(resume: true)) { error in
            XCTAssertTrue("\(error)".contains("checkpoint.safetensors"), "\(error)")
        }
    }
}
