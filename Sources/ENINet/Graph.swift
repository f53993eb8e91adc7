import Foundation
import Geometry

/// The atom graph and its line graph (three-body triplets) for one configuration.
///
/// Edges are directed, `source → destination` with an image shift: the edge vector is
/// `d_e = r_dst + shift_e − r_src`. Edges are grouped by source in ascending order and sorted by
/// length within a group, as in the reference, so that a neighbour cap keeps the nearest ones.
/// A triplet `t = (e1 → e2)` joins an edge `a → b` to an edge `b → c`; its messages go to `e2`,
/// and its vector is `d_e1 + d_e2`. Triplets are ordered by `e1`, then by `e2`, the order DGL's
/// `line_graph` produces.
///
/// A triplet `a → b → c` spans the distance from `a` to `c`'s image, which every triplet from `a`
/// to the same image of `c` shares, whatever its middle atom: a molecule of 21 atoms has 4,376
/// triplets but about 400 spans. The triplets' radial terms are computed once per span.
public struct ENINetGraph: Sendable {
    public let atomCount: Int
    public private(set) var edgeSource: [Int32]
    public private(set) var edgeDestination: [Int32]
    /// Integer image of each edge's destination (zero for molecules).
    public private(set) var edgeImage: [SIMD3<Int32>]
    /// The image as a Cartesian vector for the cell the graph was built in.
    public private(set) var edgeShift: [Vec3]
    /// `e1` (the incoming bond) of each triplet.
    public private(set) var tripletIn: [Int32]
    /// `e2` (the bond the triplet's messages go to) of each triplet.
    public private(set) var tripletOut: [Int32]
    /// The span of each triplet (an index into ``spanTriplet``).
    public private(set) var tripletSpan: [Int32] = []
    /// The first triplet of each span, whose two edges give the span's vector.
    public private(set) var spanTriplet: [Int32] = []
    /// How many edges lay within the cutoff before a neighbour cap removed some.
    public private(set) var edgeCountBeforeCap: Int

    public var edgeCount: Int { edgeSource.count }
    public var tripletCount: Int { tripletIn.count }
    public var spanCount: Int { spanTriplet.count }
    /// Whether the neighbour cap removed edges (the graph may then be asymmetric).
    public var isTruncated: Bool { edgeCountBeforeCap != edgeCount }

    /// A graph from explicit index arrays (for example the reference's), with the triplets derived
    /// from the edges by `rule`, or given explicitly.
    public init(atomCount: Int, edgeSource: [Int32], edgeDestination: [Int32], edgeImage: [SIMD3<Int32>]? = nil,
                edgeShift: [Vec3]? = nil, tripletIn: [Int32]? = nil, tripletOut: [Int32]? = nil,
                rule: ENINetConfiguration.LineGraphRule = .geometric) throws {
        guard edgeSource.count == edgeDestination.count else {
            throw ModelFileError("graph: \(edgeSource.count) edge sources but \(edgeDestination.count) destinations")
        }
        for (k, (s, d)) in zip(edgeSource, edgeDestination).enumerated() where s < 0 || d < 0 || Int(s) >= atomCount || Int(d) >= atomCount {
            throw ModelFileError("graph: edge \(k) joins atoms \(s) and \(d), outside 0..<\(atomCount)")
        }
        self.atomCount = atomCount
        self.edgeSource = edgeSource
        self.edgeDestination = edgeDestination
        self.edgeImage = edgeImage ?? [SIMD3<Int32>](repeating: .zero, count: edgeSource.count)
        self.edgeShift = edgeShift ?? [Vec3](repeating: .zero, count: edgeSource.count)
        self.edgeCountBeforeCap = edgeSource.count
        if let ti = tripletIn, let to = tripletOut {
            guard ti.count == to.count else { throw ModelFileError("graph: triplet arrays differ in length") }
            for k in 0..<ti.count where ti[k] < 0 || to[k] < 0 || Int(ti[k]) >= edgeSource.count || Int(to[k]) >= edgeSource.count {
                throw ModelFileError("graph: triplet \(k) refers to an edge outside 0..<\(edgeSource.count)")
            }
            self.tripletIn = ti
            self.tripletOut = to
            buildSpans()
        } else {
            self.tripletIn = []
            self.tripletOut = []
            try buildTriplets(rule: rule)
        }
    }

