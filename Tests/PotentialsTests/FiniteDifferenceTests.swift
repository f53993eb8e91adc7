import XCTest
import Geometry
import Potentials

/// A test system: atoms, cell, and a way to rebuild the potential for a strained copy (tether
/// anchors move with the strain; everything else is translation invariant).
private struct Case {
    var label: String
    var configuration: Configuration
    var makePotential: (Mat3) throws -> any Potential
}

/// Small deterministic generator for test geometry (not the engine's: tests must not depend
/// on the code under test for their inputs).
private struct LCG {
    var state: UInt64
    mutating func next() -> Double {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Double(state >> 11) * 0x1p-53
    }
    mutating func vector(_ scale: Double) -> Vec3 { Vec3(next() - 0.5, next() - 0.5, next() - 0.5) * (2 * scale) }
}

/// Jittered grid of `m³` atoms in `cell` (fractional grid + jitter), so no two atoms overlap.
private func jitteredGrid(_ cell: Cell, _ m: Int, jitter: Double, seed: UInt64) -> [Vec3] {
    var rng = LCG(state: seed)
    var out: [Vec3] = []
    for a in 0..<m { for b in 0..<m { for c in 0..<m {
        let f = (Vec3(Double(a), Double(b), Double(c)) + 0.5) / Double(m)
        out.append(cell.cartesian(f) + rng.vector(jitter))
    }}}
    return out
}

private func strained(_ c: Configuration, _ e: Mat3) throws -> Configuration {
    let deform = Mat3.identity + e
    return Configuration(atomicNumbers: c.atomicNumbers,
                         positions: c.positions.map { deform.leftMultiply($0) },
                         cell: try c.cell?.strained(by: e))
}

final class FiniteDifferenceTests: XCTestCase {
    private func cases() throws -> [Case] {
        let cubic = try Cell.orthorhombic(Vec3(8, 8, 8))
        let tric = try Cell.fromLengthsAndAngles(Vec3(6.0, 6.5, 7.0), Vec3(80, 100, 70))
        let slab = try Cell.orthorhombic(Vec3(7, 7.5, 30), pbc: Periodicity(true, true, false))
        let clusterCell = try Cell.orthorhombic(Vec3(9, 9, 9))
        let cubicPos = jitteredGrid(cubic, 3, jitter: 0.3, seed: 1)
        let tricPos = jitteredGrid(tric, 2, jitter: 0.25, seed: 2)
        let slabPos = jitteredGrid(try Cell.orthorhombic(Vec3(7, 7.5, 7.5)), 3, jitter: 0.3, seed: 3)
        let clusterPos = jitteredGrid(clusterCell, 3, jitter: 0.3, seed: 4).map { $0 + Vec3(-50, 3, 17) }
        let systems: [(String, [Vec3], Cell?)] = [
            ("cubic 8 Å, rc > L/2", cubicPos, cubic),
            ("triclinic, rc > widths", tricPos, tric),
            ("slab periodic xy", slabPos, slab),
            ("cluster, no cell", clusterPos, nil),
        ]
        var out: [Case] = []
        for (label, pos, cell) in systems {
            let conf = Configuration(atomicNumbers: Array(repeating: 18, count: pos.count), positions: pos, cell: cell)
            let anchors = pos.enumerated().map { $0.element + Vec3(0.1, -0.2, 0.15) * Double($0.offset % 3) }
            let bonds = (0..<(pos.count - 1)).map {
                HarmonicBonds.Bond($0, $0 + 1, springConstant: 2.0 + Double($0 % 4), restLength: 1.5 + 0.1 * Double($0 % 3))
            }
            out.append(Case(label: "\(label) lj switched", configuration: conf) { _ in
                try LennardJones(sigma: 2.3, epsilon: 0.0104, cutoff: 7.0, scheme: .switched(onset: 5.5), skin: 0.5) })
            out.append(Case(label: "\(label) lj shifted", configuration: conf) { _ in
                try LennardJones(sigma: 2.3, epsilon: 0.0104, cutoff: 6.3, scheme: .shifted, skin: 0.3) })
            out.append(Case(label: "\(label) lj truncated", configuration: conf) { _ in
                try LennardJones(sigma: 2.3, epsilon: 0.0104, cutoff: 6.3, scheme: .truncated, skin: 0) })
            out.append(Case(label: "\(label) morse switched", configuration: conf) { _ in
                try Morse(depth: 0.3, alpha: 1.4, equilibriumDistance: 2.6, cutoff: 6.8, scheme: .switched(onset: 5.0), skin: 0.4) })
            out.append(Case(label: "\(label) morse shifted", configuration: conf) { _ in
                try Morse(depth: 0.3, alpha: 1.4, equilibriumDistance: 2.6, cutoff: 6.8, scheme: .shifted, skin: 0.4) })
            out.append(Case(label: "\(label) restraint", configuration: conf) { e in
                let deform = Mat3.identity + e
                return try HarmonicRestraint(tethers: anchors.enumerated().map {
                    .init(atom: $0.offset, anchor: deform.leftMultiply($0.element),
                          springConstants: Vec3(1.5, 2.0, 0.7) + 0.25 * Double($0.offset % 5))
                }) })
            out.append(Case(label: "\(label) bonds", configuration: conf) { _ in try HarmonicBonds(bonds: bonds) })
            out.append(Case(label: "\(label) sum", configuration: conf) { e in
                let deform = Mat3.identity + e
                return PotentialSum([
                    try LennardJones(sigma: 2.3, epsilon: 0.0104, cutoff: 7.0, scheme: .switched(onset: 5.5), skin: 0.5),
                    try HarmonicBonds(bonds: bonds),
                    try HarmonicRestraint(tethers: [.init(atom: 3, anchor: deform.leftMultiply(anchors[3]), springConstant: 4)]),
                ]) })
        }
        return out
    }

