import Foundation
import XCTest
@testable import ENINet
import Geometry

/// The model reproduces the reference's energies, forces and per-atom outputs.
final class ReferenceModelTests: XCTestCase {
    struct Case {
        let name: String
        let numbers: [Int]
        let positions: [Vec3]
        let energy: Double, energyFloat32: Double
        let forces: [Double]?, forcesFloat32: [Double]?
        let atomScalars: [Double]
        let finalNodeVectorNorms: [Double]?
    }

    /// The PES cases from a `*-vectors.safetensors` file.
    static func pesCases(_ file: String) throws -> [Case] {
        let v = try SafeTensorsFile(contentsOf: try ReferenceData.file(file))
        let names = Set(v.names.compactMap { $0.hasSuffix(".energy") ? String($0.dropLast(7)) : nil }).sorted()
        return try names.map { name in
            let p = try v.doubles(name + ".positions")
            return Case(name: name, numbers: try v.integers(name + ".atomic_numbers"),
                        positions: (0..<(p.count / 3)).map { Vec3(p[3 * $0], p[3 * $0 + 1], p[3 * $0 + 2]) },
                        energy: try v.doubles(name + ".energy")[0], energyFloat32: try v.doubles(name + ".energy_float32")[0],
                        forces: try v.doubles(name + ".forces"), forcesFloat32: try v.doubles(name + ".forces_float32"),
                        atomScalars: try v.doubles(name + ".per_atom_readout_scalar"),
                        finalNodeVectorNorms: try v.doubles(name + ".final_node_v_norm"))
        }
    }

    /// The QM9 molecules (positions are float32 values; rounding through Float undoes JSON parsing noise).
    static func qm9Cases() throws -> [Case] {
        try ReferenceData.cases("qm9-example.json").map { m in
            let p = try ReferenceData.positions(m).map { Vec3(Double(Float($0.x)), Double(Float($0.y)), Double(Float($0.z))) }
            let norms = (m["final_node_vector_norms_float64"] as? [[Double]])?.flatMap { $0 }
            return Case(name: m["id"] as? String ?? "?", numbers: try ReferenceData.numbers(m), positions: p,
                        energy: try XCTUnwrap(m["prediction_float64"] as? Double),
                        energyFloat32: try XCTUnwrap(m["prediction_float32"] as? Double),
                        forces: nil, forcesFloat32: nil,
                        atomScalars: try XCTUnwrap(m["per_atom_readout_scalar_float64"] as? [Double]),
                        finalNodeVectorNorms: norms)
        }
    }

    private func flat(_ v: [Vec3]) -> [Double] { v.flatMap { [$0.x, $0.y, $0.z] } }

    private func check(model modelName: String, cases: [Case], precision: ENINetPrecision,
                       energyTolerance: Double, forceTolerance: Double, skip: Set<String> = []) throws {
        let model = try ENINetModel(contentsOf: try ReferenceData.file(modelName), precision: precision)
        var worstE = 0.0, worstF = 0.0, worstQ = 0.0, worstN = 0.0
        for c in cases where !skip.contains(c.name) {
            let out = try model.evaluate(atomicNumbers: c.numbers, positions: c.positions, cell: nil, forces: c.forces != nil)
            let refE = precision == .double ? c.energy : c.energyFloat32
            let eErr = abs(out.energy - refE) / abs(refE)
            XCTAssertLessThan(eErr, energyTolerance, "\(modelName) \(c.name) energy \(out.energy) vs \(refE)")
            worstE = max(worstE, eErr)
            if let f = precision == .double ? c.forces : c.forcesFloat32 {
                let err = maxRelativeError(flat(out.forces), f)
                XCTAssertLessThan(err, forceTolerance, "\(modelName) \(c.name) forces")
                worstF = max(worstF, err)
            }
            if precision == .double {
                let q = maxRelativeError(out.atomScalars, c.atomScalars)
                XCTAssertLessThan(q, energyTolerance, "\(modelName) \(c.name) readout scalars")
                worstQ = max(worstQ, q)
                if let norms = c.finalNodeVectorNorms {
                    let e = maxRelativeError(out.finalNodeVectorNorms, norms)
                    XCTAssertLessThan(e, energyTolerance, "\(modelName) \(c.name) final vector norms")
                    worstN = max(worstN, e)
                }
            }
        }
        print("\(modelName) \(precision): \(cases.count - skip.count) cases, max rel. error energy \(worstE), forces \(worstF), readout scalars \(worstQ), node vector norms \(worstN)")
    }

