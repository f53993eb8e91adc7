import Foundation
import XCTest
@testable import Geometry

/// A small deterministic generator so that every random cell is reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

struct PairKey: Hashable, CustomStringConvertible {
    let i: Int, j: Int, shift: SIMD3<Int32>
    var description: String { "(\(i)->\(j) \(shift))" }
}

/// Every (i, j, S) with |r_j + S·cell − r_i| < cutoff, by looping over all images that can be
/// that close: O(N²·images), independent of the cell-list code.
func bruteForcePairs(positions: [Vec3], cell: Cell?, cutoff: Double) -> Set<PairKey> {
    var result = Set<PairKey>()
    let n = positions.count
    guard let cell = cell else {
        for i in 0..<n { for j in 0..<n where i != j && norm(positions[j] - positions[i]) < cutoff {
            result.insert(PairKey(i: i, j: j, shift: .zero))
        } }
        return result
    }
    let delta = Vec3(repeating: cutoff) / cell.perpendicularWidths
    let frac = positions.map { cell.fractional($0) }
    for i in 0..<n {
        for j in 0..<n {
            let df = frac[i] - frac[j]
            var lo = SIMD3<Int32>(0, 0, 0), hi = SIMD3<Int32>(0, 0, 0)
            for k in 0..<3 where cell.pbc[k] {
                lo[k] = Int32((df[k] - delta[k]).rounded(.down)) - 1
                hi[k] = Int32((df[k] + delta[k]).rounded(.up)) + 1
            }
            for x in lo.x...hi.x { for y in lo.y...hi.y { for z in lo.z...hi.z {
                let s = SIMD3<Int32>(x, y, z)
                if i == j && s == .zero { continue }
                let d = positions[j] + cell.shiftVector(s) - positions[i]
                if norm(d) < cutoff { result.insert(PairKey(i: i, j: j, shift: s)) }
            } } }
        }
    }
    return result
}

func listedPairs(_ list: NeighborList, within cutoff: Double, positions: [Vec3], cell: Cell?) -> [PairKey] {
    var pairs: [PairKey] = []
    for i in 0..<positions.count {
        for k in Int(list.start[i])..<Int(list.start[i + 1]) {
            let j = Int(list.neighbor[k])
            let s = list.shifts[Int(list.shiftIndex[k])]
            let d = positions[j] + (cell?.shiftVector(s) ?? .zero) - positions[i]
            if norm(d) < cutoff { pairs.append(PairKey(i: i, j: j, shift: s)) }
        }
    }
    return pairs
}

/// The half-list representative of a directed pair.
func canonical(_ p: PairKey) -> PairKey {
    if p.i < p.j { return p }
    if p.i > p.j { return PairKey(i: p.j, j: p.i, shift: SIMD3<Int32>(repeating: 0) &- p.shift) }
    return isPositive(p.shift) ? p : PairKey(i: p.i, j: p.j, shift: SIMD3<Int32>(repeating: 0) &- p.shift)
}

func randomCell(_ rng: inout SplitMix64, triclinic: Bool, pbc: Periodicity) throws -> Cell {
    func u(_ a: Double, _ b: Double) -> Double { Double.random(in: a..<b, using: &rng) }
    var m = Mat3(Vec3(u(4, 9), 0, 0), Vec3(0, u(4, 9), 0), Vec3(0, 0, u(4, 9)))
    if triclinic {
        // Skew up to ~45° and rotate, so the cell is in no standard orientation.
        m[1, 0] = u(-0.6, 0.6) * m[0, 0]
        m[2, 0] = u(-0.6, 0.6) * m[0, 0]
        m[2, 1] = u(-0.6, 0.6) * m[1, 1]
        let axis = Vec3(u(-1, 1), u(-1, 1), u(-1, 1) + 2)
        let n = axis / norm(axis), angle = u(0, 2 * .pi)
        let c = cos(angle), s = sin(angle)
        let rotation = Mat3(
            Vec3(c + n.x * n.x * (1 - c), n.x * n.y * (1 - c) - n.z * s, n.x * n.z * (1 - c) + n.y * s),
            Vec3(n.y * n.x * (1 - c) + n.z * s, c + n.y * n.y * (1 - c), n.y * n.z * (1 - c) - n.x * s),
            Vec3(n.z * n.x * (1 - c) - n.y * s, n.z * n.y * (1 - c) + n.x * s, c + n.z * n.z * (1 - c)))
        m = m * rotation
    }
    return try Cell(matrix: m, pbc: pbc)
}

