import Foundation
import XCTest

/// Issue 5, point 7: a model file with a missing tensor, a corrupt or truncated header, a NaN
/// weight, or a structure with an element the model has no row for gives a one-line error and exit 1.
final class ModelFileErrorTests: XCTestCase {
    /// The shipped ethanol energy model, and six atoms of its elements (two C, an O, three H) as XYZ lines.
    private static let ethanolModel = CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/energy/ethanol-energy.safetensors")
    private static let ethanolAtoms = "C 0.0 0.0 0.0\nC 1.5 0.0 0.0\nO 2.0 1.3 0.0\nH -0.4 1.0 0.2\nH -0.4 -0.5 -0.9\nH -0.4 -0.5 0.9\n"

    /// `model` with its configuration changed by `edit`, written to `url` (the data offsets
    /// count from the end of the header, so the tensors stay where they are).
    private static func model(_ model: URL, editedAs url: URL, _ edit: (inout [String: Any]) throws -> Void) throws -> URL {
        let bytes = try Data(contentsOf: model)
        let headerLength = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        var header = try XCTUnwrap(JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<(8 + headerLength))) as? [String: Any])
        var metadata = try XCTUnwrap(header["__metadata__"] as? [String: String])
        var configuration = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(metadata["eninet_config"]).utf8)) as? [String: Any])
        try edit(&configuration)
        metadata["eninet_config"] = String(decoding: try JSONSerialization.data(withJSONObject: configuration), as: UTF8.self)
        header["__metadata__"] = metadata
        let newHeader = try JSONSerialization.data(withJSONObject: header)
        var file = Data((0..<8).map { UInt8(truncatingIfNeeded: newHeader.count >> (8 * $0)) })
        file.append(newHeader)
        file.append(bytes.subdata(in: (8 + headerLength)..<bytes.count))
        try file.write(to: url)
        return url
    }

    /// The readouts of a polarizability model (the shipped dipole model's weights relabelled)
    /// turn with the molecule, α' = R α Rᵀ, and do not move with it; `--data`, which has no
    /// polarizabilities to score them against, scored it as an energy model (errors of 34,000
    /// meV/atom, exit 0) and now refuses it.
    func testPolarizabilityModelsTurnWithTheMoleculeAndAreNotScoredAsEnergies() throws {
        let dipoleModel = CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/dipole/ethanol-dipole.safetensors")
        guard FileManager.default.fileExists(atPath: dipoleModel.path) else { throw XCTSkip("\(dipoleModel.path) is absent") }
        let dir = try scratchDirectory("polarizability")
        let model = try Self.model(dipoleModel, editedAs: dir.appendingPathComponent("polarizability.safetensors")) { $0["target"] = "polarizability" }
        let positions = Self.ethanolAtoms.split(separator: "\n").map { $0.split(separator: " ").dropFirst().compactMap { Double($0) } }
        let symbols = Self.ethanolAtoms.split(separator: "\n").map { $0.split(separator: " ")[0] }
        // A rotation by 0.7 rad about (1, 2, 2)/3, and a shift.
        let axis = [1.0 / 3, 2.0 / 3, 2.0 / 3], angle = 0.7
        let k = [[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]]
        let rotation = (0..<3).map { i in (0..<3).map { j in
            (i == j ? 1 : 0) + sin(angle) * k[i][j] + (1 - cos(angle)) * (0..<3).reduce(0) { $0 + k[i][$1] * k[$1][j] }
        } }
        func turned(_ r: [Double]) -> [Double] { (0..<3).map { i in (0..<3).reduce(0) { $0 + rotation[i][$1] * r[$1] } + [3.0, -2.0, 5.0][i] } }
        func frame(_ position: ([Double]) -> [Double]) -> String {
            "6\nProperties=species:S:1:pos:R:3 pbc=\"F F F\"\n" + zip(symbols, positions).map { s, r in
                "\(s) " + position(r).map { String($0) }.joined(separator: " ")
            }.joined(separator: "\n") + "\n"
        }
        let structure = dir.appendingPathComponent("two.xyz")
        try (frame { $0 } + frame(turned)).write(to: structure, atomically: true, encoding: .utf8)
        let result = try CLI.run(["evaluate", "--model", model.path, "--structure", structure.path, "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let alphas = try result.stdout.split(separator: "\n").map { line in
            try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["polarizability"] as? [[Double]])
        }
        XCTAssertEqual(alphas.count, 2)
        let alpha = alphas[0]
        XCTAssertGreaterThan(alpha.joined().map(abs).max() ?? 0, 1e-3, "a readout of zeros would pass the rest")
        for i in 0..<3 { for j in 0..<3 {
            let expected = (0..<3).reduce(0.0) { s, a in s + (0..<3).reduce(0.0) { $0 + rotation[i][a] * alpha[a][$1] * rotation[j][$1] } }
            XCTAssertEqual(alphas[1][i][j], expected, accuracy: 1e-9, "α[\(i)][\(j)]")
            XCTAssertEqual(alpha[i][j], alpha[j][i], accuracy: 1e-12, "symmetric")
        } }

        let data = dir.appendingPathComponent("labelled.extxyz")
        let forces = Self.ethanolAtoms.split(separator: "\n").map { $0 + " 0.1 -0.2 0.3" }.joined(separator: "\n") + "\n"
        try "6\nProperties=species:S:1:pos:R:3:forces:R:3 energy=-950.0 pbc=\"F F F\"\n\(forces)"
            .write(to: data, atomically: true, encoding: .utf8)
        let scored = try CLI.run(["evaluate", "--model", model.path, "--data", data.path, "--json"])
        XCTAssertEqual(scored.status, 1, scored.stdout)
        XCTAssertTrue(scored.stderr.contains("polarizability.safetensors: the model predicts polarizabilities"), scored.stderr)
        XCTAssertTrue(scored.stdout.isEmpty, scored.stdout)
    }

    func testBadModelsAndUnknownElementsAreClearErrors() throws {
        let model = CLI.sharedDirectory.appendingPathComponent("eninet-reference/eninet-small.safetensors")
        guard FileManager.default.fileExists(atPath: model.path) else { throw XCTSkip("../shared is absent") }
        let dir = try scratchDirectory("model-errors")
        let water = dir.appendingPathComponent("water.xyz")
        try "3\nProperties=species:S:1:pos:R:3 pbc=\"F F F\"\nO 0 0 0\nH 0.76 0.59 0\nH -0.76 0.59 0\n".write(to: water, atomically: true, encoding: .utf8)
        let og = dir.appendingPathComponent("og.xyz")
        try "2\nProperties=species:S:1:pos:R:3 pbc=\"F F F\"\nOg 0 0 0\nH 0 0 0.8\n".write(to: og, atomically: true, encoding: .utf8)

        let bytes = try Data(contentsOf: model)
        let json = URL(fileURLWithPath: model.path.replacingOccurrences(of: ".safetensors", with: ".json"))
        /// The weights `data` beside the reference configuration, or that configuration edited by `edit`.
        func variant(_ name: String, _ data: Data, configuration edit: ((inout [String: Any]) -> Void)? = nil) throws -> String {
            let url = dir.appendingPathComponent(name + ".safetensors")
            try data.write(to: url)
            if let edit {
                var object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any])
                edit(&object)
                try JSONSerialization.data(withJSONObject: object).write(to: dir.appendingPathComponent(name + ".json"))
            } else {
                try FileManager.default.copyItem(at: json, to: dir.appendingPathComponent(name + ".json"))
            }
            return url.path
        }
        func hyperParameter(_ key: String, _ value: Any) -> (inout [String: Any]) -> Void {
            { object in
                var h = object["hyper_parameters"] as? [String: Any] ?? [:]
                h[key] = value
                object["hyper_parameters"] = h
            }
        }
        func scalerStd(_ value: Double) -> (inout [String: Any]) -> Void {
            { object in
                var scaler = object["scaler"] as? [String: Any] ?? [:]
                scaler["std"] = value
                object["scaler"] = scaler
            }
        }
        // A tensor renamed in the header (same length, offsets intact) is missing under its real name.
        let tensor = "readout.out.1.mix.net.2.bias"
        var renamed = bytes
        let range = try XCTUnwrap(renamed.range(of: Data(tensor.utf8)))
        renamed.replaceSubrange(range, with: Data(tensor.replacingOccurrences(of: "bias", with: "zzzz").utf8))
        var garbled = bytes
        garbled.replaceSubrange(8..<40, with: Data(repeating: 0x7B, count: 32))
        // The same tensor's first element overwritten with a NaN (float32 0x7FC00000).
        let headerLength = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<(8 + headerLength))) as? [String: Any])
        let entry = try XCTUnwrap(header[tensor] as? [String: Any])
        XCTAssertEqual(entry["dtype"] as? String, "F32")
        let begin = try XCTUnwrap((entry["data_offsets"] as? [Int])?.first)
        var poisoned = bytes
        poisoned.replaceSubrange((8 + headerLength + begin)..<(8 + headerLength + begin + 4), with: Data([0x00, 0x00, 0xC0, 0x7F]))

        let cases: [(model: String, structure: URL, fragment: String)] = [
            (model.path, og, "atomic number 118"),
            (try variant("missing", renamed), water, tensor),
            (try variant("truncated", bytes.prefix(100)), water, "truncated.safetensors"),
            (try variant("corrupt", garbled), water, "corrupt.safetensors"),
            (try variant("empty", Data()), water, "empty.safetensors"),
            (try variant("poisoned", poisoned), water, "tensor '\(tensor)' holds nan at element 0"),
            // Configurations that loaded and silently gave zero, reversed or one-layer forces.
            (try variant("no-interaction", bytes, configuration: hyperParameter("n_interactions", 0)), water, "n_interactions = 0 (at least 1)"),
            (try variant("one-of-two-layers", bytes, configuration: hyperParameter("n_interactions", 1)), water,
             "tensor 'conv_layers.threebody_conv.1."),
            (try variant("zero-std", bytes, configuration: scalerStd(0)), water, "scaler std = 0.0 (must be positive)"),
            (try variant("negative-std", bytes, configuration: scalerStd(-0.75)), water, "scaler std = -0.75 (must be positive)"),
        ]
        // The untouched model evaluates the same water: the failures come from the damage.
        let good = try CLI.run(["evaluate", "--model", model.path, "--structure", water.path, "--json"])
        XCTAssertEqual(good.status, 0, good.stderr)
        XCTAssertTrue(good.stdout.contains("\"energy\""), good.stdout)
        for c in cases {
            let result = try CLI.run(["evaluate", "--model", c.model, "--structure", c.structure.path, "--json"])
            XCTAssertFalse(result.terminatedBySignal, "\(c.model) crashed")
            XCTAssertEqual(result.status, 1, "\(c.model): \(result.stderr)")
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, "\(c.model): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(c.fragment), "\(c.model): expected '\(c.fragment)' in \(result.stderr)")
            XCTAssertTrue(result.stdout.isEmpty, "\(c.model): printed results despite the error")
        }
    }

    /// The shipped ethanol model records the elements it was trained on (H, C, O). A structure
    /// with nitrogen in it evaluated to a number before (the untrained embedding row of N); now
    /// `evaluate`, `evaluate --data` and `run` refuse it, naming the atom and the element, and
    /// `run` writes no output. Ethanol itself still evaluates.
    func testElementsTheModelWasNotTrainedOnAreRefused() throws {
        let model = Self.ethanolModel.path
        let dir = try scratchDirectory("species")
        let ethanol = Self.ethanolAtoms
        let aminated = ethanol.replacingOccurrences(of: "O 2.0", with: "N 2.0")
        for (name, atoms) in [("ethanol", ethanol), ("aminated", aminated)] {
            try "6\nProperties=species:S:1:pos:R:3 pbc=\"F F F\"\n\(atoms)".write(to: dir.appendingPathComponent(name + ".xyz"), atomically: true, encoding: .utf8)
            let labelled = atoms.split(separator: "\n").map { $0 + " 0.1 -0.2 0.3" }.joined(separator: "\n") + "\n"
            try "6\nProperties=species:S:1:pos:R:3:forces:R:3 energy=-950.0 pbc=\"F F F\"\n\(labelled)"
                .write(to: dir.appendingPathComponent(name + ".extxyz"), atomically: true, encoding: .utf8)
        }
        let expected = "atom 2 is N (atomic number 7), an element the model was not trained on (its species: H, C, O)"
        let good = try CLI.run(["evaluate", "--model", model, "--structure", dir.appendingPathComponent("ethanol.xyz").path, "--json"])
        XCTAssertEqual(good.status, 0, good.stderr)
        let bad = try CLI.run(["evaluate", "--model", model, "--structure", dir.appendingPathComponent("aminated.xyz").path, "--json"])
        XCTAssertEqual(bad.status, 1, bad.stderr)
        XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("aminated.xyz: frame 0: " + expected), bad.stderr)
        XCTAssertTrue(bad.stdout.isEmpty, bad.stdout)
        let goodData = try CLI.run(["evaluate", "--model", model, "--data", dir.appendingPathComponent("ethanol.extxyz").path, "--json"])
        XCTAssertEqual(goodData.status, 0, goodData.stderr)
        let badData = try CLI.run(["evaluate", "--model", model, "--data", dir.appendingPathComponent("aminated.extxyz").path, "--json"])
        XCTAssertEqual(badData.status, 1, badData.stderr)
        XCTAssertTrue(badData.stderr.contains("frame 0") && badData.stderr.contains(expected), badData.stderr)

        let deck = """
        [system]
        structure = "aminated.xyz"
        [potential]
        type = "eninet"
        model = "\(model)"
        [dynamics]
        integrator = "verlet"
        timestep_fs = 0.5
        steps = 10
        [output]
        log = "out/log.csv"
        trajectory = "out/t.nc"
        restart = "out/t.ncrst"
        """
        try deck.write(to: dir.appendingPathComponent("deck.toml"), atomically: true, encoding: .utf8)
        let run = try CLI.run(["run", dir.appendingPathComponent("deck.toml").path, "--quiet"])
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains(expected), run.stderr)
        let written = (try? FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("out").path)) ?? []
        XCTAssertEqual(written, [], "run wrote \(written) before refusing the structure")
    }

    /// Structures whose periodic cell is far smaller or far larger than the cutoff, found by
    /// fuzzing: the tiny cells crashed (an `Int32` overflow, a 51 GB allocation) or ran out of
    /// memory after a minute; the 10⁴ Å cube crashed. Now the tiny ones are a one-line error
    /// naming the file and frame, and the huge one evaluates like the molecule alone.
    func testCellsFarFromTheCutoffAreErrorsOrEvaluate() throws {
        let model = Self.ethanolModel.path
        let dir = try scratchDirectory("cells")
        let atoms = Self.ethanolAtoms
        func structure(_ name: String, lattice: Double?) throws -> String {
            let url = dir.appendingPathComponent(name + ".extxyz")
            let header = lattice.map { "Lattice=\"\($0) 0 0 0 \($0) 0 0 0 \($0)\" pbc=\"T T T\" " } ?? "pbc=\"F F F\" "
            try "6\n\(header)Properties=species:S:1:pos:R:3\n\(atoms)".write(to: url, atomically: true, encoding: .utf8)
            return url.path
        }
        for (name, width, fragment) in [("piled", 0.4, "triplets"), ("tiny", 1e-3, "cell too small for the cutoff")] {
            let result = try CLI.run(["evaluate", "--model", model, "--structure", try structure(name, lattice: width), "--json"])
            XCTAssertFalse(result.terminatedBySignal, "\(name) crashed: \(result.stderr)")
            XCTAssertEqual(result.status, 1, "\(name): \(result.stderr)")
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, "\(name): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("\(name).extxyz: frame 0") && result.stderr.contains(fragment), "\(name): \(result.stderr)")
        }
        let alone = try CLI.run(["evaluate", "--model", model, "--structure", try structure("alone", lattice: nil), "--json"])
        let huge = try CLI.run(["evaluate", "--model", model, "--structure", try structure("huge", lattice: 1e4), "--json"])
        XCTAssertEqual(alone.status, 0, alone.stderr)
        XCTAssertEqual(huge.status, 0, huge.stderr)
        func energy(_ output: String) throws -> Double {
            let object = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
            return try XCTUnwrap(object?["energy"] as? Double)
        }
        XCTAssertEqual(try energy(huge.stdout), try energy(alone.stdout), accuracy: 1e-9)
        // A frame of no atoms printed energy 0.0 and exited 0.
        let empty = dir.appendingPathComponent("empty.extxyz")
        try "6\nProperties=species:S:1:pos:R:3\n\(atoms)0\nProperties=species:S:1:pos:R:3\n".write(to: empty, atomically: true, encoding: .utf8)
        let none = try CLI.run(["evaluate", "--model", model, "--structure", empty.path, "--json"])
        XCTAssertEqual(none.status, 1, none.stderr)
        XCTAssertTrue(none.stderr.contains("empty.extxyz: frame 1 has no atoms"), none.stderr)
        XCTAssertEqual(none.stdout, "", "nothing printed before the refusal")
        // A slab's cell volume includes vacuum of any height: its stress was printed as if the
        // cell were bulk. Only cells periodic along all three axes get one.
        for (pbc, hasStress) in [("T T T", true), ("T T F", false)] {
            let url = dir.appendingPathComponent("slab.extxyz")
            try "6\nLattice=\"12 0 0 0 12 0 0 0 12\" pbc=\"\(pbc)\" Properties=species:S:1:pos:R:3\n\(atoms)".write(to: url, atomically: true, encoding: .utf8)
            let r = try CLI.run(["evaluate", "--model", model, "--structure", url.path, "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            XCTAssertEqual(object?["stress"] != nil, hasStress, "pbc \(pbc): \(r.stdout)")
        }
    }

    /// A model whose weights are finite but whose outputs overflow (a scaler std of 10³⁰⁸, found
    /// by fuzzing): `evaluate` printed null with exit 0, and `--data` NaN error figures. Now the
    /// frame is still printed, and both end with an error naming the frame and exit 1.
    func testOutputsThatOverflowAreAnErrorNamingTheFrame() throws {
        let model = Self.ethanolModel
        let dir = try scratchDirectory("overflow")
        let overflowing = try Self.model(model, editedAs: dir.appendingPathComponent("overflowing.safetensors")) { configuration in
            var scaler = try XCTUnwrap(configuration["scaler"] as? [String: Any])
            scaler["std"] = 1e308
            configuration["scaler"] = scaler
        }

        let frame = Self.ethanolAtoms
        let structure = dir.appendingPathComponent("two.xyz")
        try String(repeating: "6\nProperties=species:S:1:pos:R:3 pbc=\"F F F\"\n\(frame)", count: 2)
            .write(to: structure, atomically: true, encoding: .utf8)
        let good = try CLI.run(["evaluate", "--model", model.path, "--structure", structure.path, "--json"])
        XCTAssertEqual(good.status, 0, good.stderr)
        XCTAssertFalse(good.stdout.contains("null"), good.stdout)
        let bad = try CLI.run(["evaluate", "--model", overflowing.path, "--structure", structure.path, "--json"])
        XCTAssertFalse(bad.terminatedBySignal)
        XCTAssertEqual(bad.status, 1, bad.stderr)
        XCTAssertEqual(bad.stdout.split(separator: "\n").count, 2, "both frames are still printed: \(bad.stdout)")
        // The forces (10³⁰⁸ times the gradient) overflow; the energy may still fit.
        XCTAssertTrue(bad.stdout.contains("\"forces\":[[null,null,null]"), bad.stdout)
        XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("two.xyz: frame 0: the model's outputs are not finite")
                      && bad.stderr.hasSuffix("; so are those of 1 more frame\n"), bad.stderr)

        let labelled = dir.appendingPathComponent("labelled.extxyz")
        let forces = frame.split(separator: "\n").map { $0 + " 0.1 -0.2 0.3" }.joined(separator: "\n") + "\n"
        try "6\nProperties=species:S:1:pos:R:3:forces:R:3 energy=-950.0 pbc=\"F F F\"\n\(forces)"
            .write(to: labelled, atomically: true, encoding: .utf8)
        let goodData = try CLI.run(["evaluate", "--model", model.path, "--data", labelled.path, "--json"])
        XCTAssertEqual(goodData.status, 0, goodData.stderr)
        let badData = try CLI.run(["evaluate", "--model", overflowing.path, "--data", labelled.path, "--json"])
        XCTAssertEqual(badData.status, 1, badData.stderr)
        XCTAssertTrue(badData.stderr.contains("frame 0: the model's energy or forces are not finite"), badData.stderr)
        XCTAssertTrue(badData.stdout.isEmpty, badData.stdout)
    }
}
