import Foundation
import XCTest
@testable import ENINet
import Geometry

final class GraphTests: XCTestCase {
    private func graph(_ positions: [Vec3], cell: Cell? = nil, cutoff: Double, cap: Int? = nil,
                       rule: ENINetConfiguration.LineGraphRule = .atomIndex, skin: Double = 0.5) throws -> ENINetGraph {
        let list = NeighborList(cutoff: cutoff, skin: skin, kind: .full)
        try list.update(positions: positions, cell: cell)
        return try ENINetGraph(positions: positions, neighborList: list, cutoff: cutoff, maxNeighbors: cap, rule: rule)
    }

    /// Atoms piled into a cell far smaller than the cutoff give a graph error that says so, at
    /// once: 20 atoms in a 0.5 Å cube would form about 10¹¹ triplets, past what an `Int32`
    /// indexes on any machine (found by fuzzing `evaluate`: a 9-atom case asked for 51 GB and
    /// crashed, a larger cell ran out of memory after a minute).
    func testAtomsPiledIntoATinyCellAreAnError() throws {
        var state: UInt64 = 12345
        func unit() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) / Double(1 << 53)
        }
        let width = 0.5
        let positions = (0..<20).map { _ in Vec3(unit(), unit(), unit()) * width }
        let start = Date()
        XCTAssertThrowsError(try graph(positions, cell: try Cell.orthorhombic(Vec3(repeating: width)), cutoff: 5, rule: .geometric, skin: 0)) {
            XCTAssertTrue("\($0)".contains("triplets") && "\($0)".contains("cell much smaller than the cutoff"), "\($0)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 20)
    }

    /// Compares a graph with the reference's index arrays. Edges with exactly equal lengths
    /// (mirror-symmetric atoms) may come in another order than ASE's, so edges are matched by
    /// their (source, destination) pair and triplets by the pairs of their two edges.
    private func assertMatchesReference(_ g: ENINetGraph, intermediates name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let ref = try SafeTensorsFile(contentsOf: try ReferenceData.file(name))
        let src = try ref.integers("graph.edge_src"), dst = try ref.integers("graph.edge_dst")
        let tin = try ref.integers("graph.triplet_bond_in"), tout = try ref.integers("graph.triplet_bond_out")
        let dist = try ref.doubles("graph.edge_dist")
        XCTAssertEqual(g.edgeCount, src.count, file: file, line: line)
        XCTAssertEqual(g.tripletCount, tin.count, file: file, line: line)
        struct Pair: Hashable { let s: Int, d: Int }
        let mine = (0..<g.edgeCount).map { Pair(s: Int(g.edgeSource[$0]), d: Int(g.edgeDestination[$0])) }
        let theirs = (0..<src.count).map { Pair(s: src[$0], d: dst[$0]) }
        // Same sources in the same order, and within a source the same multiset of lengths in order.
        XCTAssertEqual(mine.map { $0.s }, src, file: file, line: line)
        XCTAssertEqual(Set(mine), Set(theirs), file: file, line: line)
        let positions = try ref.doubles("positions")
        let p = (0..<g.atomCount).map { Vec3(positions[3 * $0], positions[3 * $0 + 1], positions[3 * $0 + 2]) }
        let lengths = g.edgeVectors(positions: p).map(norm)
        XCTAssertLessThan(maxRelativeError(lengths, dist), 1e-14, file: file, line: line)
        struct Triplet: Hashable { let a: Pair, b: Pair }
        let myTriplets = (0..<g.tripletCount).map { Triplet(a: mine[Int(g.tripletIn[$0])], b: mine[Int(g.tripletOut[$0])]) }
        let refTriplets = (0..<tin.count).map { Triplet(a: theirs[tin[$0]], b: theirs[tout[$0]]) }
        XCTAssertEqual(Set(myTriplets), Set(refTriplets), file: file, line: line)
        XCTAssertEqual(Set(myTriplets).count, myTriplets.count, file: file, line: line)
        // Triplets are ordered by incoming edge, as DGL's line_graph orders them.
        XCTAssertEqual(g.tripletIn, g.tripletIn.sorted(), file: file, line: line)
    }

    func testEthanolGraphMatchesTheReference() throws {
        let ethanol = try ReferenceData.cases("eninet-small.json")[0]
        XCTAssertEqual(ethanol["name"] as? String, "ethanol")
        let g = try graph(try ReferenceData.positions(ethanol), cutoff: 5, cap: 32)
        XCTAssertEqual(g.edgeCount, 72)
        XCTAssertEqual(g.tripletCount, 504)
        try assertMatchesReference(g, intermediates: "eninet-small-intermediates.safetensors")
    }

    func testQM9MoleculeGraphMatchesTheReference() throws {
        let molecule = try ReferenceData.cases("qm9-example.json")[0]
        let g = try graph(try ReferenceData.positions(molecule), cutoff: 4, cap: 32)
        XCTAssertEqual(g.edgeCount, 146)
        XCTAssertEqual(g.tripletCount, 1506)
        try assertMatchesReference(g, intermediates: "qm9-example-intermediates.safetensors")
    }

    func testEdgeAndTripletCountsOfEveryReferenceCase() throws {
        for file in ["eninet-small.json", "eninet-md17.json", "qm9-example.json"] {
            let cutoff = file.hasPrefix("qm9") ? 4.0 : 5.0
            for m in try ReferenceData.cases(file) {
                let name = "\(file):\(m["name"] as? String ?? m["id"] as? String ?? "?")"
                let p = try ReferenceData.positions(m)
                for rule in [ENINetConfiguration.LineGraphRule.atomIndex, .geometric] {
                    let g = try graph(p, cutoff: cutoff, cap: 32, rule: rule)
                    XCTAssertEqual(g.edgeCountBeforeCap, m["n_edges_before_truncation"] as? Int, name)
                    XCTAssertEqual(g.edgeCount, m["n_edges_directed"] as? Int, name)
                    XCTAssertEqual(g.tripletCount, m["n_triplets"] as? Int, "\(name) \(rule)")
                    XCTAssertEqual(g.isTruncated, m["truncated"] as? Bool, name)
                }
            }
        }
    }

    func testNeighbourCapKeepsTheNearest32PerSource() throws {
        let cases = try ReferenceData.cases("eninet-small.json")
        let dense = try XCTUnwrap(cases.first { $0["name"] as? String == "dense_cluster_truncated" })
        let p = try ReferenceData.positions(dense)
        let capped = try graph(p, cutoff: 5, cap: 32)
        let full = try graph(p, cutoff: 5, cap: nil)
        XCTAssertEqual(full.edgeCount, 1582)
        XCTAssertEqual(capped.edgeCount, 1415)
        XCTAssertEqual(capped.edgeCountBeforeCap, 1582)
        let lengths = capped.edgeVectors(positions: p).map(norm)
        let fullLengths = full.edgeVectors(positions: p).map(norm)
        for i in 0..<p.count {
            let mine = (0..<capped.edgeCount).filter { capped.edgeSource[$0] == i }.map { lengths[$0] }
            let all = (0..<full.edgeCount).filter { full.edgeSource[$0] == i }.map { fullLengths[$0] }
            XCTAssertEqual(mine.count, min(32, all.count))
            XCTAssertEqual(mine, Array(all.sorted().prefix(32)), "atom \(i) keeps its nearest neighbours in order")
        }
        // After the cap the graph is asymmetric: some j → i survive while i → j is gone.
        struct Pair: Hashable { let s: Int32, d: Int32 }
        let set = Set((0..<capped.edgeCount).map { Pair(s: capped.edgeSource[$0], d: capped.edgeDestination[$0]) })
        XCTAssertTrue(set.contains { !set.contains(Pair(s: $0.d, d: $0.s)) })
    }

    func testGeometricRuleMakesAPeriodicCellEqualItsSupercell() throws {
        // Simple cubic, a = 3 Å, rc = 5 Å: 6 neighbours at 3 Å and 12 at 4.24 Å (the 8 at 5.2 Å are out).
        let cell = try Cell.orthorhombic(Vec3(3, 3, 3))
        let one = try graph([Vec3(0.1, 0.2, 0.3)], cell: cell, cutoff: 5, rule: .geometric)
        XCTAssertEqual(one.edgeCount, 18)
        XCTAssertEqual(one.tripletCount, 18 * 17)
        let oneReference = try graph([Vec3(0.1, 0.2, 0.3)], cell: cell, cutoff: 5, rule: .atomIndex)
        XCTAssertEqual(oneReference.tripletCount, 0, "DGL's rule keeps no triplet in a one-atom cell")

        var atoms: [Vec3] = []
        for x in 0..<2 { for y in 0..<2 { for z in 0..<2 { atoms.append(Vec3(0.1, 0.2, 0.3) + 3 * Vec3(Double(x), Double(y), Double(z))) } } }
        let superCell = try Cell.orthorhombic(Vec3(6, 6, 6))
        let big = try graph(atoms, cell: superCell, cutoff: 5, rule: .geometric)
        XCTAssertEqual(big.edgeCount, 8 * 18)
        XCTAssertEqual(big.tripletCount, 8 * 18 * 17)
        // Every triplet vector is the sum of its two edge vectors, and no triplet walks straight back.
        let d = big.edgeVectors(positions: atoms)
        for t in 0..<big.tripletCount {
            let v = d[Int(big.tripletIn[t])] + d[Int(big.tripletOut[t])]
            XCTAssertGreaterThan(norm(v), 1e-9)
        }
    }

    func testCoincidentAtomsAreReported() {
        XCTAssertThrowsError(try graph([Vec3(0, 0, 0), Vec3(0, 0, 0)], cutoff: 5)) {
            XCTAssertTrue("\($0)".contains("atoms 0 and 1"), "\($0)")
        }
    }

    /// Triplets share a span exactly when they start at the same atom and end at the same image
    /// of the same atom, in a molecule and in a one-atom cell (where every span ends at an image
    /// of the start atom); a graph whose edges are not grouped by source still gets right spans.
    func testSpansJoinTheTripletsOfOneStartAndEnd() throws {
        struct End: Hashable { let a: Int32, c: Int32, image: SIMD3<Int32> }
        func end(_ g: ENINetGraph, _ t: Int) -> End {
            let e1 = Int(g.tripletIn[t]), e2 = Int(g.tripletOut[t])
            return End(a: g.edgeSource[e1], c: g.edgeDestination[e2], image: g.edgeImage[e1] &+ g.edgeImage[e2])
        }
        func check(_ g: ENINetGraph, spans expected: Int? = nil, _ label: String) {
            XCTAssertEqual(g.tripletSpan.count, g.tripletCount, label)
            var seen: [End: Int32] = [:]
            for t in 0..<g.tripletCount {
                let p = Int(g.tripletSpan[t])
                XCTAssertEqual(end(g, t), end(g, Int(g.spanTriplet[p])), "\(label): triplet \(t)")
                if let q = seen[end(g, t)] { XCTAssertEqual(q, g.tripletSpan[t], "\(label): triplet \(t)") } else { seen[end(g, t)] = g.tripletSpan[t] }
            }
            XCTAssertEqual(seen.count, g.spanCount, label)
            if let expected { XCTAssertEqual(g.spanCount, expected, label) }
        }
        let ethanol = try ReferenceData.cases("eninet-small.json")[0]
        let molecule = try graph(try ReferenceData.positions(ethanol), cutoff: 5, rule: .geometric)
        // Nine atoms within 5 Å of each other: every ordered pair of different atoms is a span.
        check(molecule, spans: 9 * 8, "ethanol")
        let cell = try Cell.orthorhombic(Vec3(3, 3, 3))
        let one = try graph([Vec3(0.1, 0.2, 0.3)], cell: cell, cutoff: 5, rule: .geometric)
        // Ends: the images at most two edges away, other than the atom itself.
        let images = Set((0..<one.tripletCount).map { end(one, $0).image })
        XCTAssertFalse(images.contains(.zero))
        check(one, spans: images.count, "one-atom cell")
        // The same edges in reverse order: sources come back, so spans repeat, but each stays right.
        let e = molecule.edgeCount
        let reversed = try ENINetGraph(atomCount: molecule.atomCount, edgeSource: molecule.edgeSource.reversed(),
                                       edgeDestination: molecule.edgeDestination.reversed(), rule: .geometric)
        XCTAssertEqual(reversed.edgeCount, e)
        for t in 0..<reversed.tripletCount {
            XCTAssertEqual(end(reversed, t), end(reversed, Int(reversed.spanTriplet[Int(reversed.tripletSpan[t])])))
        }
    }
}