    /// Builds the graph of `positions` from a full neighbour list already updated for them
    /// (`neighborList.update(positions:cell:)`), keeping pairs strictly closer than `cutoff`.
    ///
    /// - Parameters:
    ///   - maxNeighbors: keep only the nearest this many edges per source atom (reference: 32).
    ///   - rule: which consecutive bond pairs form no triplet.
    public init(positions: [Vec3], neighborList: NeighborList, cutoff: Double, maxNeighbors: Int?,
                rule: ENINetConfiguration.LineGraphRule) throws {
        guard neighborList.kind == .full else {
            throw ModelFileError("graph: ENINet needs a full neighbour list (both directions of every pair)")
        }
        guard neighborList.cutoff >= cutoff else {
            throw ModelFileError("graph: neighbour-list cutoff \(neighborList.cutoff) is below the model cutoff \(cutoff)")
        }
        let n = positions.count
        guard neighborList.start.count == n + 1 else {
            throw ModelFileError("graph: the neighbour list was built for \(neighborList.start.count - 1) atoms, not \(n)")
        }
        self.atomCount = n
        let cut2 = cutoff * cutoff
        var src: [Int32] = [], dst: [Int32] = [], image: [SIMD3<Int32>] = [], shift: [Vec3] = []
        let pairs = neighborList.neighbor.count
        src.reserveCapacity(pairs); dst.reserveCapacity(pairs); image.reserveCapacity(pairs); shift.reserveCapacity(pairs)
        var beforeCap = 0
        var group: [(d2: Double, j: Int32, k: Int)] = []
        let shifts = neighborList.shifts, shiftVectors = neighborList.shiftVectors
        for i in 0..<n {
            group.removeAll(keepingCapacity: true)
            let ri = positions[i]
            for k in Int(neighborList.start[i])..<Int(neighborList.start[i + 1]) {
                let j = neighborList.neighbor[k]
                let d = positions[Int(j)] + shiftVectors[Int(neighborList.shiftIndex[k])] - ri
                let d2 = (d * d).sum()
                if d2 < cut2 {
                    guard d2 > 0 else { throw ModelFileError("graph: atoms \(i) and \(j) (or its periodic image) coincide") }
                    group.append((d2, j, k))
                }
            }
            beforeCap += group.count
            // Ties (symmetric molecules) are broken by neighbour index so the order is deterministic.
            group.sort { $0.d2 != $1.d2 ? $0.d2 < $1.d2 : ($0.j != $1.j ? $0.j < $1.j : $0.k < $1.k) }
            let keep = min(group.count, maxNeighbors ?? group.count)
            for g in group.prefix(keep) {
                let s = Int(neighborList.shiftIndex[g.k])
                src.append(Int32(i)); dst.append(g.j); image.append(shifts[s]); shift.append(shiftVectors[s])
            }
        }
        self.edgeSource = src
        self.edgeDestination = dst
        self.edgeImage = image
        self.edgeShift = shift
        self.edgeCountBeforeCap = beforeCap
        self.tripletIn = []
        self.tripletOut = []
        try buildTriplets(rule: rule)
    }

    /// Memory an evaluation takes per triplet, about: its geometry, features and messages in
    /// every layer, what the backward pass keeps. Measured in Double, the larger (770 bytes: a
    /// 17-million-triplet cell took 13.2 GB; Float 390): at 512 a Double evaluation that the
    /// guard let through was killed for want of memory.
    static let bytesPerTriplet = 800

