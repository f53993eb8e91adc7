import Foundation
import ENINet
import Geometry
import Training
import XCTest

/// Inputs found by probing `train` and `evaluate --data` with damaged files (each case crashed,
/// lost or mixed up output, or passed nonsense silently), and what they must give instead.
final class DataAndOutputSafetyTests: XCTestCase {
    private let frame = """
    2
    Properties=species:S:1:pos:R:3:forces:R:3 energy=-10.5 pbc="F F F"
    H 0 0 0 0.1 0 0
    H 0 0 0.74 -0.1 0 0

    """

    private func parseError(_ text: String, line: UInt = #line) -> String {
        do {
            _ = try ExtendedXYZDataset.parse(text, source: "d.extxyz")
            XCTFail("parsed", line: line)
            return ""
        } catch {
            XCTAssertTrue(error is TrainingError, "\(error)", line: line)
            return "\(error)"
        }
    }

    /// A count line of 10⁹ or Int.max made the reader reserve memory for that many atoms first
    /// (an abort: "failed to allocate 32000000032 bytes", or heap corruption).
    func testAnImplausibleAtomCountIsAnErrorNotAnAllocation() {
        for count in ["1000000000", "\(Int.max)", "4611686018427387904"] {
            let message = parseError(frame.replacingOccurrences(of: "2\nProp", with: "\(count)\nProp"))
            XCTAssertTrue(message.contains("only 2 of \(count)") || message.contains("ends after"), message)
        }
    }

    /// Swift reads "\r\n" as one character; a split on "\n" left a CRLF file one line long.
    func testWindowsLineEndingsReadAsUnixOnes() throws {
        let unix = try ExtendedXYZDataset.parse(frame + frame, source: "u")
        let windows = try ExtendedXYZDataset.parse((frame + frame).replacingOccurrences(of: "\n", with: "\r\n"), source: "w")
        XCTAssertEqual(windows.count, 2)
        XCTAssertEqual(windows.map(\.energy), unix.map(\.energy))
        XCTAssertEqual(windows[1].forces, unix[1].forces)
    }

    /// Finite but absurd labels squared to infinity in the loss: the run saved no model, logged
    /// `{}` and still printed "best model".
    func testLabelsBeyondChemistryNameTheFrameAndLine() {
        let second = frame.replacingOccurrences(of: "-10.5", with: "1e308")
        let message = parseError(frame + second)
        for part in ["frame 1", "line 5", "energy 1e+308", "beyond"] { XCTAssertTrue(message.contains(part), message) }
        XCTAssertTrue(parseError(frame.replacingOccurrences(of: "0.1 0 0", with: "1e9 0 0")).contains("force component beyond"))
        XCTAssertTrue(parseError(frame.replacingOccurrences(of: "H 0 0 0.74", with: "H 0 0 1e300")).contains("position coordinate beyond"))
        XCTAssertTrue(parseError(frame.replacingOccurrences(of: "-10.5", with: "nan")).contains("(line 1)"))
    }

    /// MACE-style files keep their labels as REF_energy, REF_forces and REF_dipole; they were
    /// refused as having no energy or forces.
    func testReferenceLabelsUnderREFNamesAreRead() throws {
        let reference = frame.replacingOccurrences(of: "forces:R:3 energy=-10.5", with: "REF_forces:R:3 REF_energy=-10.5 REF_dipole=\"0 0 0.2\"")
        let frames = try ExtendedXYZDataset.parse(reference, source: "ref")
        XCTAssertEqual(frames[0].energy, -10.5)
        XCTAssertEqual(frames[0].forces[1].x, -0.1)
        XCTAssertEqual(frames[0].dipole?.z, 0.2)
        XCTAssertTrue(parseError(frame.replacingOccurrences(of: "energy=-10.5", with: "E=-10.5")).contains("REF_energy"))
    }

