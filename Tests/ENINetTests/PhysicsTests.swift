import Foundation
import XCTest
@testable import ENINet
import Geometry

/// Physical properties of the network, for the reference options and the smooth variant:
/// forces and virial are derivatives of the energy, the energy is invariant, a periodic cell
/// equals its supercell, and the smooth variant is continuous where the reference jumps.
final class PhysicsTests: XCTestCase {
    static func model(smooth: Bool, cap: Int? = nil) throws -> ENINetModel {
        var file = try ENINetModelFile(contentsOf: try ReferenceData.file("eninet-small.safetensors"))
        file.configuration.maxNeighbors = cap
        if smooth {
            file.configuration.aggregation = .normalizedSum
            file.configuration.averageNeighborCount = 6
            file.configuration.vectorNorm = .rms
            file.configuration.vectorNormEpsilon = 1e-6
            file.configuration.lineGraphRule = .geometric
            file.configuration.tripletBondCutoff = true
        }
        return try ENINetModel(file: file, precision: .double)
    }

    static func ethanol() throws -> (numbers: [Int], positions: [Vec3]) {
        let m = try ReferenceData.cases("eninet-small.json")[0]
        return (try ReferenceData.numbers(m), try ReferenceData.positions(m))
    }

    /// A small periodic system: 5 atoms in a triclinic cell narrower than the cutoff.
    static func periodic() throws -> (numbers: [Int], positions: [Vec3], cell: Cell) {
        let cell = try Cell(matrix: Mat3(Vec3(4.2, 0, 0), Vec3(0.7, 4.6, 0), Vec3(-0.4, 0.5, 4.9)))
        let positions = [Vec3(0.1, 0.2, 0.3), Vec3(1.3, 0.4, 0.2), Vec3(0.5, 1.5, 0.9), Vec3(2.6, 2.2, 2.8), Vec3(3.1, 3.9, 1.7)]
        return ([6, 1, 8, 7, 1], positions, cell)
    }

    private func energy(_ model: ENINetModel, _ z: [Int], _ r: [Vec3], _ cell: Cell?) throws -> Double {
        try model.evaluate(atomicNumbers: z, positions: r, cell: cell, forces: false).energy
    }

    private func checkForcesByFiniteDifferences(smooth: Bool, periodic: Bool) throws {
        let model = try Self.model(smooth: smooth)
        let (z, r, cell): ([Int], [Vec3], Cell?) = periodic ? try { let p = try Self.periodic(); return (p.numbers, p.positions, p.cell) }()
            : try { let m = try Self.ethanol(); return (m.numbers, m.positions, nil) }()
        let out = try model.evaluate(atomicNumbers: z, positions: r, cell: cell)
        let h = 1e-5
        var worst = 0.0, scale = 0.0
        for i in 0..<r.count {
            for x in 0..<3 {
                var plus = r, minus = r
                plus[i][x] += h; minus[i][x] -= h
                let fd = -(try energy(model, z, plus, cell) - energy(model, z, minus, cell)) / (2 * h)
                worst = max(worst, abs(fd - out.forces[i][x]))
                scale = max(scale, abs(fd))
            }
        }
        XCTAssertGreaterThan(scale, 1e-3, "the test needs non-trivial forces")
        XCTAssertLessThan(worst / scale, 1e-6, "smooth \(smooth) periodic \(periodic)")
        print("forces vs finite differences (smooth \(smooth), periodic \(periodic)): max |ΔF| \(worst), max |F| \(scale)")
    }

    func testForcesAreMinusTheEnergyGradientReferenceOptions() throws { try checkForcesByFiniteDifferences(smooth: false, periodic: false) }
    func testForcesAreMinusTheEnergyGradientSmoothVariant() throws { try checkForcesByFiniteDifferences(smooth: true, periodic: false) }
    func testPeriodicForcesAreMinusTheEnergyGradient() throws {
        try checkForcesByFiniteDifferences(smooth: true, periodic: true)
        try checkForcesByFiniteDifferences(smooth: false, periodic: true)
    }

    func testVirialIsTheStrainDerivative() throws {
        for smooth in [true, false] {
            let model = try Self.model(smooth: smooth)
            let p = try Self.periodic()
            let out = try model.evaluate(atomicNumbers: p.numbers, positions: p.positions, cell: p.cell)
            let h = 1e-6
            var worst = 0.0, scale = 0.0
            for a in 0..<3 {
                for b in 0..<3 {
                    func strained(_ s: Double) throws -> Double {
                        var eps = Mat3.identity
                        eps[a, b] += s
                        let cell = try Cell(matrix: p.cell.matrix * eps, pbc: p.cell.pbc)
                        return try energy(model, p.numbers, p.positions.map { eps.leftMultiply($0) }, cell)
                    }
                    let fd = -(try strained(h) - strained(-h)) / (2 * h)
                    worst = max(worst, abs(fd - out.virial[a, b]))
                    scale = max(scale, abs(fd))
                }
            }
            XCTAssertGreaterThan(scale, 1e-3)
            XCTAssertLessThan(worst / scale, 1e-6, "smooth \(smooth)")
            print("virial vs strain finite differences (smooth \(smooth)): max |ΔW| \(worst), max |W| \(scale)")
        }
    }

