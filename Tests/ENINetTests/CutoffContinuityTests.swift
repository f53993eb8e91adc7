import Foundation
import XCTest
@testable import ENINet
import Geometry

/// The reference options reproduce the energy jumps recorded in `cutoff-discontinuity.json`;
/// the smooth variant is continuous, with continuous forces, through the same crossings.
final class CutoffContinuityTests: XCTestCase {
    private func rounded(_ p: [Vec3]) -> [Vec3] { p.map { Vec3(Double(Float($0.x)), Double(Float($0.y)), Double(Float($0.z))) } }

    /// H–H at 0.74 Å and a third H on the same line at `d` from the second (recorded geometry
    /// reconstructed: the 'above' energies match the JSON to the last digit).
    private func h3(_ d: Double) -> [Vec3] { rounded([Vec3(0, 0, 0), Vec3(0.74, 0, 0), Vec3(0.74 + d, 0, 0)]) }

    /// Two waters whose nearest intermolecular pair (O···H) is `d` apart.
    private func waterDimer(_ d: Double) -> (numbers: [Int], positions: [Vec3]) {
        let a = [Vec3(0, 0, 0), Vec3(0.757, 0.586, 0), Vec3(-0.757, 0.586, 0)]
        let shift = Vec3(0.757 + d, 0.586, 0)  // O of the second water at distance d from the first water's H at (0.757, 0.586)
        let b = [Vec3(0, 0, 0), Vec3(0.757, 0.586, 0.1), Vec3(0.6, -0.5, -0.4)].map { $0 + shift }
        return ([8, 1, 1, 8, 1, 1], a + b)
    }

    private func reference() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: try ReferenceData.file("cutoff-discontinuity.json")))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    private func value(_ root: [String: Any], _ path: String...) throws -> Double {
        var node: Any = root
        for key in path { node = try XCTUnwrap((node as? [String: Any])?[key], path.joined(separator: ".")) }
        return try XCTUnwrap(node as? Double, path.joined(separator: "."))
    }

    func testReferenceOptionsReproduceTheRecordedJumps() throws {
        let json = try reference()
        for (modelName, key) in [("eninet-small.safetensors", "small"), ("eninet-md17.safetensors", "md17")] {
            let model = try ENINetModel(contentsOf: try ReferenceData.file(modelName), precision: .double)
            func energy(_ p: [Vec3]) throws -> Double {
                try model.evaluate(atomicNumbers: p.map { _ in 1 }, positions: p, cell: nil, forces: false).energy
            }
            // A lone pair: continuous, and equal to the recorded energies.
            let h2Below = try energy(rounded([Vec3(0, 0, 0), Vec3(4.999999, 0, 0)]))
            let h2Above = try energy(rounded([Vec3(0, 0, 0), Vec3(5.000001, 0, 0)]))
            XCTAssertEqual(h2Below, try value(json, key, "H2_crossing_cutoff", "below", "energy"), accuracy: 1e-12)
            XCTAssertEqual(h2Above, try value(json, key, "H2_crossing_cutoff", "above", "energy"), accuracy: 1e-12)
            // Three atoms: the appearing bond's triplets make the energy jump.
            let below = try energy(h3(4.999999)), above = try energy(h3(5.000001))
            XCTAssertEqual(above, try value(json, key, "H3_third_atom_crossing_cutoff", "above", "energy"), accuracy: 1e-12)
            let jump = below - above  // the JSON records below − above
            let recorded = try value(json, key, "H3_third_atom_crossing_cutoff", "jump")
            XCTAssertEqual(jump, recorded, accuracy: 0.01 * abs(recorded), "\(key): H3 jump")
            print("\(key): H3 jump \(jump) (recorded \(recorded)); H2 energy \(h2Below)")
        }
    }

    func testSmoothVariantIsContinuousWhereTheReferenceJumps() throws {
        for smooth in [false, true] {
            let model = try PhysicsTests.model(smooth: smooth)
            func evaluate(_ z: [Int], _ p: [Vec3]) throws -> ENINetOutput { try model.evaluate(atomicNumbers: z, positions: p, cell: nil) }
            let h3Below = try evaluate([1, 1, 1], h3(4.999999)), h3Above = try evaluate([1, 1, 1], h3(5.000001))
            let (zw, wBelow) = waterDimer(4.999999)
            let water = (try evaluate(zw, wBelow), try evaluate(zw, waterDimer(5.000001).positions))
            for (name, b, a) in [("H3", h3Below, h3Above), ("water dimer", water.0, water.1)] {
                let jump = abs(a.energy - b.energy)
                let forceJump = zip(a.forces, b.forces).map { norm($0 - $1) }.max() ?? 0
                if smooth {
                    XCTAssertLessThan(jump, 1e-9, "smooth \(name)")
                    XCTAssertLessThan(forceJump, 1e-6, "smooth \(name)")
                } else {
                    XCTAssertGreaterThan(jump, 1e-5, "reference \(name)")
                }
                print("\(smooth ? "smooth" : "reference") \(name): energy jump \(jump), force jump \(forceJump)")
            }
        }
    }
}
