import Foundation
import XCTest
@testable import ENINet
import Geometry
import Tensors

/// The tensor (autodiff) formulation agrees with the hand-scheduled network, its forces are
/// the autodiff gradient, and a loss on forces can be differentiated again.
final class DifferentiableModelTests: XCTestCase {
    private func positionsTensor(_ r: [Vec3], requiresGrad: Bool = true) throws -> Tensor<Double> {
        try Tensor<Double>(shape: [r.count, 3], scalars: r.flatMap { [$0.x, $0.y, $0.z] }, requiresGrad: requiresGrad)
    }

    func testAgreesWithTheHandScheduledNetworkOnReferenceAndSmoothOptions() throws {
        let m = try PhysicsTests.ethanol(), p = try PhysicsTests.periodic()
        let cases: [(String, [Int], [Vec3], Cell?)] = [("ethanol", m.numbers, m.positions, nil),
                                                       ("periodic", p.numbers, p.positions, p.cell)]
        for smooth in [false, true] {
            let model = try PhysicsTests.model(smooth: smooth)
            let net = try ENINetDifferentiableModel<Double>(file: model.file)
            for (name, z, r, cell) in cases {
                let expected = try model.evaluate(atomicNumbers: z, positions: r, cell: cell)
                let graph = try model.graph(positions: r, cell: cell, neighborList: model.makeNeighborList(skin: 0))
                let x = try positionsTensor(r)
                let out = try net.forward(atomicNumbers: z, positions: x, graph: graph)
                let forces = try grad(of: out.energy, wrt: [x])[0].scalars.map { -$0 }
                XCTAssertEqual(out.energy.item, expected.energy, accuracy: 1e-12 * abs(expected.energy), "\(name) smooth \(smooth)")
                XCTAssertLessThan(maxRelativeError(forces, expected.forces.flatMap { [$0.x, $0.y, $0.z] }), 1e-10, "\(name) smooth \(smooth)")
                XCTAssertLessThan(maxRelativeError(out.atomScalars.scalars, expected.atomScalars), 1e-12)
                // Training fits dipoles through these vectors; run, evaluate and dipoles read the evaluator's.
                XCTAssertLessThan(maxRelativeError(out.atomVectors.scalars, expected.atomVectors.flatMap { [$0.x, $0.y, $0.z] }), 1e-12,
                                  "\(name) smooth \(smooth): readout vectors")
            }
        }
    }

    func testReproducesTheReferenceEnergyAndForcesInFloat() throws {
        let cases = try ReferenceModelTests.pesCases("eninet-small-vectors.safetensors")
        let file = try ENINetModelFile(contentsOf: try ReferenceData.file("eninet-small.safetensors"))
        let net = try ENINetDifferentiableModel<Float>(file: file)
        let model = try ENINetModel(file: file, precision: .float)
        for c in cases where c.name == "aspirin" || c.name == "ethanol" {
            let graph = try model.graph(positions: c.positions, cell: nil, neighborList: model.makeNeighborList(skin: 0))
            let x = try Tensor<Float>(shape: [c.positions.count, 3], scalars: c.positions.flatMap { [Float($0.x), Float($0.y), Float($0.z)] }, requiresGrad: true)
            let out = try net.forward(atomicNumbers: c.numbers, positions: x, graph: graph)
            let forces = try grad(of: out.energy, wrt: [x])[0].scalars.map { -Double($0) }
            XCTAssertEqual(Double(out.energy.item), c.energyFloat32, accuracy: 1e-4 * abs(c.energyFloat32))
            XCTAssertLessThan(maxRelativeError(forces, try XCTUnwrap(c.forcesFloat32)), 1e-4, c.name)
        }
    }

