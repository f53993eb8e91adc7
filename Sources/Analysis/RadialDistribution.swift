import Foundation
import Geometry

/// Radial distribution functions per element pair, accumulated frame by frame.
///
/// Pairs are found with the Geometry neighbour list, which counts every periodic image, so
/// triclinic cells and cutoffs beyond half the cell width are handled exactly.
///
/// Normalisation, for the pair of elements (a, b) and a bin `[r, r+Δr)` of shell volume `V_s`:
/// `g_ab(r) = ⟨V · n_ab(r)⟩ / (N_a (N_b − δ_ab) V_s)`, where `n_ab` counts ordered pairs
/// (an a atom, a b neighbour) in the bin and the average runs over frames (each frame with its
/// own volume, so NPT trajectories are normalised correctly). With `N_b − δ_ab` an ideal gas
/// gives exactly 1. The running coordination number `N_ab(r)`, the mean number of b atoms
/// within `r` of an a atom, needs no volume.
///
/// Non-periodic systems have no volume: `g` is then computed only when a volume is given;
/// otherwise the table has the local density `ρ_ab(r) = n_ab / (N_a V_s)` (Å⁻³) and `N_ab(r)`.
public final class RadialDistribution {
    public let rMax: Double
    public let binWidth: Double
    public let binCount: Int
    /// Element symbols, in order of first appearance.
    public let elements: [String]
    /// Unordered element pairs `(a, b)` with `a ≤ b` in `elements` order.
    public let pairs: [(Int, Int)]
    /// Volume for non-periodic frames (Å³), if the user gave one.
    public let volume: Double?

    private let elementOfAtom: [Int]
    private let countOfElement: [Int]
    private let pairIndex: [[Int]]
    /// Unordered pair counts per pair type and bin.
    private var counts: [[Double]]
    /// The same counts weighted by each frame's volume.
    private var volumeWeighted: [[Double]]
    private var allPeriodic = true
    public private(set) var frames = 0
    private let neighbors: NeighborList

    /// The most histogram bins an RDF may have.
    public static let maximumBinCount = 1_000_000

    public init(symbols: [String], rMax: Double, binWidth: Double, volume: Double? = nil) throws {
        guard rMax > 0, binWidth > 0, rMax.isFinite, binWidth < rMax else {
            throw AnalysisError("RDF: need 0 < bin width (\(binWidth) Å) < r_max (\(rMax) Å)")
        }
        // Checked before the count becomes an `Int`: r_max = 1e300 trapped there, and 1e6 Å
        // (5·10⁷ bins, a list of every pair within a kilometre) ran for minutes.
        guard rMax / binWidth <= Double(Self.maximumBinCount) else {
            throw AnalysisError("RDF: r_max / bin width = \(rMax) Å / \(binWidth) Å is more than \(Self.maximumBinCount) bins")
        }
        guard !symbols.isEmpty else { throw AnalysisError("RDF: no atoms") }
        if let v = volume, !(v > 0) { throw AnalysisError("RDF: volume must be positive; got \(v) Å³") }
        self.rMax = rMax
        self.binWidth = binWidth
        // 8.96 / 0.02 is 448.00000000000006 in Double: a whole number of bins must not get an
        // empty extra one (of zero volume, which made the last row NaN).
        let bins = rMax / binWidth
        self.binCount = abs(bins - bins.rounded()) <= 1e-9 * bins ? Int(bins.rounded()) : Int(bins.rounded(.up))
        self.volume = volume
        var elements: [String] = []
        var elementOfAtom: [Int] = []
        for s in symbols {
            if let e = elements.firstIndex(of: s) { elementOfAtom.append(e) } else {
                elements.append(s)
                elementOfAtom.append(elements.count - 1)
            }
        }
        self.elements = elements
        self.elementOfAtom = elementOfAtom
        countOfElement = elements.indices.map { e in elementOfAtom.filter { $0 == e }.count }
        var pairs: [(Int, Int)] = []
        var pairIndex = [[Int]](repeating: [Int](repeating: 0, count: elements.count), count: elements.count)
        for a in elements.indices {
            for b in a..<elements.count {
                pairIndex[a][b] = pairs.count
                pairIndex[b][a] = pairs.count
                pairs.append((a, b))
            }
        }
        self.pairs = pairs
        self.pairIndex = pairIndex
        counts = [[Double]](repeating: [Double](repeating: 0, count: binCount), count: pairs.count)
        volumeWeighted = counts
        neighbors = NeighborList(cutoff: Double(binCount) * binWidth, skin: 0, kind: .half)
    }