    /// Forces are minus the central-difference gradient of the energy, for every potential,
    /// periodic (cubic with r_c > L/2, triclinic with r_c above every width, a slab) and not.
    func testForcesMatchEnergyGradient() throws {
        let h = 1e-5
        for c in try cases() {
            let potential = try c.makePotential(.zero)
            let result = try potential.compute(c.configuration)
            XCTAssertTrue(result.energy.isFinite && abs(result.energy) > 1e-6, c.label)
            var worst = 0.0, largest = 0.0
            for i in 0..<c.configuration.count {
                for k in 0..<3 {
                    var plus = c.configuration, minus = c.configuration
                    plus.positions[i][k] += h
                    minus.positions[i][k] -= h
                    let fd = -(try potential.compute(plus).energy - potential.compute(minus).energy) / (2 * h)
                    worst = max(worst, abs(fd - result.forces[i][k]))
                    largest = max(largest, abs(result.forces[i][k]))
                }
            }
            XCTAssertGreaterThan(largest, 1e-3, "\(c.label): forces too small to test anything")
            XCTAssertLessThan(worst, 1e-7 + 1e-6 * largest, "\(c.label): force vs finite difference")
        }
    }

    /// The virial is −∂E/∂ε for a strain applied to positions and cell rows alike (all nine
    /// components, so an asymmetric virial would be caught too).
    func testVirialMatchesStrainDerivative() throws {
        let h = 1e-6
        for c in try cases() {
            let result = try c.makePotential(.zero).compute(c.configuration)
            var worst = 0.0, largest = 0.0
            for a in 0..<3 {
                for b in 0..<3 {
                    var e = Mat3.zero
                    e[a, b] = h
                    let ePlus = try c.makePotential(e).compute(try strained(c.configuration, e)).energy
                    let eMinus = try c.makePotential(-1 * e).compute(try strained(c.configuration, -1 * e)).energy
                    let fd = -(ePlus - eMinus) / (2 * h)
                    worst = max(worst, abs(fd - result.virial[a, b]))
                    largest = max(largest, abs(result.virial[a, b]))
                }
            }
            XCTAssertGreaterThan(largest, 1e-3, "\(c.label): virial too small to test anything")
            XCTAssertLessThan(worst, 1e-6 + 1e-6 * largest, "\(c.label): virial vs strain derivative")
        }
    }

    /// Pair potentials keep Newton's third law: total force zero; energy invariant under a
    /// rigid translation and, for the periodic cell, under wrapping the atoms into the cell.
    func testTranslationAndWrapInvariance() throws {
        for c in try cases() where !c.label.contains("restraint") && !c.label.contains("sum") {
            let potential = try c.makePotential(.zero)
            let base = try potential.compute(c.configuration)
            let total = base.forces.reduce(Vec3.zero, +)
            XCTAssertLessThan(norm(total), 1e-12 * Double(c.configuration.count) + 1e-13, c.label)
            var moved = c.configuration
            moved.positions = moved.positions.map { $0 + Vec3(13.1, -7.7, 2.9) }
            XCTAssertEqual(try potential.compute(moved).energy, base.energy, accuracy: 1e-11 * max(1, abs(base.energy)), c.label)
            if let cell = c.configuration.cell {
                var wrapped = moved
                wrapped.positions = moved.positions.map { cell.wrap($0) }
                let w = try potential.compute(wrapped)
                XCTAssertEqual(w.energy, base.energy, accuracy: 1e-11 * max(1, abs(base.energy)), c.label)
            }
        }
    }