    /// d/dθ of a loss on forces (a second derivative) against central differences in θ.
    func testForceLossGradientMatchesFiniteDifferences() throws {
        let model = try PhysicsTests.model(smooth: true)
        let net = try ENINetDifferentiableModel<Double>(file: model.file)
        let m = try PhysicsTests.ethanol()
        let graph = try model.graph(positions: m.positions, cell: nil, neighborList: model.makeNeighborList(skin: 0))
        func loss() throws -> Tensor<Double> {
            let x = try positionsTensor(m.positions)
            let out = try net.forward(atomicNumbers: m.numbers, positions: x, graph: graph)
            let f = try grad(of: out.energy, wrt: [x], createGraph: true)[0]
            return try (f * f).sum() + out.energy * 0.1
        }
        let names = ["conv_layers.twobody_conv.1.node_neighbors.weight", "conv_layers.threebody_conv.0.triplet_vec.bias",
                     "readout.out.0.mix.net.0.weight", "conv_layers.e_embedding.weight"]
        let params = try names.map { try net.parameters.tensor($0) }
        let grads = try grad(of: try loss(), wrt: params)
        for (k, (name, param)) in zip(names, params).enumerated() {
            let index = 3 % param.count
            let original = param[flat: index]
            let h = 1e-5
            func at(_ v: Double) throws -> Double {
                param.withUnsafeMutableBufferPointer { $0[index] = v }
                return try loss().item
            }
            let fd = (try at(original + h) - at(original - h)) / (2 * h)
            _ = try at(original)
            let analytic = grads[k][flat: index]
            // Relative: these derivatives are 1e-3 to 0.2, where an absolute 1e-6 would pass a 0.1 % error.
            XCTAssertGreaterThan(abs(fd), 1e-4, "\(name): too small a derivative to test")
            XCTAssertEqual(analytic, fd, accuracy: 1e-6 * abs(fd), name)
            print("d loss / d \(name)[\(index)]: autodiff \(analytic), finite difference \(fd)")
        }
    }

    func testExportedModelFileReproducesTheNetwork() throws {
        let model = try PhysicsTests.model(smooth: true)
        let net = try ENINetDifferentiableModel<Double>(file: model.file)
        let exported = try ENINetModel(file: try net.modelFile(dtype: .float64), precision: .double)
        let m = try PhysicsTests.ethanol()
        let a = try model.evaluate(atomicNumbers: m.numbers, positions: m.positions, cell: nil)
        let b = try exported.evaluate(atomicNumbers: m.numbers, positions: m.positions, cell: nil)
        XCTAssertEqual(a.energy, b.energy, accuracy: 1e-13 * abs(a.energy))
    }

    func testFreshModelHasTheReferenceLayoutAndFiniteForces() throws {
        var generator = SystemRandomNumberGenerator()
        let config = ENINetConfiguration(featureCount: 8, tripletFeatureCount: 2, radialBasisCount: 6, cutoff: 4, interactionCount: 1,
                                         scaleMean: -1, scaleStd: 0.5, averageNeighborCount: 4)
        let net = try ENINetDifferentiableModel<Double>(configuration: config, using: &generator)
        let file = try net.modelFile(dtype: .float64)
        XCTAssertEqual(Set(file.weights.names), Set(ENINetParameterLayout.expectedShapes(config).map { $0.0 }))
        XCTAssertEqual(try file.weights.doubles("conv_layers.threebody_dist_rb.centers"),
                       [0, 1.6, 3.2, 4.8, 6.4, 8].map { Double(Float($0)) })
        // Weights lie within PyTorch's default bounds.
        let w = try file.weights.doubles("conv_layers.twobody_conv.0.node_neighbors.weight")
        XCTAssertLessThanOrEqual(w.map(abs).max() ?? 1, 1 / 16.0.squareRoot())
        let m = try PhysicsTests.ethanol()
        let model = try ENINetModel(file: file, precision: .double)
        let out = try model.evaluate(atomicNumbers: m.numbers, positions: m.positions, cell: nil)
        XCTAssertTrue(out.energy.isFinite)
        XCTAssertTrue(out.forces.allSatisfy { $0.x.isFinite && $0.y.isFinite && $0.z.isFinite })
        // The same model through autodiff gives the same energy.
        let graph = try model.graph(positions: m.positions, cell: nil, neighborList: model.makeNeighborList(skin: 0))
        let x = try positionsTensor(m.positions)
        XCTAssertEqual(try net.forward(atomicNumbers: m.numbers, positions: x, graph: graph).energy.item, out.energy,
                       accuracy: 1e-12 * abs(out.energy))
    }
}
