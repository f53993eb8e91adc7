import Foundation
import XCTest
import Trajectory

/// Issue 6 end to end through the binary: `train` turns an extended-XYZ dataset into a model
/// file, `evaluate --data --json` reports its errors with the documented keys, and `run`
/// integrates with it.
final class TrainCommandTests: XCTestCase {
    /// Without validation frames the training frames chose the best model and the plateau
    /// under the name `validation_loss`, and nothing said so.
    func testNoValidationFramesIsAWarning() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("train-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = CLI.repositoryRoot.appendingPathComponent("Tests/TrainingTests/Fixtures/ethanol-20.extxyz").path
        func train(validation: Int) throws -> CLI.Result {
            let config = """
            [data]
            file = "\(data)"
            train = 8
            validation = \(validation)
            test = 4
            [model]
            features = 8
            triplet_features = 2
            rbf = 6
            cutoff = 3.0
            interactions = 1
            [optimizer]
            max_epochs = 1
            [output]
            directory = "\(dir.path)/out\(validation)"
            """
            let path = dir.appendingPathComponent("train\(validation).toml")
            try config.write(to: path, atomically: true, encoding: .utf8)
            return try CLI.run(["train", path.path, "--quiet"], timeout: 120)
        }
        let without = try train(validation: 0)
        XCTAssertEqual(without.status, 0, without.stderr)
        XCTAssertTrue(without.stderr.contains("warning: no validation frames"), without.stderr)
        let with = try train(validation: 4)
        XCTAssertEqual(with.status, 0, with.stderr)
        XCTAssertFalse(with.stderr.contains("warning"), with.stderr)
    }

    /// A config saved as Latin-1 gave Foundation's "couldn't be opened because the text encoding
    /// of its contents can't be determined", with no line.
    func testAConfigThatIsNotUTF8NamesTheLine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("train-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("latin1.toml").path
        try Data(Array("[data]\nfile = \"x.extxyz\"\n# cutoff 5 ".utf8) + [0xC5, 0x0A]).write(to: URL(fileURLWithPath: path))
        let result = try CLI.run(["train", path, "--quiet"], timeout: 60)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains(path + ":3: not UTF-8 text"), result.stderr)
    }

    func testTrainEvaluateAndRunWithTheTrainedModel() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("train-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = CLI.repositoryRoot.appendingPathComponent("Tests/TrainingTests/Fixtures/ethanol-20.extxyz").path
        let config = """
        [data]
        file = "\(data)"
        train = 12
        validation = 4
        test = 4
        batch_size = 4
        [model]
        features = 8
        triplet_features = 4
        rbf = 8
        cutoff = 4.0
        interactions = 1
        precision = "double"
        [optimizer]
        learning_rate = 5e-3
        warmup_steps = 0
        max_epochs = 40
        [output]
        directory = "\(dir.path)/out"
        """
        try config.write(to: dir.appendingPathComponent("train.toml"), atomically: true, encoding: .utf8)
        let trained = try CLI.run(["train", dir.appendingPathComponent("train.toml").path, "--quiet"], timeout: 300)
        XCTAssertEqual(trained.status, 0, trained.stderr)
        let model = dir.appendingPathComponent("out/model.safetensors").path
        XCTAssertTrue(FileManager.default.fileExists(atPath: model))
        let log = try String(contentsOf: dir.appendingPathComponent("out/log.jsonl"), encoding: .utf8)
        let losses = log.split(separator: "\n").compactMap { line -> Double? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            return object["train_loss"] as? Double
        }
        XCTAssertEqual(losses.count, 40, log)
        XCTAssertLessThan(losses.last ?? .infinity, 0.5 * (losses.first ?? 0), "training did not lower the loss: \(losses)")
        print("train_loss by epoch:", losses.map { String(format: "%.3g", $0) }.joined(separator: " "))

        let evaluated = try CLI.run(["evaluate", "--model", model, "--data", data, "--json"])
        XCTAssertEqual(evaluated.status, 0, evaluated.stderr)
        let line = try XCTUnwrap(evaluated.stdout.split(separator: "\n").last)
        let metrics = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        XCTAssertEqual(metrics["frames"] as? Int, 20)
        // The figures against the labels worked out here from `evaluate --structure`'s predictions:
        // energies per atom per frame, forces per Cartesian component (Docs/training.md).
        let predictions = try CLI.evaluatedFrames(["--model", model, "--structure", data, "--double"])
        let labelled = try ExtendedXYZ.read(path: data)
        XCTAssertEqual(predictions.count, labelled.count)
        var energyErrors: [Double] = [], forceErrors: [Double] = []
        for (prediction, frame) in zip(predictions, labelled) {
            let energy = try XCTUnwrap(prediction["energy"] as? Double), reference = try XCTUnwrap(frame.info["energy"]?.first)
            energyErrors.append(1000 * (energy - reference) / Double(frame.positions.count))
            let forces = try XCTUnwrap(prediction["forces"] as? [[Double]]).flatMap { $0 }
            let labels = try XCTUnwrap(frame.forces).flatMap { [$0.x, $0.y, $0.z] }
            XCTAssertEqual(forces.count, labels.count)
            forceErrors += zip(forces, labels).map { 1000 * ($0 - $1) }
        }
        func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(values.count) }
        let expected = ["energy_mae_meV_per_atom": mean(energyErrors.map(abs)),
                        "energy_rmse_meV_per_atom": mean(energyErrors.map { $0 * $0 }).squareRoot(),
                        "force_mae_meV_per_A": mean(forceErrors.map(abs)),
                        "force_rmse_meV_per_A": mean(forceErrors.map { $0 * $0 }).squareRoot()]
        for (key, value) in expected {
            let printed = try XCTUnwrap(metrics[key] as? Double, "missing \(key) in \(line)")
            // `evaluate --data` runs in Float: 1e-3 holds its rounding and catches any slip of formula.
            XCTAssertEqual(printed, value, accuracy: 1e-3 * value, key)
        }

        let deck = """
        [system]
        structure = "\(data)"
        [potential]
        type = "eninet"
        model = "\(model)"
        [dynamics]
        integrator = "verlet"
        timestep_fs = 0.25
        steps = 20
        [output]
        log_every = 0
        trajectory = "\(dir.path)/md.nc"
        trajectory_every = 10
        """
        try deck.write(to: dir.appendingPathComponent("md.toml"), atomically: true, encoding: .utf8)
        let md = try CLI.run(["run", dir.appendingPathComponent("md.toml").path, "--quiet"])
        XCTAssertEqual(md.status, 0, md.stderr)
        XCTAssertEqual(try AmberTrajectoryReader(path: dir.appendingPathComponent("md.nc").path).frameCount, 3)
    }
}