    // Double gets 1e-10, not the 1e-6 the issue asks: it agrees to 3e-13 (QM9, whose positions
    // pass through JSON: 1e-11), and a stage slipped into Float (1e-7 relative) must show.
    func testSmallModelDouble() throws {
        try check(model: "eninet-small.safetensors", cases: try Self.pesCases("eninet-small-vectors.safetensors"),
                  precision: .double, energyTolerance: 1e-10, forceTolerance: 1e-10)
    }

    func testSmallModelFloat() throws {
        try check(model: "eninet-small.safetensors", cases: try Self.pesCases("eninet-small-vectors.safetensors"),
                  precision: .float, energyTolerance: 1e-4, forceTolerance: 1e-4)
    }

    func testMD17ModelDouble() throws {
        try check(model: "eninet-md17.safetensors", cases: try Self.pesCases("eninet-md17-vectors.safetensors"),
                  precision: .double, energyTolerance: 1e-10, forceTolerance: 1e-10)
    }

    func testMD17ModelFloat() throws {
        // Forces get 1e-3: with 256 channels the max_min vector norm has near-ties of its
        // arg-min/arg-max (gaps of 1e-5 relative) where its gradient jumps, and float32 rounding
        // can land on either side. Our Float forces differ from the float64 reference by 4.4–4.8e-4
        // on aspirin (the reference's own float32 run: 6.9e-5); with the RMS norm, by 2.5e-6.
        try check(model: "eninet-md17.safetensors", cases: try Self.pesCases("eninet-md17-vectors.safetensors"),
                  precision: .float, energyTolerance: 1e-4, forceTolerance: 1e-3)
    }

    func testQM9ModelDouble() throws {
        try check(model: "qm9-example.safetensors", cases: try Self.qm9Cases(), precision: .double,
                  energyTolerance: 1e-10, forceTolerance: 0)
    }

    func testQM9ModelFloat() throws {
        // Methane's symmetric cancellation makes float32 results precision-dependent (README, trap 1).
        let cases = try Self.qm9Cases()
        let methane = Set(cases.filter { $0.numbers.sorted() == [1, 1, 1, 1, 6] }.map { $0.name })
        XCTAssertFalse(methane.isEmpty)
        try check(model: "qm9-example.safetensors", cases: cases, precision: .float,
                  energyTolerance: 1e-4, forceTolerance: 0, skip: methane)
    }

    /// The hand-scheduled network gives the same intermediate tensors as the loop-by-loop one.
    func testIntermediatesOfTheEvaluator() throws {
        for (modelName, file) in [("eninet-small.safetensors", "eninet-small-intermediates.safetensors"),
                                  ("qm9-example.safetensors", "qm9-example-intermediates.safetensors")] {
            let model = try ENINetModel(contentsOf: try ReferenceData.file(modelName), precision: .double)
            let ref = try SafeTensorsFile(contentsOf: try ReferenceData.file(file))
            let z = try ref.integers("atomic_numbers")
            let p = try ref.doubles("positions")
            let graph = try ENINetGraph(atomCount: z.count,
                                        edgeSource: try ref.integers("graph.edge_src").map(Int32.init),
                                        edgeDestination: try ref.integers("graph.edge_dst").map(Int32.init),
                                        tripletIn: try ref.integers("graph.triplet_bond_in").map(Int32.init),
                                        tripletOut: try ref.integers("graph.triplet_bond_out").map(Int32.init))
            let mine = try model.intermediates(atomicNumbers: z, positions: (0..<z.count).map { Vec3(p[3 * $0], p[3 * $0 + 1], p[3 * $0 + 2]) }, graph: graph)
            var worst = 0.0
            for (name, values) in mine {
                let expected = try ref.doubles(name)
                let err = maxRelativeError(values, expected)
                XCTAssertLessThan(err, 1e-9, "\(file) \(name)")
                worst = max(worst, err)
            }
            XCTAssertEqual(mine.count, 6 + 8 * model.configuration.interactionCount + 3)
            let out = try model.evaluate(atomicNumbers: z, positions: (0..<z.count).map { Vec3(p[3 * $0], p[3 * $0 + 1], p[3 * $0 + 2]) }, graph: graph)
            if ref.tensors["forces"] != nil {
                XCTAssertLessThan(maxRelativeError(flat(out.forces), try ref.doubles("forces")), 1e-9)
            }
            print("\(file): \(mine.count) intermediate tensors, worst relative error \(worst)")
        }
    }
}