final class NeighborListTests: XCTestCase {
    /// Issue 2, point 4: the cell-list search equals brute force on many random cells,
    /// orthorhombic and triclinic, with cutoffs from 0.3 to 2 times the shortest width.
    func testEqualsBruteForceOnRandomCells() throws {
        var rng = SplitMix64(seed: 20261122)
        var cellsChecked = 0
        for trial in 0..<64 {
            let triclinic = trial % 2 == 1
            let pbc: Periodicity = trial % 8 == 6 ? Periodicity(true, false, true) : .all
            let cell = try randomCell(&rng, triclinic: triclinic, pbc: pbc)
            let shortest = cell.perpendicularWidths.min()
            let factor = 0.3 + 1.7 * Double(trial % 16) / 15.0
            let cutoff = factor * shortest
            let atoms = Int.random(in: 1...(factor > 1.2 ? 8 : 24), using: &rng)
            // Positions inside and outside the cell: the list must work with unwrapped coordinates.
            let positions: [Vec3] = (0..<atoms).map { _ in
                let f = Vec3(Double.random(in: -1.5..<2.5, using: &rng), Double.random(in: -1.5..<2.5, using: &rng),
                             Double.random(in: -1.5..<2.5, using: &rng))
                return cell.cartesian(f)
            }
            let expected = bruteForcePairs(positions: positions, cell: cell, cutoff: cutoff)

            let full = NeighborList(cutoff: cutoff, skin: 0, kind: .full)
            try full.update(positions: positions, cell: cell)
            let fullPairs = listedPairs(full, within: cutoff, positions: positions, cell: cell)
            XCTAssertEqual(fullPairs.count, Set(fullPairs).count, "duplicate pairs in full list, trial \(trial)")
            let fullSet = Set(fullPairs)
            XCTAssertTrue(fullSet == expected, "trial \(trial), \(cell), cutoff \(cutoff): missing \(expected.subtracting(fullSet).prefix(5)), extra \(fullSet.subtracting(expected).prefix(5))")

            let half = NeighborList(cutoff: cutoff, skin: 0, kind: .half)
            try half.update(positions: positions, cell: cell)
            let halfPairs = listedPairs(half, within: cutoff, positions: positions, cell: cell)
            XCTAssertEqual(halfPairs.count, Set(halfPairs.map(canonical)).count, "a pair listed twice in the half list, trial \(trial)")
            let halfSet = Set(halfPairs.map(canonical)), expectedHalf = Set(expected.map(canonical))
            XCTAssertTrue(halfSet == expectedHalf, "half list, trial \(trial): missing \(expectedHalf.subtracting(halfSet).prefix(5)), extra \(halfSet.subtracting(expectedHalf).prefix(5))")
            XCTAssertEqual(2 * halfPairs.count, expected.count, "half list is not half of the full set, trial \(trial)")
            cellsChecked += 1
        }
        XCTAssertGreaterThanOrEqual(cellsChecked, 50)
    }

    func testMoleculeWithoutCellEqualsBruteForce() throws {
        var rng = SplitMix64(seed: 7)
        let positions: [Vec3] = (0..<60).map { _ in
            Vec3(Double.random(in: -6..<6, using: &rng), Double.random(in: -6..<6, using: &rng), Double.random(in: 0..<30, using: &rng))
        }
        for cutoff in [1.5, 4.0, 50.0] {
            let list = NeighborList(cutoff: cutoff, skin: 0.5, kind: .full)
            try list.update(positions: positions, cell: nil)
            XCTAssertEqual(Set(listedPairs(list, within: cutoff, positions: positions, cell: nil)),
                           bruteForcePairs(positions: positions, cell: nil, cutoff: cutoff))
        }
    }

