import Foundation
import XCTest

/// `Scripts/convert-lightning-checkpoint.py` (issue 5: the optional Python converter of official
/// checkpoints) on a reference export: the converted file evaluates exactly as the export does;
/// `--energy-unit kcal/mol` turns every energy and force into eV; `--species` makes eninet-md
/// refuse other elements. Skipped without `../shared` or without python3 and numpy.
final class ConvertScriptTests: XCTestCase {
    func testConvertedExportsMatchAndRecordSpeciesAndUnits() throws {
        let export = CLI.sharedDirectory.appendingPathComponent("eninet-reference/eninet-small.safetensors")
        guard FileManager.default.fileExists(atPath: export.path) else { throw XCTSkip("../shared is absent") }
        // The first python3 on the PATH, as a user's shell would find it.
        let env = URL(fileURLWithPath: "/usr/bin/env")
        func python(_ arguments: [String]) throws -> CLI.Result { try CLI.run(["python3"] + arguments, program: env) }
        guard try python(["-c", "import numpy"]).status == 0 else { throw XCTSkip("python3 with numpy is absent") }
        let script = CLI.repositoryRoot.appendingPathComponent("Scripts/convert-lightning-checkpoint.py").path
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("convert-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

        let plain = try python([script, export.path, path("plain.safetensors")])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        let kcal = try python([script, export.path, path("kcal.safetensors"), "--species", "O,H,C", "--energy-unit", "kcal/mol"])
        XCTAssertEqual(kcal.status, 0, kcal.stderr)
        let bad = try python([script, export.path, path("bad.safetensors"), "--species", "H,Xx"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--species: 'Xx' is not an element symbol"), bad.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("bad.safetensors")))

        let water = "3\nProperties=species:S:1:pos:R:3 pbc=\"F F F\"\nO 0 0 0\nH 0.76 0.59 0\nH -0.76 0.59 0\n"
        try water.write(toFile: path("water.xyz"), atomically: true, encoding: .utf8)
        try water.replacingOccurrences(of: "O 0 0 0", with: "N 0 0 0").write(toFile: path("nitrogen.xyz"), atomically: true, encoding: .utf8)
        func evaluate(_ model: String, _ structure: String) throws -> (energy: Double, forces: [[Double]]) {
            let result = try CLI.run(["evaluate", "--model", model, "--structure", path(structure), "--json", "--double"])
            XCTAssertEqual(result.status, 0, "\(model): \(result.stderr)")
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            return (try XCTUnwrap(object["energy"] as? Double), try XCTUnwrap(object["forces"] as? [[Double]]))
        }
        // The export itself (its JSON beside it gives the configuration) against the converted
        // file; the RBF widths pass through JSON as 16-digit decimals of float32 values, which
        // the loader of the JSON rounds to float32 and the converted file keeps as written.
        let reference = try evaluate(export.path, "water.xyz")
        let converted = try evaluate(path("plain.safetensors"), "water.xyz")
        XCTAssertEqual(converted.energy, reference.energy, accuracy: 1e-12 * abs(reference.energy))
        for (f, g) in zip(converted.forces.joined(), reference.forces.joined()) { XCTAssertEqual(f, g, accuracy: 1e-10) }
        let inElectronvolts = try evaluate(path("kcal.safetensors"), "water.xyz")
        let kcalPerMole = 4184.0 / 96485.33212
        XCTAssertEqual(inElectronvolts.energy, reference.energy * kcalPerMole, accuracy: 1e-9 * abs(reference.energy))
        for (f, g) in zip(inElectronvolts.forces.joined(), reference.forces.joined()) {
            XCTAssertEqual(f, g * kcalPerMole, accuracy: 1e-9 * max(abs(g), 1e-3))
        }
        XCTAssertNoThrow(try evaluate(path("plain.safetensors"), "nitrogen.xyz"), "no species recorded: every element is accepted")
        let refused = try CLI.run(["evaluate", "--model", path("kcal.safetensors"), "--structure", path("nitrogen.xyz"), "--json"])
        XCTAssertEqual(refused.status, 1, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("atom 0 is N (atomic number 7), an element the model was not trained on (its species: H, C, O)"),
                      refused.stderr)
    }
}
