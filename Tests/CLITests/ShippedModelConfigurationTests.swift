import Foundation
import XCTest
import ENINet

/// Every shipped model file says what its training configuration says. The README and
/// `Docs/ethanol.md` give `eninet-md train Examples/.../train-*.toml` as the exact commands
/// that made the files under `Examples/`; a model retrained with a changed key (as
/// `energy-stable/` was for `vector_norm_epsilon`) and not copied back, or a configuration
/// edited without retraining, shows here as a disagreement between the two.
final class ShippedModelConfigurationTests: XCTestCase {
    /// `[table] key = value` lines of a flat TOML file, comments dropped, strings unquoted: the
    /// shipped configurations use no more of TOML, and a key this misses fails the test loudly.
    static func keys(ofTOML text: String) -> [String: String] {
        var table = "", values: [String: String] = [:]
        for raw in text.split(separator: "\n") {
            var line = String(raw)
            if let hash = line.firstIndex(of: "#"), line[..<hash].filter({ $0 == "\"" }).count % 2 == 0 {
                line = String(line[..<hash])
            }
            line = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.hasPrefix("[") && line.hasSuffix("]") { table = String(line.dropFirst().dropLast()); continue }
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            values[table + "." + parts[0]] = parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        return values
    }

    func testEveryShippedModelRecordsWhatItsTrainingConfigurationSays() throws {
        let examples = CLI.repositoryRoot.appendingPathComponent("Examples")
        let configurations = ["ethanol/train-energy.toml", "ethanol/train-energy-stable.toml", "ethanol/train-dipole.toml",
                              "aspirin/train-energy.toml", "aspirin/train-energy-stable.toml"]
        for name in configurations {
            let configURL = examples.appendingPathComponent(name)
            let keys = Self.keys(ofTOML: try String(contentsOf: configURL, encoding: .utf8))
            let folder = configURL.deletingLastPathComponent()
            let directory = try XCTUnwrap(keys["output.directory"], name)
            let modelURL = folder.appendingPathComponent(directory).appendingPathComponent(try XCTUnwrap(keys["output.model"], name))
            guard FileManager.default.fileExists(atPath: modelURL.path) else { throw XCTSkip("\(modelURL.path) is absent") }
            let model = try ENINetModelFile(contentsOf: modelURL.path).configuration
            // Every shipped configuration states the keys below, so none rests on a default
            // that a later version may change.
            let expected: [(config: String, recorded: Double)] = [
                ("model.features", Double(model.featureCount)), ("model.triplet_features", Double(model.tripletFeatureCount)),
                ("model.rbf", Double(model.radialBasisCount)), ("model.cutoff", model.cutoff),
                ("model.interactions", Double(model.interactionCount)), ("model.vector_norm_epsilon", model.vectorNormEpsilon),
            ]
            for (configKey, recorded) in expected {
                let stated = try XCTUnwrap(keys[configKey].flatMap(Double.init), "\(name) states \(configKey)")
                XCTAssertEqual(recorded, stated, "\(name): \(configKey) against \(modelURL.lastPathComponent)")
            }
            XCTAssertEqual(model.target.rawValue, keys["model.target"], name)
            XCTAssertEqual(model.vectorNorm, (keys["model.variant"] ?? "smooth") == "smooth" ? .rms : .maxMin, name)
            let provenance = model.provenance
            XCTAssertEqual(provenance["initial_model"], keys["model.initial"].map { ($0 as NSString).lastPathComponent }, name)
            XCTAssertEqual(provenance["data"], keys["data.file"].map { ($0 as NSString).lastPathComponent }, name)
        }
    }
}