    /// Adds one frame. `cell` nil or non-periodic: the frame counts only with a given volume
    /// for `g`, always for `ρ` and `N`.
    public func add(positions: [Vec3], cell: Cell?, frame: Int? = nil) throws {
        let label = frame.map { " (frame \($0))" } ?? ""
        guard positions.count == elementOfAtom.count else {
            throw AnalysisError("RDF: a frame\(label) has \(positions.count) atoms; expected \(elementOfAtom.count)")
        }
        if let bad = positions.firstIndex(where: { !$0.isFinite }) {
            throw AnalysisError("RDF: position of atom \(bad)\(label) is not finite")
        }
        let periodic = cell.map { $0.pbc.any } ?? false
        if !periodic { allPeriodic = false }
        let v = periodic ? (cell?.volume ?? 0) : (volume ?? 0)
        neighbors.invalidate()
        do {
            try neighbors.update(positions: positions, cell: periodic ? cell : nil)
        } catch let error as GeometryError {
            // The list speaks of a cutoff; here that is r_max.
            throw AnalysisError("RDF\(label): r_max = \(rMax) Å is too long for this cell (\(error)); lower --r-max")
        }
        let rmax2 = rMax * rMax
        let inverseWidth = 1 / binWidth
        let start = neighbors.start, neighbor = neighbors.neighbor, shiftIndex = neighbors.shiftIndex
        let shiftVectors = neighbors.shiftVectors
        for i in 0..<positions.count {
            let ri = positions[i]
            let ei = elementOfAtom[i]
            for k in Int(start[i])..<Int(start[i + 1]) {
                let j = Int(neighbor[k])
                let d = positions[j] + shiftVectors[Int(shiftIndex[k])] - ri
                let r2 = dot(d, d)
                if r2 >= rmax2 || r2 == 0 { continue }
                let bin = Int(r2.squareRoot() * inverseWidth)
                if bin >= binCount { continue }
                let p = pairIndex[ei][elementOfAtom[j]]
                counts[p][bin] += 1
                volumeWeighted[p][bin] += v
            }
        }
        frames += 1
    }

    /// Bin centres (Å).
    /// Bin centres; the last bin ends at r_max when r_max is not a whole number of bins.
    public var radii: [Double] { (0..<binCount).map { k in (Double(k) * binWidth + min(Double(k + 1) * binWidth, rMax)) / 2 } }

    private func shellVolume(_ k: Int) -> Double {
        // Pairs at r_max and beyond are not counted, so a last bin that r_max cuts holds the
        // pairs of a thinner shell (normalised by a full one it read g ≈ 0.4 for an ideal gas).
        let r0 = Double(k) * binWidth, r1 = min(r0 + binWidth, rMax)
        return 4 / 3 * Double.pi * (r1 * r1 * r1 - r0 * r0 * r0)
    }

    /// Ordered-pair count of b atoms around a atoms in pair type p's histogram: unordered
    /// counts, doubled for like pairs (each unordered pair is two ordered ones).
    private func orderedFactor(_ p: Int) -> Double { pairs[p].0 == pairs[p].1 ? 2 : 1 }

    /// Whether `g` can be normalised: every frame periodic, or a volume given.
    public var hasVolume: Bool { allPeriodic || volume != nil }

    /// `g_ab(r)` for pair type `p` (nil without a volume).
    public func g(pair p: Int) -> [Double]? {
        guard hasVolume, frames > 0 else { return nil }
        let (a, b) = pairs[p]
        let na = Double(countOfElement[a]), nb = Double(countOfElement[b] - (a == b ? 1 : 0))
        guard na > 0, nb > 0 else { return [Double](repeating: 0, count: binCount) }
        return (0..<binCount).map { k in
            orderedFactor(p) * volumeWeighted[p][k] / (Double(frames) * na * nb * shellVolume(k))
        }
    }

    /// `g(r)` of all atoms regardless of element (nil without a volume).
    public func totalG() -> [Double]? {
        guard hasVolume, frames > 0 else { return nil }
        let n = Double(elementOfAtom.count)
        guard n > 1 else { return [Double](repeating: 0, count: binCount) }
        return (0..<binCount).map { k in
            var s = 0.0
            for p in pairs.indices { s += 2 * volumeWeighted[p][k] }
            return s / (Double(frames) * n * (n - 1) * shellVolume(k))
        }
    }

    /// Mean number of `around` atoms within the upper edge of each bin of a `center` atom.
    public func coordination(center a: Int, around b: Int) -> [Double] {
        let p = pairIndex[a][b]
        let factor = a == b ? 2.0 : 1.0
        let na = Double(countOfElement[a])
        var running = 0.0
        return (0..<binCount).map { k in
            running += factor * counts[p][k]
            return frames > 0 ? running / (Double(frames) * na) : 0
        }
    }

    /// Local density of `around` atoms at distance r from a `center` atom (Å⁻³).
    public func localDensity(center a: Int, around b: Int) -> [Double] {
        let p = pairIndex[a][b]
        let factor = a == b ? 2.0 : 1.0
        let na = Double(countOfElement[a])
        return (0..<binCount).map { k in frames > 0 ? factor * counts[p][k] / (Double(frames) * na * shellVolume(k)) : 0 }
    }

    /// `r_A`, then per pair `g_a-b` (or `rho_a-b` without a volume) and the running
    /// coordination numbers `n_a-b` (b around a) and, for unlike pairs, `n_b-a`; with more
    /// than one element, `g_total` after `r_A`.
    public var table: DataTable {
        var columns = [DataTable.Column(name: "r", unit: "A", values: radii)]
        if elements.count > 1, let gt = totalG() { columns.append(.init(name: "g_total", unit: "1", values: gt)) }
        for (p, (a, b)) in pairs.enumerated() {
            let name = "\(elements[a])-\(elements[b])"
            if let g = g(pair: p) {
                columns.append(.init(name: "g_\(name)", unit: "1", values: g))
            } else {
                columns.append(.init(name: "rho_\(name)", unit: "A-3", values: localDensity(center: a, around: b)))
            }
            columns.append(.init(name: "n_\(name)", unit: "1", values: coordination(center: a, around: b)))
            if a != b {
                columns.append(.init(name: "n_\(elements[b])-\(elements[a])", unit: "1", values: coordination(center: b, around: a)))
            }
        }
        return DataTable(columns: columns)
    }
}