    /// This machine's memory in bytes, read once (graphs are built every MD step).
    static let physicalMemory = Int(clamping: ProcessInfo.processInfo.physicalMemory)

    /// The most triplets a graph may have: what an `Int32` indexes, and what this machine's
    /// memory holds at ``bytesPerTriplet``.
    public static let maximumTripletCount = min(Int(Int32.max), physicalMemory / bytesPerTriplet)

    private mutating func buildTriplets(rule: ENINetConfiguration.LineGraphRule) throws {
        let n = atomCount, e = edgeSource.count
        // Outgoing edges of every atom, in edge order (edges need not be grouped by source here).
        var outStart = [Int](repeating: 0, count: n + 1)
        for s in edgeSource { outStart[Int(s) + 1] += 1 }
        for a in 0..<n { outStart[a + 1] += outStart[a] }
        var fill = outStart
        var outEdges = [Int32](repeating: 0, count: e)
        for k in 0..<e {
            let s = Int(edgeSource[k])
            outEdges[fill[s]] = Int32(k)
            fill[s] += 1
        }
        var tin: [Int32] = [], tout: [Int32] = []
        var estimate = 0
        for k in 0..<e { let b = Int(edgeDestination[k]); estimate += outStart[b + 1] - outStart[b] }
        // Atoms piled into a cell far smaller than the cutoff once asked for 51 GB here and crashed.
        guard estimate <= Self.maximumTripletCount else {
            let gigabytes = Double(estimate) * Double(Self.bytesPerTriplet) / 1e9
            throw ModelFileError("graph: \(e) edges (\(e / max(n, 1)) per atom) would form up to \(estimate) triplets, "
                + String(format: "about %.0f GB to evaluate; this machine has %.0f GB", gigabytes, Double(Self.physicalMemory) / 1e9)
                + ". Are atoms piled up in a cell much smaller than the cutoff?")
        }
        tin.reserveCapacity(estimate); tout.reserveCapacity(estimate)
        for e1 in 0..<e {
            let a = edgeSource[e1], b = Int(edgeDestination[e1])
            let s1 = edgeImage[e1]
            for slot in outStart[b]..<outStart[b + 1] {
                let e2 = Int(outEdges[slot])
                if edgeDestination[e2] == a {
                    switch rule {
                    case .atomIndex: continue
                    case .geometric: if s1 &+ edgeImage[e2] == .zero { continue }
                    }
                }
                tin.append(Int32(e1))
                tout.append(Int32(e2))
            }
        }
        tripletIn = tin
        tripletOut = tout
        buildSpans()
    }

    /// Numbers the triplets' spans: two triplets share one when they start at the same atom and
    /// end at the same image of the same atom. While one start atom's triplets last, the first
    /// span to each end atom is kept in a table indexed by that atom (all a molecule needs), and
    /// spans to its other images in a hash table. A start atom that comes back later (edges not
    /// grouped by source) gets spans of its own again, which is redundant but right.
    private mutating func buildSpans() {
        let nt = tripletIn.count
        var span = [Int32](repeating: 0, count: nt)
        var first: [Int32] = []
        first.reserveCapacity(min(nt, 64 * atomCount))
        // For each end atom: the run of triplets (of one start atom) its entry belongs to, the
        // entry's span and image.
        var endRun = [Int](repeating: -1, count: atomCount)
        var endSpan = [Int32](repeating: 0, count: atomCount), endImage = [SIMD3<Int32>](repeating: .zero, count: atomCount)
        var otherImages = SpanTable()
        var start = -1, run = -1
        for t in 0..<nt {
            let e1 = Int(tripletIn[t]), e2 = Int(tripletOut[t])
            let a = Int(edgeSource[e1]), c = Int(edgeDestination[e2])
            if a != start { start = a; run += 1; otherImages.removeAll() }
            let image = edgeImage[e1] &+ edgeImage[e2]
            let new = Int32(first.count)
            let s: Int32
            if endRun[c] != run {
                endRun[c] = run; endSpan[c] = new; endImage[c] = image
                s = new
            } else if endImage[c] == image {
                s = endSpan[c]
            } else {
                s = otherImages.index(of: SIMD4(Int32(c), image.x, image.y, image.z), inserting: new)
            }
            if s == new { first.append(Int32(t)) }
            span[t] = s
        }
        tripletSpan = span
        spanTriplet = first
    }