    /// A cell far smaller than the cutoff is an error, at once: found by fuzzing `evaluate`,
    /// such cells crashed the build (an `Int32` overflow at 1e-3 Å) or took gigabytes. A
    /// molecule in a periodic cell far larger than the cutoff lists its pairs as without the
    /// cell (a 10⁴ Å cube asked for 4096³ bins and crashed).
    func testCellsFarSmallerOrLargerThanTheCutoff() throws {
        let molecule = [Vec3(0, 0, 0), Vec3(1.1, 0, 0), Vec3(0, 1.2, 0.3), Vec3(-0.8, -0.4, 0.9)]
        for width in [1e-3, 0.05] {
            let cell = try Cell.orthorhombic(Vec3(repeating: width))
            let list = NeighborList(cutoff: 5, skin: 0.5, kind: .full)
            for _ in 0..<2 {  // a failed build is not taken for a list: the next update fails again
                let start = Date()
                XCTAssertThrowsError(try list.update(positions: molecule, cell: cell)) {
                    guard case GeometryError.cellTooSmall = $0 else { return XCTFail("width \(width): \($0)") }
                    XCTAssertTrue("\($0)".contains("periodic images"), "\($0)")
                }
                XCTAssertLessThan(Date().timeIntervalSince(start), 5, "width \(width)")
            }
        }
        // Ten images each way (21³ of them) are still a list, of the right pairs.
        let small = try Cell.orthorhombic(Vec3(repeating: 0.5))
        let list = NeighborList(cutoff: 5, skin: 0, kind: .full)
        try list.update(positions: molecule, cell: small)
        XCTAssertEqual(Set(listedPairs(list, within: 5, positions: molecule, cell: small)),
                       bruteForcePairs(positions: molecule, cell: small, cutoff: 5))
        for width in [1e4, 1e7] {
            let cell = try Cell.orthorhombic(Vec3(repeating: width))
            let list = NeighborList(cutoff: 5, skin: 0.5, kind: .full)
            try list.update(positions: molecule, cell: cell)
            let pairs = Set(listedPairs(list, within: 5, positions: molecule, cell: cell))
            XCTAssertEqual(pairs, bruteForcePairs(positions: molecule, cell: cell, cutoff: 5), "width \(width)")
            XCTAssertEqual(pairs.count, 12, "width \(width)")
        }
        // A molecule with an atom 1e300 Å away has no periodic image to blame: the message said
        // "cell too small" with widths "0.0, 0.0, 1e+300" (its cross products overflowed).
        XCTAssertThrowsError(try NeighborList(cutoff: 5, skin: 0.5, kind: .full).update(positions: molecule + [Vec3(0, 0, 1e300)], cell: nil)) {
            guard case GeometryError.positionOutOfRange = $0 else { return XCTFail("\($0)") }
            XCTAssertTrue("\($0)".contains("the atoms are too far apart for the cell-list search (the box around the atoms spans 6.5 × 6.5 × 1e+300 Å"), "\($0)")
        }
    }

