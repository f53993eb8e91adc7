import Foundation
import XCTest

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

    /// The `eninet_config` JSON of a safetensors file's `__metadata__`.
    static func configuration(ofModel url: URL) throws -> [String: Any] {
        let data = try Data(contentsOf: url)
        XCTAssertGreaterThan(data.count, 8)
        let length = data.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + length))) as? [String: Any])
        let metadata = try XCTUnwrap(header["__metadata__"] as? [String: String])
        let text = try XCTUnwrap(metadata["eninet_config"])
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    func testEveryShippedModelRecordsWhatItsTrainingConfigurationSays() throws {
        let examples = CLI.repositoryRoot.appendingPathComponent("Examples")
        let configurations = ["ethanol/train-energy.toml", "ethanol/train-energy-stable.toml", "ethanol/train-dipole.toml",
                              "aspirin/train-energy.toml"]
        for name in configurations {
            let configURL = examples.appendingPathComponent(name)
            let keys = Self.keys(ofTOML: try String(contentsOf: configURL, encoding: .utf8))
            let folder = configURL.deletingLastPathComponent()
            let directory = try XCTUnwrap(keys["output.directory"], name)
            let modelURL = folder.appendingPathComponent(directory).appendingPathComponent(try XCTUnwrap(keys["output.model"], name))
            guard FileManager.default.fileExists(atPath: modelURL.path) else { throw XCTSkip("\(modelURL.path) is absent") }
            let model = try Self.configuration(ofModel: modelURL)
            // Every shipped configuration states the keys below, so none rests on a default
            // that a later version may change.
            let expected: [(config: String, model: String)] = [
                ("model.features", "g_feat_dim"), ("model.triplet_features", "lg_feat_dim"), ("model.rbf", "n_rbf"),
                ("model.cutoff", "cutoff"), ("model.interactions", "n_interactions"), ("model.vector_norm_epsilon", "vector_norm_epsilon"),
            ]
            for (configKey, modelKey) in expected {
                let stated = try XCTUnwrap(keys[configKey].flatMap(Double.init), "\(name) states \(configKey)")
                let recorded = try XCTUnwrap((model[modelKey] as? NSNumber)?.doubleValue, "\(modelURL.lastPathComponent): \(modelKey)")
                XCTAssertEqual(recorded, stated, "\(name): \(configKey) against \(modelURL.lastPathComponent)'s \(modelKey)")
            }
            XCTAssertEqual(model["target"] as? String, keys["model.target"], name)
            XCTAssertEqual(model["vector_norm"] as? String, (keys["model.variant"] ?? "smooth") == "smooth" ? "rms" : "max_min", name)
            let provenance = try XCTUnwrap(model["provenance"] as? [String: String], name)
            XCTAssertEqual(provenance["initial_model"], keys["model.initial"].map { ($0 as NSString).lastPathComponent }, name)
            XCTAssertEqual(provenance["data"], keys["data.file"].map { ($0 as NSString).lastPathComponent }, name)
        }
    }
}
