import Foundation
import XCTest
@testable import ENINet
import Geometry

/// The loop-by-loop forward pass reproduces the reference's tensors layer by layer.
final class ReferenceForwardTests: XCTestCase {
    private func checkIntermediates(model modelName: String, intermediates: String, tolerance: Double) throws {
        let model = try ENINetModelFile(contentsOf: try ReferenceData.file(modelName))
        let ref = try SafeTensorsFile(contentsOf: try ReferenceData.file(intermediates))
        let z = try ref.integers("atomic_numbers")
        let flat = try ref.doubles("positions")
        let positions = (0..<z.count).map { Vec3(flat[3 * $0], flat[3 * $0 + 1], flat[3 * $0 + 2]) }
        let graph = try ENINetGraph(atomCount: z.count,
                                    edgeSource: try ref.integers("graph.edge_src").map(Int32.init),
                                    edgeDestination: try ref.integers("graph.edge_dst").map(Int32.init),
                                    tripletIn: try ref.integers("graph.triplet_bond_in").map(Int32.init),
                                    tripletOut: try ref.integers("graph.triplet_bond_out").map(Int32.init))
        var worst = (name: "", error: 0.0)
        var compared = 0
        let plain = try PlainForward<Double>(configuration: model.configuration, file: model.weights)
            .run(atomicNumbers: z, positions: positions, graph: graph) { name, values in
                guard let expected = try? ref.doubles(name) else { return }
                compared += 1
                let err = maxRelativeError(values, expected)
                XCTAssertLessThan(err, tolerance, "\(intermediates): \(name)")
                if err > worst.error { worst = (name, err) }
            }
        XCTAssertEqual(compared, 1 + 6 + 8 * model.configuration.interactionCount + 3, "edge lengths, 6 initial, 8 per layer, 2 final, readout")
        // The reference records no per-atom readout vectors (the dipole and polarizability
        // readouts' mu_i), so the loop-by-loop oracle stands in for it against the evaluator.
        let evaluated = try ENINetModel(file: model, precision: .double)
            .evaluate(atomicNumbers: z, positions: positions, graph: graph, forces: false)
        let vectors = evaluated.atomVectors.flatMap { [$0.x, $0.y, $0.z] }
        XCTAssertGreaterThan(plain.vectors.map(abs).max() ?? 0, 1e-3, "readout vectors are not all zero")
        XCTAssertLessThan(maxRelativeError(vectors, plain.vectors), tolerance, "\(intermediates): readout vectors")
        XCTAssertLessThan(maxRelativeError(evaluated.atomScalars, plain.scalars), tolerance, "\(intermediates): readout scalars")
        print("\(intermediates): \(compared) tensors, worst relative error \(worst.error) at \(worst.name)")
    }

    func testEthanolLayerByLayerSmall() throws {
        try checkIntermediates(model: "eninet-small.safetensors", intermediates: "eninet-small-intermediates.safetensors", tolerance: 1e-9)
    }

    func testQM9MoleculeLayerByLayer() throws {
        try checkIntermediates(model: "qm9-example.safetensors", intermediates: "qm9-example-intermediates.safetensors", tolerance: 1e-9)
    }
}