    /// Independent all-image brute force (no neighbour list) for the shifted Lennard-Jones
    /// energy in the triclinic cell whose cutoff exceeds every width, and the sum of
    /// potentials equals the sum of its parts.
    func testBruteForceEnergyAndSum() throws {
        let cell = try Cell.fromLengthsAndAngles(Vec3(6.0, 6.5, 7.0), Vec3(80, 100, 70))
        let pos = jitteredGrid(cell, 2, jitter: 0.25, seed: 2)
        let conf = Configuration(atomicNumbers: Array(repeating: 18, count: pos.count), positions: pos, cell: cell)
        let (sigma, epsilon, rc) = (2.3, 0.0104, 6.5)
        func u(_ r: Double) -> Double { 4 * epsilon * (pow(sigma / r, 12) - pow(sigma / r, 6)) }
        var reference = 0.0
        let m: Int32 = 3
        for i in 0..<pos.count { for j in 0..<pos.count {
            for a in -m...m { for b in -m...m { for c in -m...m {
                if i == j && a == 0 && b == 0 && c == 0 { continue }
                let r = norm(pos[j] + cell.shiftVector(SIMD3(a, b, c)) - pos[i])
                if r <= rc { reference += 0.5 * (u(r) - u(rc)) }
            }}}
        }}
        let lj = try LennardJones(sigma: sigma, epsilon: epsilon, cutoff: rc, scheme: .shifted, skin: 0.4)
        XCTAssertEqual(try lj.compute(conf).energy, reference, accuracy: 1e-12 * abs(reference))

        let bonds = try HarmonicBonds(bonds: [.init(0, 5, springConstant: 3, restLength: 2)])
        let sum = PotentialSum([lj, bonds])
        let s = try sum.compute(conf), a = try lj.compute(conf), b = try bonds.compute(conf)
        XCTAssertEqual(s.energy, a.energy + b.energy, accuracy: 1e-14)
        XCTAssertEqual(s.virial[0, 1], a.virial[0, 1] + b.virial[0, 1], accuracy: 1e-14)
        XCTAssertEqual(s.forces[5].x, a.forces[5].x + b.forces[5].x, accuracy: 1e-14)
        XCTAssertEqual(sum.name, "sum(lj, harmonic-bonds)")
    }

    /// The switched potential is continuous through r_c with zero force there, and equals the
    /// plain potential below the onset; the shifted one is zero at r_c with the unshifted force.
    func testCutoffSchemesOnADimer() throws {
        func dimer(_ r: Double) -> Configuration {
            Configuration(atomicNumbers: [18, 18], positions: [.zero, Vec3(r, 0, 0)], cell: nil)
        }
        let (sigma, epsilon, rc) = (3.4, 0.0104, 8.5)
        let plain = try LennardJones(sigma: sigma, epsilon: epsilon, cutoff: rc, scheme: .truncated, skin: 0)
        let shifted = try LennardJones(sigma: sigma, epsilon: epsilon, cutoff: rc, scheme: .shifted, skin: 0)
        let switched = try LennardJones(sigma: sigma, epsilon: epsilon, cutoff: rc, scheme: .switched(onset: 7.0), skin: 0)
        let e0 = 4 * epsilon * (pow(sigma / rc, 12) - pow(sigma / rc, 6))
        XCTAssertEqual(e0, -1.6969566781e-4, accuracy: 1e-13)  // the README's shift value
        for r in [3.3, 3.8, 5.0, 6.9] {
            XCTAssertEqual(try shifted.compute(dimer(r)).energy, try plain.compute(dimer(r)).energy - e0, accuracy: 1e-15)
            XCTAssertEqual(try shifted.compute(dimer(r)).forces[1].x, try plain.compute(dimer(r)).forces[1].x, accuracy: 1e-15)
            XCTAssertEqual(try switched.compute(dimer(r)).energy, try plain.compute(dimer(r)).energy, accuracy: 1e-15)
        }
        // Inside the switching region, the documented quintic by hand: at t = 1/4,
        // S = 1 − 10/64 + 15/256 − 6/1024 and dS/dr = (−30/16 + 60/64 − 30/256) / 1.5 Å.
        let (s, dsdr) = (0.896484375, -1.0546875 / 1.5)
        let inside = try plain.compute(dimer(7.375)), insideSwitched = try switched.compute(dimer(7.375))
        XCTAssertEqual(insideSwitched.energy, inside.energy * s, accuracy: 1e-18)
        XCTAssertEqual(insideSwitched.forces[1].x, inside.forces[1].x * s - inside.energy * dsdr, accuracy: 1e-17)
        XCTAssertGreaterThan(abs(inside.energy * dsdr), 1e-5, "the switch's own force term is not negligible here")
        let near = try switched.compute(dimer(rc - 1e-4))
        XCTAssertLessThan(abs(near.energy), 1e-12)
        XCTAssertLessThan(abs(near.forces[1].x), 1e-9)
        XCTAssertEqual(try switched.compute(dimer(rc + 1e-9)).energy, 0)
        XCTAssertEqual(try shifted.compute(dimer(rc + 1e-9)).energy, 0)

        // Morse: minimum −D at r₀ with zero force; the formula elsewhere.
        let (d, alpha, r0) = (0.35, 1.3, 2.8)
        let morse = try Morse(depth: d, alpha: alpha, equilibriumDistance: r0, cutoff: 9, scheme: .truncated, skin: 0)
        let atMinimum = try morse.compute(dimer(r0))
        XCTAssertEqual(atMinimum.energy, -d, accuracy: 1e-15)
        XCTAssertEqual(atMinimum.forces[1].x, 0, accuracy: 1e-15)
        for r in [2.2, 3.5, 6.0] {
            let x = exp(-alpha * (r - r0))
            XCTAssertEqual(try morse.compute(dimer(r)).energy, d * (x * x - 2 * x), accuracy: 1e-14)
            XCTAssertEqual(try morse.compute(dimer(r)).forces[1].x, -2 * alpha * d * (x - x * x), accuracy: 1e-13)
        }
    }

