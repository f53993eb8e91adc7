import Foundation
import Geometry
import XCTest
@testable import ENINet

final class SafeTensorsTests: XCTestCase {
    private func temporaryPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("eninet-tests-\(ProcessInfo.processInfo.processIdentifier)-\(name)").path
    }

    func testRoundTripKeepsEveryTypeAndTheMetadata() throws {
        var file = SafeTensorsFile()
        file.add(SafeTensor(name: "a.f64", shape: [2, 3], float64: [1, -2.5, .pi, 1e-300, -0.0, 7]))
        file.add(SafeTensor(name: "b.f32", shape: [3], float32: [1.5, -3.25, Float.ulpOfOne]))
        file.add(SafeTensor(name: "c.i64", shape: [2], int64: [Int64.min + 1, 123_456_789_012]))
        file.add(SafeTensor(name: "d.bool", dtype: .bool, shape: [2], bytes: [1, 0]))
        file.add(SafeTensor(name: "e.scalar", shape: [], float64: [42]))
        file.metadata = ["eninet_config": "{\"x\": 1}", "note": "ü"]
        let path = temporaryPath("roundtrip.safetensors")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try file.write(to: path)

        let back = try SafeTensorsFile(contentsOf: path)
        XCTAssertEqual(back.names, ["a.f64", "b.f32", "c.i64", "d.bool", "e.scalar"])
        XCTAssertEqual(back.metadata, file.metadata)
        XCTAssertEqual(try back.doubles("a.f64", shape: [2, 3]), [1, -2.5, .pi, 1e-300, -0.0, 7])
        XCTAssertEqual(try back.tensor("b.f32").floats(), [1.5, -3.25, Float.ulpOfOne])
        XCTAssertEqual(try back.integers("c.i64"), [Int(Int64.min + 1), 123_456_789_012])
        XCTAssertEqual(try back.tensor("d.bool").doubles(), [1, 0])
        XCTAssertEqual(try back.tensor("e.scalar").shape, [])
        XCTAssertEqual(try back.doubles("e.scalar"), [42])
        // The header is padded to a multiple of 8 bytes so the data section stays aligned.
        let raw = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(Int(raw[0]) % 8, 0)
    }

    private func image(header: String, data: [UInt8]) -> [UInt8] {
        let h = [UInt8](header.utf8)
        var out = [UInt8]()
        for k in 0..<8 { out.append(UInt8(truncatingIfNeeded: UInt64(h.count) >> (8 * UInt64(k)))) }
        return out + h + data
    }

    private func assertError(_ bytes: [UInt8], mentions words: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SafeTensorsFile(bytes: bytes, path: "model.safetensors"), file: file, line: line) { error in
            let text = String(describing: error)
            XCTAssertTrue(text.contains("model.safetensors"), "error does not name the file: \(text)", file: file, line: line)
            for w in words { XCTAssertTrue(text.contains(w), "error '\(text)' does not mention '\(w)'", file: file, line: line) }
        }
    }

    func testCorruptFilesGiveErrorsNamingFileAndTensor() throws {
        assertError([1, 2, 3], mentions: ["8"])
        // Header length beyond the end of the file.
        assertError([200, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d], mentions: ["header length"])
        assertError(image(header: "{not json", data: []), mentions: ["JSON"])
        assertError(image(header: "[1,2]", data: []), mentions: ["object"])
        assertError(image(header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 0, 0]),
                    mentions: ["truncated", "'w'"])
        assertError(image(header: #"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)),
                    mentions: ["'w'", "[3]"])
        assertError(image(header: #"{"w":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}}"#, data: [0]),
                    mentions: ["'w'", "Q7"])
        assertError(image(header: #"{"w":{"dtype":"F32","shape":[1]}}"#, data: [0, 0, 0, 0]), mentions: ["'w'", "data_offsets"])
        assertError(image(header: #"{"__metadata__":{"a":1}}"#, data: []), mentions: ["__metadata__"])

        // Tensors must tile the data: one pointed into another's bytes loaded (an energy 3 eV
        // off), as did bytes after the last tensor or a gap before one.
        assertError(image(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                          data: [UInt8](repeating: 0, count: 8)), mentions: ["'b'", "inside another tensor"])
        assertError(image(header: #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0x80, 0x3f, 9, 9]),
                    mentions: ["2 bytes after the last tensor"])
        assertError(image(header: #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: [UInt8](repeating: 0, count: 8)),
                    mentions: ["'w'", "4 bytes before it unused"])

        let ok = try SafeTensorsFile(bytes: image(header: #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                                                  data: [0, 0, 0x80, 0x3f]), path: "model.safetensors")
        XCTAssertEqual(try ok.doubles("w"), [1])
        XCTAssertThrowsError(try ok.doubles("missing")) { XCTAssertTrue("\($0)".contains("model.safetensors: missing tensor 'missing'")) }
        XCTAssertThrowsError(try ok.doubles("w", shape: [2])) { XCTAssertTrue("\($0)".contains("'w' has shape [1], expected [2]")) }
        XCTAssertThrowsError(try ok.integers("w")) { XCTAssertTrue("\($0)".contains("'w'")) }
        XCTAssertThrowsError(try SafeTensorsFile(contentsOf: "/nonexistent/x.safetensors")) {
            XCTAssertTrue("\($0)".contains("/nonexistent/x.safetensors"))
        }
        // `--model .` said "cannot read file (The operation could not be completed. … error 256.)".
        let directory = FileManager.default.temporaryDirectory.path
        XCTAssertThrowsError(try SafeTensorsFile(contentsOf: directory)) {
            XCTAssertEqual("\($0)", "\(directory): is a directory, not a model file")
        }
    }

    func testReferenceWeightFilesLoadWithTheirConfigurations() throws {
        let expected: [(String, Int, Int, Int, Double, Double, ENINetConfiguration.Aggregation)] = [
            ("eninet-small.safetensors", 119, 32, 2, 3.000000238418579, 1.5000001192092896, .sum),
            ("eninet-md17.safetensors", 319, 256, 6, 9.799999237060547, 4.899999618530273, .mean),
            ("qm9-example.safetensors", 169, 64, 3, 4.75, 2.375, .mean),
        ]
        for (name, count, features, layers, gamma2, gamma3, aggregation) in expected {
            let model = try ENINetModelFile(contentsOf: try ReferenceData.file(name))
            let c = model.configuration
            XCTAssertEqual(c.featureCount, features, name)
            XCTAssertEqual(c.interactionCount, layers, name)
            XCTAssertEqual(c.twoBodyGamma, gamma2, name)
            XCTAssertEqual(c.threeBodyGamma, gamma3, name)
            XCTAssertEqual(c.aggregation, aggregation, name)
            XCTAssertEqual(c.maxNeighbors, 32, name)
            XCTAssertEqual(c.vectorNorm, .maxMin, name)
            XCTAssertEqual(c.lineGraphRule, .atomIndex, name)
            XCTAssertFalse(c.tripletBondCutoff, name)
            let layout = ENINetParameterLayout.expectedShapes(c)
            XCTAssertEqual(model.weights.tensors.count, count, name)
            XCTAssertEqual(layout.count, model.weights.tensors.count, "\(name): every stored tensor is expected and vice versa")
            XCTAssertEqual(Set(layout.map { $0.0 }), Set(model.weights.names), name)
            // The RBF centres are float32 linspace values on [0, rc] and [0, 2 rc].
            let centres = try model.weights.doubles("conv_layers.threebody_dist_rb.centers")
            XCTAssertEqual(centres.first, 0)
            XCTAssertEqual(centres.last ?? 0, 2 * c.cutoff, accuracy: 1e-5)
        }
        let qm9 = try ENINetModelFile(contentsOf: try ReferenceData.file("qm9-example.safetensors")).configuration
        XCTAssertEqual(qm9.scaleMean, -21.830615997314453)
        XCTAssertEqual(qm9.scaleStd, 7.0625081062316895)
        XCTAssertEqual(qm9.cutoff, 4)
    }

    func testModelFileRoundTripPutsTheConfigurationInTheMetadata() throws {
        let source = try ENINetModelFile(contentsOf: try ReferenceData.file("eninet-small.safetensors"))
        var smooth = source
        smooth.configuration.aggregation = .normalizedSum
        smooth.configuration.averageNeighborCount = 12.5
        smooth.configuration.vectorNorm = .rms
        smooth.configuration.vectorNormEpsilon = 1e-8
        smooth.configuration.maxNeighbors = nil
        smooth.configuration.lineGraphRule = .geometric
        smooth.configuration.tripletBondCutoff = true
        let path = temporaryPath("smooth.safetensors")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try smooth.write(to: path)
        let back = try ENINetModelFile(contentsOf: path)
        XCTAssertEqual(back.configuration, smooth.configuration)
        XCTAssertEqual(try back.weights.doubles("readout.out.1.mix.net.2.weight"),
                       try source.weights.doubles("readout.out.1.mix.net.2.weight"))

        // A shape that does not fit the configuration is reported with file and tensor.
        var broken = smooth
        broken.weights.add(SafeTensor(name: "conv_layers.e_embedding.bias", shape: [3], float32: [0, 0, 0]))
        XCTAssertThrowsError(try broken.checkShapes()) { XCTAssertTrue("\($0)".contains("'conv_layers.e_embedding.bias' has shape [3]")) }
        var missing = smooth.weights
        missing = SafeTensorsFile(path: "m.safetensors", tensors: missing.names.filter { $0 != "readout.out.0.linear_v.weight" }.compactMap { missing.tensors[$0] })
        XCTAssertThrowsError(try ENINetModelFile(configuration: smooth.configuration, weights: missing).checkShapes()) {
            XCTAssertTrue("\($0)".contains("m.safetensors: missing tensor 'readout.out.0.linear_v.weight'"))
        }
    }

    /// A header claiming far more layers than the file holds fails at the first absent one, at
    /// once: listing every expected tensor of 10⁹ layers took minutes and gigabytes (found by
    /// fuzzing `evaluate --model`).
    func testAClaimOfManyMoreLayersFailsAtTheFirstMissingOne() throws {
        let c = ENINetConfiguration(featureCount: 8, tripletFeatureCount: 2, radialBasisCount: 4, cutoff: 3, interactionCount: 2)
        var generator = SystemRandomNumberGenerator()  // the weights do not matter here
        let file = try ENINetDifferentiableModel<Double>(configuration: c, using: &generator).modelFile()
        XCTAssertNoThrow(try file.checkShapes())
        var claimsTooMany = file
        claimsTooMany.configuration.interactionCount = 1_000_000_000
        let start = Date()
        XCTAssertThrowsError(try claimsTooMany.checkShapes()) {
            XCTAssertTrue("\($0)".contains("missing tensor 'conv_layers.threebody_conv.2.cutoff_fn.cutoff'"), "\($0)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 5, "the check must not list the claimed layers")
    }

    /// `species`, `units` and `provenance` survive a model file's round trip; a model that records
    /// its species refuses a structure with another element, naming the atom and the element,
    /// and accepts one without; bad entries name their key.
    func testSpeciesUnitsAndProvenance() throws {
        var c = ENINetConfiguration(featureCount: 8, tripletFeatureCount: 4, radialBasisCount: 4, cutoff: 3, interactionCount: 1)
        c.species = [1, 6, 8]
        c.provenance = ["data": "ethanol.extxyz", "training_frames": "12"]
        var generator = SystemRandomNumberGenerator()  // the weights do not matter here
        let file = try ENINetDifferentiableModel<Double>(configuration: c, using: &generator).modelFile()
        let path = temporaryPath("species.safetensors")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try file.write(to: path)
        let json = try XCTUnwrap(try SafeTensorsFile(contentsOf: path).metadata[ENINetConfiguration.metadataKey])
        XCTAssertTrue(json.contains(#""species":["H","C","O"]"#), json)
        XCTAssertTrue(json.contains(#""units":{"energy":"eV","length":"angstrom"}"#), json)
        let model = try ENINetModel(contentsOf: path, precision: .double)
        XCTAssertEqual(model.configuration, c)

        let water: [Vec3] = [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]
        XCTAssertNoThrow(try model.evaluate(atomicNumbers: [8, 1, 1], positions: water, cell: nil))
        XCTAssertThrowsError(try model.evaluate(atomicNumbers: [8, 1, 7], positions: water, cell: nil)) {
            XCTAssertEqual("\($0)", "atom 2 is N (atomic number 7), an element the model was not trained on (its species: H, C, O)")
        }
        // Without species (a reference export, an older file) every element of the table is accepted.
        var unrecorded = file
        unrecorded.configuration.species = []
        XCTAssertNoThrow(try ENINetModel(file: unrecorded, precision: .double).evaluate(atomicNumbers: [8, 1, 7], positions: water, cell: nil))

        let base = try c.jsonString()
        func variant(_ key: String, _ value: String) -> String {
            // Every key of `base` is unique, so replacing the key's text replaces its value.
            guard let range = base.range(of: #""\#(key)":"#) else { return base }
            let rest = base[range.upperBound...]
            var depth = 0, end = rest.startIndex
            for index in rest.indices {
                let ch = rest[index]
                if ch == "[" || ch == "{" { depth += 1 }
                if ch == "]" || ch == "}" { if depth == 0 { end = index; break }; depth -= 1 }
                if ch == "," && depth == 0 { end = index; break }
            }
            return base.replacingCharacters(in: range.upperBound..<end, with: value)
        }
        for (key, value, message) in [
            ("species", #"["H","Xx"]"#, "key 'species[1]' is 'Xx', not an element symbol"),
            ("species", #"["H","C","H"]"#, "key 'species[2]': H is listed twice"),
            ("species", #"[1]"#, "key 'species[0]' is not a string"),
            ("units", #"{"energy":"kcal/mol","length":"angstrom"}"#, "key 'units.energy' is 'kcal/mol', but eninet-md models are in eV and Å"),
            ("units", #"{"energy":"eV","length":"nm"}"#, "key 'units.length' is 'nm'"),
            ("provenance", #"{"data":3}"#, "key 'provenance.data' is not a string"),
        ] {
            let text = variant(key, value)
            XCTAssertNotEqual(text, base, key)
            XCTAssertThrowsError(try ENINetConfiguration(jsonString: text, source: "m.safetensors"), text) {
                XCTAssertTrue("\($0)".contains("m.safetensors: " + message), "'\($0)' lacks '\(message)'")
            }
        }
        var small = c
        small.elementCount = 8
        XCTAssertThrowsError(try small.validate(source: "m")) {
            XCTAssertTrue("\($0)".contains("species: O (atomic number 8) has no row in the embedding table (n_elements = 8)"), "\($0)")
        }
        XCTAssertNoThrow(try ENINetConfiguration(jsonString: variant("units", #"{"energy":"ev","length":"Å"}"#), source: "m"))

        // What `train --resume` compares: the network and its options, not the provenance, and
        // the species only when both record them (a checkpoint written before they existed).
        var other = c
        other.provenance = ["data": "elsewhere.extxyz"]
        XCTAssertTrue(other.describesTheSameNetwork(as: c))
        other.species = []
        XCTAssertTrue(other.describesTheSameNetwork(as: c))
        other.species = [1, 6]
        XCTAssertFalse(other.describesTheSameNetwork(as: c))
        other = c
        other.averageNeighborCount = 2
        XCTAssertFalse(other.describesTheSameNetwork(as: c))
    }

    func testConfigurationErrorsNameTheKey() {
        XCTAssertThrowsError(try ENINetConfiguration(jsonString: #"{"hyper_parameters": {"g_feat_dim": 8}}"#, source: "c.json")) {
            XCTAssertTrue("\($0)".contains("c.json"), "\($0)")
        }
        XCTAssertThrowsError(try ENINetConfiguration(jsonString: "[]", source: "c.json"))
        // Misspelt keys were ignored ("element_energie": energies 4 eV off; "specie": no element
        // check); an empty species list and another format are refused too.
        let written = try? ENINetConfiguration(featureCount: 8, tripletFeatureCount: 2, radialBasisCount: 4, cutoff: 3, interactionCount: 1).jsonString()
        let good = written ?? "{}"
        XCTAssertNoThrow(try ENINetConfiguration(jsonString: good, source: "c.json"))
        for (edit, fragment) in [(#"{"element_energie": {"1": -13.6}, "#, "unknown key 'element_energie' in the model configuration (did you mean 'element_energies'?)"),
                                 (#"{"species": [], "#, "'species' is empty"),
                                 (#"{"format": "eninet-md/2", "#, "format 'eninet-md/2'")] {
            let edited = edit + good.dropFirst().replacingOccurrences(of: #""format":"eninet-md/1","#, with: edit.contains("format") ? "" : #""format":"eninet-md/1","#)
            XCTAssertThrowsError(try ENINetConfiguration(jsonString: edited, source: "c.json")) {
                XCTAssertTrue("\($0)".contains(fragment), "\($0)")
            }
        }
        // The reference layout: options of the official code that this engine implements one
        // way only were read past, so a file with another activation loaded as a different network.
        func reference(_ extra: String) -> String {
            #"{"hyper_parameters": {"n_elements": 10, "g_feat_dim": 8, "lg_feat_dim": 2, "n_rbf": 4, "cutoff": 3, "n_interactions": 1, "g_aggregation": "sum""#
                + extra + #"}, "scaler": {"mean": 0, "std": 1}, "rbf": {"twobody": {"n": 4, "gamma_float32": 1}, "threebody": {"n": 4, "gamma_float32": 0.5}}}"#
        }
        XCTAssertNoThrow(try ENINetConfiguration(jsonString: reference(#", "activation": "silu", "use_linegraph": true, "readout": "EquivariantScalarReadout""#), source: "r.json"))
        XCTAssertNoThrow(try ENINetConfiguration(jsonString: reference(#", "readout": null"#), source: "r.json"))
        for (extra, fragment) in [(#", "activation": "relu""#, "hyper_parameters.activation is 'relu'"),
                                  (#", "use_linegraph": false"#, "hyper_parameters.use_linegraph is false"),
                                  (#", "readout": "AttentionReadout""#, "hyper_parameters.readout is 'AttentionReadout'")] {
            XCTAssertThrowsError(try ENINetConfiguration(jsonString: reference(extra), source: "r.json")) {
                XCTAssertTrue("\($0)".contains("r.json: " + fragment), "\($0)")
            }
        }
        var c = ENINetConfiguration(featureCount: 8, tripletFeatureCount: 2, radialBasisCount: 4, cutoff: 3, interactionCount: 1)
        c.vectorNorm = .maxMin
        XCTAssertNoThrow(try c.validate(source: "x"))
        c.featureCount = 7
        XCTAssertThrowsError(try c.validate(source: "x")) { XCTAssertTrue("\($0)".contains("g_feat_dim")) }
    }

    /// A negative or non-finite `vector_norm_epsilon` (the RMS norm's `sqrt(mean + ε)` could
    /// take the root of a negative number), infinite RBF widths and a cutoff whose double is
    /// beyond Float's range (its three-body basis centres were NaN) are refused, naming the key.
    /// ε = 0 stays valid for the max/min norm (the reference exports' value, unread there) but
    /// not for the RMS norm, which then divides by zero wherever the vectors cancel by symmetry.
    func testVectorNormEpsilonGammaAndCutoffAreChecked() {
        let c = ENINetConfiguration(featureCount: 8, tripletFeatureCount: 2, radialBasisCount: 4, cutoff: 3, interactionCount: 1)
        for norm in [ENINetConfiguration.VectorNorm.rms, .maxMin] {
            var valid = c
            valid.vectorNorm = norm
            for epsilon in norm == .rms ? [1e-8] : [0, 1e-8] {
                valid.vectorNormEpsilon = epsilon
                XCTAssertNoThrow(try valid.validate(source: "x"), "\(norm), ε = \(epsilon)")
            }
            if norm == .rms {
                var zero = valid
                zero.vectorNormEpsilon = 0
                XCTAssertThrowsError(try zero.validate(source: "x")) {
                    XCTAssertTrue("\($0)".contains("vector_norm_epsilon = 0 with vector_norm = \"rms\""), "\($0)")
                }
            }
            for epsilon in [-1e-8, .nan, .infinity] {
                var bad = valid
                bad.vectorNormEpsilon = epsilon
                XCTAssertThrowsError(try bad.validate(source: "x"), "\(norm), ε = \(epsilon)") {
                    XCTAssertTrue("\($0)".contains("vector_norm_epsilon"), "\($0)")
                }
            }
        }
        var wide = c
        wide.threeBodyGamma = .infinity
        XCTAssertThrowsError(try wide.validate(source: "x")) { XCTAssertTrue("\($0)".contains("gamma"), "\($0)") }
        var far = c
        far.cutoff = 1e38
        XCTAssertNoThrow(try far.validate(source: "x"))
        for cutoff in [1e300, 2e38, .infinity, 0, -1] {
            far.cutoff = cutoff
            XCTAssertThrowsError(try far.validate(source: "x"), "cutoff \(cutoff)") { XCTAssertTrue("\($0)".contains("cutoff = "), "\($0)") }
        }
    }
}

final class SafeTensorsOverwriteTests: XCTestCase {
    /// Writing over an existing model file replaces it (it once failed on Linux and left none).
    func testWriteReplacesAnExistingFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("overwrite-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SafeTensorsFile(tensors: [SafeTensor(name: "w", shape: [1], float64: [1])]).write(to: path)
        try SafeTensorsFile(tensors: [SafeTensor(name: "w", shape: [2], float64: [2, 3])]).write(to: path)
        XCTAssertEqual(try SafeTensorsFile(contentsOf: path).doubles("w"), [2, 3])
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: FileManager.default.temporaryDirectory.path)
            .filter { $0.contains((path as NSString).lastPathComponent) && $0.hasSuffix(".tmp") }
        XCTAssertEqual(leftovers, [])
    }
}