    func testEnergyIsInvariantAndForcesAreEquivariant() throws {
        for smooth in [false, true] {
            let model = try Self.model(smooth: smooth)
            let m = try Self.ethanol()
            let base = try model.evaluate(atomicNumbers: m.numbers, positions: m.positions, cell: nil)
            // A rotation about an oblique axis, then a translation.
            let axis = Vec3(0.3, -0.5, 0.8) / norm(Vec3(0.3, -0.5, 0.8)), angle = 1.1
            let k = Mat3(Vec3(0, -axis.z, axis.y), Vec3(axis.z, 0, -axis.x), Vec3(-axis.y, axis.x, 0))
            let rotation = Mat3.identity + sin(angle) * k + (1 - cos(angle)) * (k * k)
            let moved = m.positions.map { rotation.rightMultiply($0) + Vec3(3.3, -1.2, 7.5) }
            let turned = try model.evaluate(atomicNumbers: m.numbers, positions: moved, cell: nil)
            XCTAssertEqual(turned.energy, base.energy, accuracy: 1e-12 * abs(base.energy))
            for i in 0..<m.positions.count {
                XCTAssertLessThan(norm(turned.forces[i] - rotation.rightMultiply(base.forces[i])), 1e-10)
            }
            // The per-atom readouts of the dipole and polarizability models: scalars invariant, vectors turned.
            let largestVector = base.atomVectors.map(norm).max() ?? 0
            XCTAssertGreaterThan(largestVector, 1e-3, "smooth \(smooth): the readout vectors are not all zero")
            for i in 0..<m.positions.count {
                XCTAssertLessThan(norm(turned.atomVectors[i] - rotation.rightMultiply(base.atomVectors[i])), 1e-10 * max(largestVector, 1))
                XCTAssertEqual(turned.atomScalars[i], base.atomScalars[i], accuracy: 1e-12 * max(abs(base.atomScalars[i]), 1))
            }
            // A permutation of the atoms permutes the forces.
            let order = [4, 2, 7, 0, 8, 1, 6, 3, 5]
            let permuted = try model.evaluate(atomicNumbers: order.map { m.numbers[$0] }, positions: order.map { m.positions[$0] }, cell: nil)
            XCTAssertEqual(permuted.energy, base.energy, accuracy: 1e-12 * abs(base.energy))
            for (k, i) in order.enumerated() { XCTAssertLessThan(norm(permuted.forces[k] - base.forces[i]), 1e-10) }
            // Total force and torque vanish.
            let total = base.forces.reduce(Vec3.zero, +)
            let torque = zip(m.positions, base.forces).reduce(Vec3.zero) { $0 + cross($1.0, $1.1) }
            XCTAssertLessThan(norm(total), 1e-12)
            XCTAssertLessThan(norm(torque), 1e-11)
        }
    }

    func testPeriodicCellEqualsItsSupercellWithTheGeometricRule() throws {
        let p = try Self.periodic()
        let superCell = try Cell(matrix: Mat3(2 * p.cell.a, p.cell.b, p.cell.c))
        let superPositions = p.positions + p.positions.map { $0 + p.cell.a }
        let superNumbers = p.numbers + p.numbers
        for smooth in [true, false] {
            var file = try Self.model(smooth: smooth).file
            file.configuration.lineGraphRule = .geometric
            let model = try ENINetModel(file: file, precision: .double)
            let one = try model.evaluate(atomicNumbers: p.numbers, positions: p.positions, cell: p.cell)
            let two = try model.evaluate(atomicNumbers: superNumbers, positions: superPositions, cell: superCell)
            XCTAssertEqual(two.energy, 2 * one.energy, accuracy: 1e-11 * abs(one.energy), "smooth \(smooth)")
            for i in 0..<p.positions.count {
                XCTAssertLessThan(norm(two.forces[i] - one.forces[i]), 1e-10)
                XCTAssertLessThan(norm(two.forces[i + p.positions.count] - one.forces[i]), 1e-10)
            }
            for a in 0..<3 { for b in 0..<3 { XCTAssertEqual(two.virial[a, b], 2 * one.virial[a, b], accuracy: 1e-9) } }
        }
        // DGL's atom-index rule drops triplets between different images of one atom, so there the cell and supercell differ.
        var file = try Self.model(smooth: false).file
        file.configuration.lineGraphRule = .atomIndex
        let reference = try ENINetModel(file: file, precision: .double)
        let one = try reference.evaluate(atomicNumbers: p.numbers, positions: p.positions, cell: p.cell, forces: false)
        let two = try reference.evaluate(atomicNumbers: superNumbers, positions: superPositions, cell: superCell, forces: false)
        XCTAssertGreaterThan(abs(two.energy - 2 * one.energy), 1e-6)
    }
}
