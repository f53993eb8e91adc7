import Foundation
import ENINet
import Geometry
import Tensors
import Training
import XCTest

/// `(f(x + h) − f(x − h)) / 2h` in element `index` of `parameter`, which is put back after.
func centralDifference(of value: () throws -> Double, in parameter: Tensor<Double>, at index: Int, step h: Double) throws -> Double {
    var w = parameter.scalars
    let original = w[index]
    w[index] = original + h; try parameter.assign(w)
    let plus = try value()
    w[index] = original - h; try parameter.assign(w)
    let minus = try value()
    w[index] = original; try parameter.assign(w)
    return (plus - minus) / (2 * h)
}

enum Fixture {
    static var directory: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures") }
    static var ethanolPath: String { directory.appendingPathComponent("ethanol-20.extxyz").path }
    static func ethanol() throws -> [TrainingFrame] { try ExtendedXYZDataset.read(path: ethanolPath) }

    /// A fresh scratch directory.
    static func scratch(_ name: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("training-tests-\(name)-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.removeItem(at: url)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }

    /// Settings for a tiny smooth model on the fixture.
    static func tinySettings(output: String, extra: [String: SettingValue] = [:]) throws -> TrainingSettings {
        var values: [String: SettingValue] = [
            "data.file": .string(ethanolPath), "data.train": .integer(12), "data.validation": .integer(4), "data.batch_size": .integer(4),
            "model.features": .integer(8), "model.triplet_features": .integer(2), "model.rbf": .integer(6), "model.cutoff": .float(3.0),
            "model.interactions": .integer(1), "model.precision": .string("double"),
            "optimizer.learning_rate": .float(5e-3), "optimizer.warmup_steps": .integer(3), "optimizer.ema_decay": .float(0.9),
            "output.directory": .string(output),
        ]
        for (k, v) in extra { values[k] = v }
        return try TrainingSettings(values: values, source: "test.toml", baseDirectory: "/")
    }
}