    /// Unwrapped atoms scattered over a hundred cells each way, in a cell five times narrower
    /// than the cutoff: their pairs cross more distinct image shifts than the list's 16-bit
    /// indices hold. That is an error now; the indices used to wrap silently, pairing atoms
    /// with the wrong images.
    func testAtomsManyCellsAwayNeedMoreThan65535DistinctShifts() throws {
        // Unwrapped atoms scattered over ±50 cells, as a long run of a liquid leaves them: their
        // pairs have far more distinct shifts than a 16-bit index holds (the list once refused
        // them), and the list must still be the wrapped atoms' list, shifts moved by the wraps.
        var rng = SplitMix64(seed: 3)
        let cell = try Cell.orthorhombic(Vec3(1, 1, 1))
        let wrapped: [Vec3] = (0..<50).map { _ in
            Vec3(Double.random(in: 0..<1, using: &rng), Double.random(in: 0..<1, using: &rng), Double.random(in: 0..<1, using: &rng))
        }
        let wraps: [SIMD3<Int32>] = wrapped.map { _ in
            SIMD3(Int32.random(in: -50...50, using: &rng), Int32.random(in: -50...50, using: &rng), Int32.random(in: -50...50, using: &rng))
        }
        let unwrapped = zip(wrapped, wraps).map { $0 + cell.shiftVector($1) }
        // Not 3: an atom's own images at √9 Å would sit on the cutoff, where round-off decides.
        let cutoff = 2.95
        let far = NeighborList(cutoff: cutoff, skin: 0, kind: .full)
        try far.update(positions: unwrapped, cell: cell)
        XCTAssertGreaterThan(far.shifts.count, 65_535)
        let near = NeighborList(cutoff: cutoff, skin: 0, kind: .full)
        try near.update(positions: wrapped, cell: cell)
        XCTAssertLessThanOrEqual(near.shifts.count, 9 * 9 * 9)
        // r_j + S·cell − r_i with unwrapped positions is the wrapped pair's separation when
        // S = S_wrapped + w_i − w_j.
        let listed = Set(listedPairs(far, within: cutoff, positions: unwrapped, cell: cell))
        let expected = Set(listedPairs(near, within: cutoff, positions: wrapped, cell: cell).map {
            PairKey(i: $0.i, j: $0.j, shift: $0.shift &+ wraps[$0.i] &- wraps[$0.j])
        })
        XCTAssertGreaterThan(expected.count, 200_000)
        XCTAssertEqual(listed.count, expected.count)
        XCTAssertEqual(listed, expected)
        // Every listed separation is the one its index names (no index was truncated).
        for i in 0..<unwrapped.count {
            for k in Int(far.start[i])..<Int(far.start[i + 1]) {
                let d = unwrapped[Int(far.neighbor[k])] + far.shiftVectors[Int(far.shiftIndex[k])] - unwrapped[i]
                XCTAssertLessThan(norm(d), cutoff + 1e-9)
            }
        }
    }

    /// A cell narrower than the cutoff: an atom interacts with its own images.
    func testSingleAtomSeesItsOwnImages() throws {
        let cell = try Cell.orthorhombic(Vec3(2, 3, 10))
        let list = NeighborList(cutoff: 3.5, skin: 0, kind: .full)
        try list.update(positions: [Vec3(0.3, 0.2, 0.1)], cell: cell)
        let pairs = Set(listedPairs(list, within: 3.5, positions: [Vec3(0.3, 0.2, 0.1)], cell: cell))
        // Images at (±1,0,0) 2 Å, (0,±1,0) 3 Å, (±1,±1,0) 3.6 Å (out), (±2,0,0) 4 Å (out).
        XCTAssertEqual(pairs, Set([SIMD3<Int32>(1, 0, 0), SIMD3(-1, 0, 0), SIMD3(0, 1, 0), SIMD3(0, -1, 0)].map {
            PairKey(i: 0, j: 0, shift: $0)
        }))
    }

    /// Between rebuilds the list keeps every pair within the cutoff; it rebuilds only when an
    /// atom has moved more than half the skin or the cell changed.
    func testVerletSkinRebuildCriterion() throws {
        var rng = SplitMix64(seed: 99)
        let cell = try randomCell(&rng, triclinic: true, pbc: .all)
        let cutoff = 0.45 * cell.perpendicularWidths.min(), skin = 0.6
        var positions: [Vec3] = (0..<30).map { _ in
            cell.cartesian(Vec3(Double.random(in: 0..<1, using: &rng), Double.random(in: 0..<1, using: &rng), Double.random(in: 0..<1, using: &rng)))
        }
        let list = NeighborList(cutoff: cutoff, skin: skin, kind: .half)
        XCTAssertTrue(try list.update(positions: positions, cell: cell))
        var rebuilds = 0
        for step in 0..<200 {
            for i in positions.indices {
                positions[i] += Vec3(Double.random(in: -1..<1, using: &rng), Double.random(in: -1..<1, using: &rng),
                                     Double.random(in: -1..<1, using: &rng)) * 0.02
            }
            if try list.update(positions: positions, cell: cell) { rebuilds += 1 }
            let listed = Set(listedPairs(list, within: cutoff, positions: positions, cell: cell).map(canonical))
            let expected = Set(bruteForcePairs(positions: positions, cell: cell, cutoff: cutoff).map(canonical))
            XCTAssertEqual(listed, expected, "step \(step)")
        }
        XCTAssertGreaterThan(rebuilds, 0)
        XCTAssertLessThan(rebuilds, 100, "the skin should save most rebuilds")
        // A changed cell always forces a rebuild.
        let strained = try cell.strained(by: Mat3(Vec3(0.01, 0, 0), .zero, .zero))
        XCTAssertTrue(try list.update(positions: positions, cell: strained))
    }
}