    /// The training reader took `pbc="Q Q Q"` as non-periodic, a one-column force as (f, 0, 0)
    /// and ignored extra atom columns, where the structure reader refuses all three.
    func testPeriodicFlagsForceWidthAndColumnCountAreChecked() {
        let periodic = frame.replacingOccurrences(of: "energy=-10.5 pbc=\"F F F\"", with: "Lattice=\"9 0 0 0 9 0 0 0 9\" energy=-10.5 pbc=\"Q Q Q\"")
        XCTAssertTrue(parseError(periodic).contains("'Q' is not T or F"))
        let narrow = frame.replacingOccurrences(of: "forces:R:3", with: "forces:R:1").replacingOccurrences(of: " 0.1 0 0", with: " 0.1")
            .replacingOccurrences(of: "-0.1 0 0", with: "-0.1")
        XCTAssertTrue(parseError(narrow).contains("forces must have 3 columns"))
        XCTAssertTrue(parseError(frame.replacingOccurrences(of: "H 0 0 0 0.1 0 0", with: "H 0 0 0 0.1 0 0 7")).contains("has 8 columns, Properties needs 7"))
        XCTAssertNoThrow(try ExtendedXYZDataset.parse(periodic.replacingOccurrences(of: "Q Q Q", with: "T True f"), source: "ok"))
    }

    /// 0.8 + 0.1 + 0.1 of 25 frames rounded to 20 + 3 + 3 and was refused as 26 frames.
    func testFractionsThatSumToOneFitAfterRounding() throws {
        let split = try DatasetSplit.random(frameCount: 25, train: 0.8, validation: 0.1, test: 0.1, seed: 1)
        XCTAssertEqual([split.train.count, split.validation.count, split.test.count], [20, 3, 2])
        XCTAssertEqual(Set(split.train + split.validation + split.test).count, 25)
        let halves = try DatasetSplit.random(frameCount: 5, train: 0.5, validation: 0.5, test: nil, seed: 1)
        XCTAssertEqual([halves.train.count, halves.validation.count, halves.test.count], [3, 2, 0])
        // Counts that do not fit are still refused: nothing was rounded.
        XCTAssertThrowsError(try DatasetSplit.random(frameCount: 25, train: 20, validation: 3, test: 3, seed: 1))
    }