    /// Edge vectors `r_dst + shift − r_src` for `positions`.
    public func edgeVectors(positions: [Vec3]) -> [Vec3] {
        (0..<edgeCount).map { positions[Int(edgeDestination[$0])] + edgeShift[$0] - positions[Int(edgeSource[$0])] }
    }

    /// The atoms span `p` joins: the start of its first triplet's in-edge and the end of its out-edge.
    public func spanAtoms(_ p: Int) -> (start: Int, end: Int) {
        let t = Int(spanTriplet[p])
        return (Int(edgeSource[Int(tripletIn[t])]), Int(edgeDestination[Int(tripletOut[t])]))
    }

    /// Span vectors `r_end + (S1 + S2) − r_start` for `positions`, from the first triplet's two
    /// edges, formed as the reference forms a triplet's vector.
    public func spanVectors(positions: [Vec3]) -> [Vec3] {
        (0..<spanCount).map { p in
            let t = Int(spanTriplet[p]), e1 = Int(tripletIn[t]), e2 = Int(tripletOut[t])
            let (start, end) = spanAtoms(p)
            return positions[end] + (edgeShift[e1] + edgeShift[e2]) - positions[start]
        }
    }
}

/// A hash table from a span's end (atom and image) to its index, for one start atom at a time.
/// (``ENINetGraph`` keeps the first image of each end atom out of it.)
private struct SpanTable {
    private var keys = [SIMD4<Int32>](repeating: SpanTable.empty, count: 64)
    private var values = [Int32](repeating: 0, count: 64)
    private var occupied: [Int] = []
    private static let empty = SIMD4<Int32>(-1, 0, 0, 0)

    private var mask: Int { keys.count - 1 }

    private static func hash(_ key: SIMD4<Int32>) -> Int {
        let h = UInt32(bitPattern: key.x) &* 0x9E37_79B1 ^ UInt32(bitPattern: key.y) &* 0x85EB_CA77
            ^ UInt32(bitPattern: key.z) &* 0xC2B2_AE3D ^ UInt32(bitPattern: key.w) &* 0x27D4_EB2F
        return Int(h ^ (h >> 15))
    }

    /// The slot holding `key`, or the empty slot where it belongs.
    private func slot(of key: SIMD4<Int32>) -> Int {
        var slot = Self.hash(key) & mask
        while keys[slot] != Self.empty && keys[slot] != key { slot = (slot + 1) & mask }
        return slot
    }

    /// The index stored for `key`, or `new` after storing it.
    mutating func index(of key: SIMD4<Int32>, inserting new: Int32) -> Int32 {
        let slot = slot(of: key)
        if keys[slot] == key { return values[slot] }
        keys[slot] = key
        values[slot] = new
        occupied.append(slot)
        // At most half full, so that probes stay short.
        if 2 * occupied.count > keys.count { grow() }
        return new
    }

    mutating func removeAll() {
        for slot in occupied { keys[slot] = Self.empty }
        occupied.removeAll(keepingCapacity: true)
    }

    private mutating func grow() {
        let entries = occupied.map { (keys[$0], values[$0]) }
        keys = [SIMD4<Int32>](repeating: Self.empty, count: 2 * keys.count)
        values = [Int32](repeating: 0, count: keys.count)
        occupied.removeAll(keepingCapacity: true)
        for (key, value) in entries {
            let slot = slot(of: key)
            keys[slot] = key
            values[slot] = value
            occupied.append(slot)
        }
    }
}