final class CellTests: XCTestCase {
    func testLengthsAndAnglesRoundTrip() throws {
        let cell = try Cell.fromLengthsAndAngles(Vec3(10.34087, 10.33929, 10.31279), Vec3(59.10106, 60.41196, 58.54714))
        XCTAssertEqual(cell.lengths.x, 10.34087, accuracy: 1e-12)
        XCTAssertEqual(cell.lengths.y, 10.33929, accuracy: 1e-12)
        XCTAssertEqual(cell.lengths.z, 10.31279, accuracy: 1e-12)
        XCTAssertEqual(cell.anglesDegrees.x, 59.10106, accuracy: 1e-10)
        XCTAssertEqual(cell.anglesDegrees.y, 60.41196, accuracy: 1e-10)
        XCTAssertEqual(cell.anglesDegrees.z, 58.54714, accuracy: 1e-10)
        XCTAssertEqual(cell.a.y, 0); XCTAssertEqual(cell.a.z, 0); XCTAssertEqual(cell.b.z, 0)
        // The EMT triclinic cell (README of ../shared/data/emt): volume 767.75 Å³.
        XCTAssertEqual(cell.volume, 767.75, accuracy: 0.01)
    }

    func testOrthorhombicFromRightAnglesIsExact() throws {
        let cell = try Cell.fromLengthsAndAngles(Vec3(18, 19, 20), Vec3(90, 90, 90))
        XCTAssertTrue(cell.isOrthorhombic)
        XCTAssertEqual(cell.volume, 18 * 19 * 20)
    }

    func testFractionalCartesianAndWrap() throws {
        var rng = SplitMix64(seed: 3)
        let cell = try randomCell(&rng, triclinic: true, pbc: Periodicity(true, true, false))
        for _ in 0..<100 {
            let r = Vec3(Double.random(in: -30..<30, using: &rng), Double.random(in: -30..<30, using: &rng), Double.random(in: -30..<30, using: &rng))
            XCTAssertLessThan(norm(cell.cartesian(cell.fractional(r)) - r), 1e-12)
            let f = cell.fractional(cell.wrap(r))
            XCTAssertTrue((0..<1).contains(f.x) || abs(f.x - 1) < 1e-12)
            XCTAssertTrue((0..<1).contains(f.y) || abs(f.y - 1) < 1e-12)
            XCTAssertEqual(f.z, cell.fractional(r).z, accuracy: 1e-12, "non-periodic axis must not wrap")
        }
    }

    func testSingularCellIsAnError() {
        XCTAssertThrowsError(try Cell(matrix: Mat3(Vec3(1, 0, 0), Vec3(2, 0, 0), Vec3(0, 0, 1))))
        XCTAssertThrowsError(try Cell.orthorhombic(Vec3(1, 0, 1)))
        XCTAssertThrowsError(try Cell.fromLengthsAndAngles(Vec3(1, 1, 1), Vec3(10, 10, 170)))
        // Three 120° angles put c in the plane of a and b: only round-off is left of the volume.
        XCTAssertThrowsError(try Cell.fromLengthsAndAngles(Vec3(10, 10, 10), Vec3(120, 120, 120)))
        XCTAssertThrowsError(try Cell(matrix: Mat3(Vec3(100, 0, 0), Vec3(0, 100, 0), Vec3(50, 50, 1e-7))))
        let skewed = try? Cell.fromLengthsAndAngles(Vec3(10, 10, 10), Vec3(119, 119, 119))
        XCTAssertEqual(skewed?.volume ?? 0, 258.80, accuracy: 0.01, "a thin but real cell is kept")
    }
}