    /// The pair loop relies on the list's row order: entries before `sameImageEnd[i]` join
    /// atoms of the same image after wrapping (shift = w_i − w_j), the others cross a face.
    func testNeighborListSameImagePartition() throws {
        let cell = try Cell.fromLengthsAndAngles(Vec3(9.0, 9.5, 10.0), Vec3(80, 100, 70))
        var pos = jitteredGrid(cell, 3, jitter: 0.3, seed: 9)
        pos = pos.enumerated().map { $0.element + Vec3(Double($0.offset % 3) * 9, -Double($0.offset % 2) * 9.5, 0) }
        for kind in [NeighborList.Kind.half, .full] {
            let list = NeighborList(cutoff: 6.0, skin: 0.5, kind: kind)
            try list.update(positions: pos, cell: cell)
            var same = 0, crossing = 0
            for i in 0..<pos.count {
                for k in Int(list.start[i])..<Int(list.start[i + 1]) {
                    let j = Int(list.neighbor[k])
                    let s = list.shifts[Int(list.shiftIndex[k])]
                    let isSame = s == list.wrapShifts[i] &- list.wrapShifts[j]
                    XCTAssertEqual(isSame, k < Int(list.sameImageEnd[i]), "row \(i) entry \(k)")
                    if isSame { same += 1 } else { crossing += 1 }
                }
            }
            XCTAssertGreaterThan(same, 0)
            XCTAssertGreaterThan(crossing, 0)
        }
    }

    func testBadParametersAreNamedErrors() {
        XCTAssertThrowsError(try LennardJones(sigma: 3.4, epsilon: 0.01, cutoff: 8, scheme: .switched(onset: 9)))
        XCTAssertThrowsError(try LennardJones(sigma: -1, epsilon: 0.01, cutoff: 8))
        XCTAssertThrowsError(try Morse(depth: 1, alpha: 1, equilibriumDistance: 1, cutoff: 0))
        XCTAssertThrowsError(try HarmonicBonds(bonds: [.init(1, 1, springConstant: 1, restLength: 1)]))
        // A rest length of half the cell or more pulls the partner to where another image is as
        // near; the slab's non-periodic 30 Å axis does not count.
        let slab = try? Cell.orthorhombic(Vec3(8, 9, 30), pbc: Periodicity(true, true, false))
        let pair = Configuration(atomicNumbers: [1, 1], positions: [.zero, Vec3(0, 0, 3.9)], cell: slab)
        XCTAssertNoThrow(try HarmonicBonds(bonds: [.init(0, 1, springConstant: 1, restLength: 3.9)]).compute(pair))
        XCTAssertThrowsError(try HarmonicBonds(bonds: [.init(0, 1, springConstant: 1, restLength: 4.0)]).compute(pair)) {
            XCTAssertTrue("\($0)".contains("harmonic bond 0-1: its rest length 4.0 Å is not shorter than half the cell's narrowest periodic width (4.0000 Å)"), "\($0)")
        }
        let conf = Configuration(atomicNumbers: [1, 1], positions: [.zero, Vec3(1, 0, 0)], cell: nil)
        XCTAssertThrowsError(try HarmonicRestraint(tethers: [.init(atom: 7, anchor: .zero, springConstant: 1)]).compute(conf)) {
            XCTAssertTrue("\($0)".contains("atom 7"))
        }
    }
}