    /// Split files with a frame in two parts, a frame twice, `true` as an index, or a misspelt
    /// list name were accepted; a description key (as in the shared ethanol split) still is.
    func testSplitFilesAreCheckedForOverlapsAndMisspeltLists() throws {
        let dir = try Fixture.scratch("splits")
        func error(_ json: String) -> String {
            let path = (dir as NSString).appendingPathComponent("s.json")
            _ = FileManager.default.createFile(atPath: path, contents: Data(json.utf8))
            do { _ = try DatasetSplit.read(path: path, frameCount: 10); return "" } catch { return "\(error)" }
        }
        XCTAssertTrue(error(#"{"train": [0, 1, 2], "valid": [2, 3]}"#).contains("frame 2 is listed in both train and validation"))
        XCTAssertTrue(error(#"{"train": [0, 1, 1], "valid": [3]}"#).contains("frame 1 is listed twice in train"))
        XCTAssertTrue(error(#"{"train": [0, true], "valid": [3]}"#).contains("train[1]"))
        XCTAssertTrue(error(#"{"train": [0], "valid": [3], "tset": [4]}"#).contains("unknown key 'tset'"))
        XCTAssertTrue(error(#"{"train": [0], "valid": [3], "validation": [4]}"#).contains("both 'valid' and 'validation'"))
        XCTAssertEqual(error(#"{"recipe": "seed 1", "train": [0, 1], "valid": [3], "test": [4]}"#), "")
    }

    func testOutputsNamingOneFileAndDipoleModelsWithEnergyWeightsAreRefused() {
        func error(_ extra: [String: SettingValue]) -> String {
            var values: [String: SettingValue] = ["data.file": .string("x.extxyz")]
            for (k, v) in extra { values[k] = v }
            do { _ = try TrainingSettings(values: values, source: "t.toml", baseDirectory: "/tmp"); return "" } catch { return "\(error)" }
        }
        XCTAssertTrue(error(["output.model": .string("same"), "output.checkpoint": .string("same")])
            .contains("'output.checkpoint' and 'output.model' name the same file"))
        XCTAssertTrue(error(["output.log": .string("./m.safetensors"), "output.model": .string("m.safetensors")]).contains("the same file"))
        XCTAssertTrue(error(["output.model": .string(".")]).contains("must name a file"))
        XCTAssertTrue(error(["output.directory": .string("."), "output.log": .string("x.extxyz")]).contains("'output.log' would overwrite data.file"))
        XCTAssertTrue(error(["data.extra_training_file": .string("x.extxyz")]).contains("is data.file itself"))
        XCTAssertTrue(error(["model.target": .string("dipole"), "loss.energy_weight": .float(1)]).contains("'loss.energy_weight' must be 0 for a dipole model"))
        XCTAssertTrue(error(["model.interactions": .integer(0)]).contains("outside 1...32"))
        XCTAssertEqual(error(["model.target": .string("dipole")]), "")
    }

    /// A checkpoint's counters went through `Int(double)`: 1e30 trapped (SIGILL), -5 ran "epoch -4".
    func testDamagedCheckpointCountersAreRefused() throws {
        let dir = try Fixture.scratch("damaged-checkpoint")
        let settings = try Fixture.tinySettings(output: dir, extra: ["optimizer.max_epochs": .integer(1)])
        _ = try Trainer<Double>(settings: settings, frames: try Fixture.ethanol()).run(resume: false)
        let original = try SafeTensorsFile(contentsOf: settings.checkpointPath)
        let state = try XCTUnwrap(original.metadata["training_state"])
        for (key, value) in [("epoch", "1e30"), ("step", "-3"), ("adam_steps", "2.5"), ("epochs_since_best", "1e25")] {
            var damaged = original
            let pattern = try NSRegularExpression(pattern: "\"\(key)\":[^,}]*")
            damaged.metadata["training_state"] = pattern.stringByReplacingMatches(
                in: state, range: NSRange(state.startIndex..., in: state), withTemplate: "\"\(key)\":\(value)")
            try damaged.write(to: settings.checkpointPath)
            let resumed = try Trainer<Double>(settings: try Fixture.tinySettings(output: dir, extra: ["optimizer.max_epochs": .integer(2)]),
                                              frames: try Fixture.ethanol())
            XCTAssertThrowsError(try resumed.run(resume: true), key) { error in
                XCTAssertTrue("\(error)".contains("training_state.\(key)"), "\(error)")
            }
        }
        var badBits = original
        badBits.metadata["training_state"] = state.replacingOccurrences(
            of: #""best_validation_loss_bits":"\d+""#, with: "\"best_validation_loss_bits\":\"\(Double.nan.bitPattern)\"", options: .regularExpression)
        try badBits.write(to: settings.checkpointPath)
        XCTAssertThrowsError(try Trainer<Double>(settings: settings, frames: try Fixture.ethanol()).run(resume: true)) { error in
            XCTAssertTrue("\(error)".contains("best_validation_loss_bits"), "\(error)")
        }
    }

    /// The default ε of the smooth norm moved from 1e-8 to 1e-2. A smooth run started before,
    /// with a configuration that never stated it, is refused on resume with the key and value to
    /// add, and resumes once they are added. A reference-variant run, whose max-min norm does not
    /// read ε, resumes whatever ε its checkpoint records.
    func testARunStartedBeforeTheEpsilonDefaultChangedResumes() throws {
        let frames = try Fixture.ethanol()
        let dir = try Fixture.scratch("epsilon-resume")
        let old = try Fixture.tinySettings(output: dir, extra: ["optimizer.max_epochs": .integer(1), "model.vector_norm_epsilon": .float(1e-8)])
        _ = try Trainer<Double>(settings: old, frames: frames).run(resume: false)
        let unstated = try Fixture.tinySettings(output: dir, extra: ["optimizer.max_epochs": .integer(2)])
        XCTAssertThrowsError(try Trainer<Double>(settings: unstated, frames: frames).run(resume: true)) { error in
            for expected in ["checkpoint's vector_norm_epsilon is 1e-08, these settings give 0.01", "set model.vector_norm_epsilon = 1e-08"] {
                XCTAssertTrue("\(error)".contains(expected), "'\(error)' lacks '\(expected)'")
            }
        }
        let stated = try Trainer<Double>(settings: try Fixture.tinySettings(output: dir, extra: [
            "optimizer.max_epochs": .integer(2), "model.vector_norm_epsilon": .float(1e-8)]), frames: frames)
        _ = try stated.run(resume: true)
        XCTAssertEqual(stated.epoch, 2)

        let referenceDir = try Fixture.scratch("epsilon-resume-reference")
        let reference = try Fixture.tinySettings(output: referenceDir, extra: ["optimizer.max_epochs": .integer(1), "model.variant": .string("reference")])
        _ = try Trainer<Double>(settings: reference, frames: frames).run(resume: false)
        var checkpoint = try SafeTensorsFile(contentsOf: reference.checkpointPath)
        let configuration = try XCTUnwrap(checkpoint.metadata["eninet_config"])
        let altered = configuration.replacingOccurrences(of: #""vector_norm_epsilon":[^,}]*"#, with: "\"vector_norm_epsilon\":0.5", options: .regularExpression)
        XCTAssertNotEqual(altered, configuration)
        checkpoint.metadata["eninet_config"] = altered
        try checkpoint.write(to: reference.checkpointPath)
        let resumed = try Trainer<Double>(settings: try Fixture.tinySettings(output: referenceDir, extra: [
            "optimizer.max_epochs": .integer(2), "model.variant": .string("reference")]), frames: frames)
        _ = try resumed.run(resume: true)
        XCTAssertEqual(resumed.epoch, 2)
    }

    /// A run killed after its log line and before its checkpoint left a log one epoch ahead (and
    /// a kill inside a line left half of it); a resume then logged that epoch twice, and a
    /// deleted log failed only after an epoch.
    func testResumeKeepsTheLogInStepWithTheCheckpoint() throws {
        let dir = try Fixture.scratch("log-in-step")
        let frames = try Fixture.ethanol()
        let one = try Fixture.tinySettings(output: dir, extra: ["optimizer.max_epochs": .integer(1)])
        let two = try Fixture.tinySettings(output: dir, extra: ["optimizer.max_epochs": .integer(2)])
        _ = try Trainer<Double>(settings: one, frames: frames).run(resume: false)
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: one.logPath))
        handle.seekToEndOfFile()
        handle.write(Data("{\"epoch\":2,\"train_loss\":1}\n{\"epoch\":3,\"tra".utf8))
        try handle.close()
        _ = try Trainer<Double>(settings: two, frames: frames).run(resume: true)
        func epochs() throws -> [Int] {
            try String(contentsOfFile: one.logPath, encoding: .utf8).split(separator: "\n").map { line in
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                return try XCTUnwrap(object?["epoch"] as? Int)
            }
        }
        XCTAssertEqual(try epochs(), [1, 2])

        try FileManager.default.removeItem(atPath: one.logPath)
        let three = try Fixture.tinySettings(output: dir, extra: ["optimizer.max_epochs": .integer(3)])
        _ = try Trainer<Double>(settings: three, frames: frames).run(resume: true)
        XCTAssertEqual(try epochs(), [3])
    }

    /// A stop request between steps ends the run with the last finished epoch's files, and a
    /// resume from them ends where an uninterrupted run does.
    func testAStopRequestLeavesAResumableCheckpoint() throws {
        let frames = try Fixture.ethanol()
        let dirA = try Fixture.scratch("stop-a"), dirB = try Fixture.scratch("stop-b")
        let full = try Trainer<Double>(settings: try Fixture.tinySettings(output: dirA, extra: ["optimizer.max_epochs": .integer(3)]), frames: frames)
        _ = try full.run(resume: false)
        let settings = try Fixture.tinySettings(output: dirB, extra: ["optimizer.max_epochs": .integer(3)])
        let stopped = try Trainer<Double>(settings: settings, frames: frames)
        var polls = 0
        // Three steps per epoch: the fifth poll comes inside the second epoch.
        XCTAssertThrowsError(try stopped.run(resume: false, stopRequested: { polls += 1; return polls == 5 })) { error in
            XCTAssertEqual((error as? TrainingStopped)?.epoch, 1, "\(error)")
        }
        let resumed = try Trainer<Double>(settings: settings, frames: frames)
        _ = try resumed.run(resume: true)
        XCTAssertEqual(resumed.epoch, 3)
        XCTAssertEqual(zip(full.model.parameters.tensors, resumed.model.parameters.tensors).filter { $0.scalars != $1.scalars }.count, 0)
        XCTAssertEqual(try String(contentsOfFile: settings.logPath, encoding: .utf8).split(separator: "\n").count, 3)
    }

    /// A resume after a time-limit stop trained one more epoch each time.
    func testAResumePastTheTimeLimitTrainsNothing() throws {
        let dir = try Fixture.scratch("time-limit")
        let settings = try Fixture.tinySettings(output: dir, extra: ["optimizer.max_epochs": .integer(10),
                                                                     "optimizer.time_limit_minutes": .float(1e-7)])
        let first = try Trainer<Double>(settings: settings, frames: try Fixture.ethanol())
        let report = try XCTUnwrap(try first.run(resume: false))
        XCTAssertEqual(first.epoch, 1)
        // The limit has passed: no time is left, whatever nine more epochs would take.
        XCTAssertEqual(report.etaSeconds, 0)
        let again = try Trainer<Double>(settings: settings, frames: try Fixture.ethanol())
        XCTAssertNil(try again.run(resume: true))
        XCTAssertEqual(again.epoch, 1)
    }

    /// A fresh run into the folder of an earlier one changes nothing until its first epoch
    /// ends: a forgotten `--resume` stopped by Ctrl-C keeps the earlier run resumable (deleting
    /// its checkpoint at the start lost it). After that epoch the log holds the new run's lines.
    func testAFreshRunKeepsTheEarlierRunsFilesUntilItsFirstEpoch() throws {
        let dir = try Fixture.scratch("fresh-run")
        let settings = try Fixture.tinySettings(output: dir, extra: ["optimizer.max_epochs": .integer(2)])
        _ = try Trainer<Double>(settings: settings, frames: try Fixture.ethanol()).run(resume: false)
        let files = [settings.checkpointPath, settings.modelPath, settings.logPath]
        let before = try files.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }
        XCTAssertThrowsError(try Trainer<Double>(settings: settings, frames: try Fixture.ethanol()).run(resume: false, stopRequested: { true }))
        XCTAssertEqual(try files.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }, before)
        let longer = try Fixture.tinySettings(output: dir, extra: ["optimizer.max_epochs": .integer(3)])
        let resumed = try Trainer<Double>(settings: longer, frames: try Fixture.ethanol())
        _ = try resumed.run(resume: true)
        XCTAssertEqual(resumed.epoch, 3)

        var polls = 0
        XCTAssertThrowsError(try Trainer<Double>(settings: settings, frames: try Fixture.ethanol())
            .run(resume: false, stopRequested: { polls += 1; return polls == 5 }))
        let lines = try String(contentsOfFile: settings.logPath, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "the new run's first epoch alone")
        XCTAssertTrue(lines.first?.contains("\"epoch\":1") ?? false)
    }

    /// Metrics with an infinite error were written as `{}` (Foundation's JSON writer fails on
    /// infinity); now the finite keys stay and the infinite one is null.
    func testInfiniteMetricsStayValidJSON() throws {
        var metrics = ErrorMetrics()
        metrics.add(atomicNumbers: [1], energy: 1e200, reference: 0, forces: [Vec3(0, 0, 0)], referenceForces: [Vec3(0, 0, 0)],
                    dipole: nil, referenceDipole: nil)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(metrics.jsonString().utf8)) as? [String: Any])
        XCTAssertEqual(object["frames"] as? Int, 1)
        XCTAssertTrue(object["energy_rmse_meV_per_atom"] is NSNull, "\(object)")
        XCTAssertEqual(object["force_mae_meV_per_A"] as? Double, 0)
    }

    /// A dipole model scored frames without a dipole as nothing: `{"frames": 12}` and exit 0.
    func testADipoleModelRefusesFramesWithoutADipole() throws {
        var generator = SplitMix64(seed: 3)
        var configuration = ENINetConfiguration(featureCount: 4, tripletFeatureCount: 2, radialBasisCount: 4, cutoff: 3,
                                                interactionCount: 1, averageNeighborCount: 6)
        configuration.target = .dipole
        let network = try ENINetDifferentiableModel<Double>(configuration: configuration, using: &generator)
        let model = try ENINetModel(file: try network.modelFile(dtype: .float64), precision: .double)
        var frames = Array(try Fixture.ethanol().prefix(3))
        for k in frames.indices { frames[k].dipole = nil }
        XCTAssertThrowsError(try DatasetEvaluation.evaluate(model: model, frames: frames)) { error in
            XCTAssertEqual((error as? FrameEvaluationError)?.frame, 0, "\(error)")
            XCTAssertTrue("\(error)".contains("no reference dipole"), "\(error)")
        }
        for k in frames.indices { frames[k].dipole = Vec3(0.1, 0, 0) }
        XCTAssertEqual(try DatasetEvaluation.evaluate(model: model, frames: frames).frameCount, 3)
    }
}
