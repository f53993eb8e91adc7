/// A Verlet neighbour list built with cell lists, counting every periodic image.
///
/// Pairs are stored in compressed rows: the neighbours of atom `i` are entries
/// `start[i] ..< start[i+1]` of `neighbor` (atom index `j`) and `shiftIndex` (an index into
/// `shifts`, the integer image `S` such that the separation is `r_j + S·cell − r_i` with the
/// *unwrapped* positions given to `update`). The list holds every pair closer than
/// `cutoff + skin` at the last build and is rebuilt only when an atom has moved more than half
/// the skin, the atom count changes or the cell changes, so between builds it contains every
/// pair closer than `cutoff`.
///
/// Periodic images are found by adding ghost copies of atoms near the cell faces, as many
/// layers as the cutoff needs; a cutoff larger than half the box, or larger than the box
/// itself, therefore finds several images of the same neighbour and an atom's own images.
public final class NeighborList {
    public enum Kind: Sendable { case half, full }

    public let cutoff: Double
    public let skin: Double
    public let kind: Kind

    public private(set) var start: [Int32] = [0]
    public private(set) var neighbor: [Int32] = []
    public private(set) var shiftIndex: [UInt32] = []
    /// Distinct integer image shifts; `shifts[0]` is always (0, 0, 0).
    public private(set) var shifts: [SIMD3<Int32>] = [.zero]
    /// `shifts` as Cartesian vectors of the cell of the last build.
    public private(set) var shiftVectors: [Vec3] = [.zero]
    /// The integer image subtracted from each atom at the last build, so that
    /// `positions[i] − wrapVectors[i]` lay inside the cell (along periodic axes; zero without a cell).
    public private(set) var wrapShifts: [SIMD3<Int32>] = []
    /// `wrapShifts` as Cartesian vectors.
    public private(set) var wrapVectors: [Vec3] = []
    /// Row `i` is ordered so that entries `start[i] ..< sameImageEnd[i]` join atom i to an atom
    /// of the same image once both are wrapped: their separation is simply
    /// `(r_j − wrapVectors[j]) − (r_i − wrapVectors[i])`, with no image shift to add. The
    /// remaining entries of the row cross a cell face. Pair loops use this to skip the shift
    /// lookup for most pairs.
    public private(set) var sameImageEnd: [Int32] = []
    /// How many times the list has been built; for tests and logs.
    public private(set) var buildCount = 0

    private var positionsAtBuild: [Vec3] = []
    private var cellAtBuild: Cell? = nil

    public init(cutoff: Double, skin: Double, kind: Kind) {
        self.cutoff = cutoff
        self.skin = max(0, skin)
        self.kind = kind
    }

    public var pairCount: Int { neighbor.count }

    /// Rebuilds the list if needed. Returns whether it was rebuilt.
    ///
    /// Throws ``GeometryError/cellTooSmall(_:)`` when the cutoff reaches more periodic images
    /// than a build takes (65,535 images of the cell, 2³¹ pairs) or would take more copies of
    /// atoms than memory holds: a cell far smaller than the cutoff, which no physical system
    /// has, once crashed the build or ran out of memory. Unwrapped positions many cells away
    /// (a long run of a diffusing system) are not limited: the shifts they give are indexed by
    /// `UInt32`, as many as there are pairs.
    @discardableResult
    public func update(positions: [Vec3], cell: Cell?) throws -> Bool {
        if needsRebuild(positions: positions, cell: cell) {
            try rebuild(from: positions, cell: cell)
            return true
        }
        return false
    }

    /// The most periodic images of the cell a build may search (the cutoff over the cell widths).
    public static let maximumImageCount = 65_535
    /// The most (atom, image) pairs a build may consider, about 20 s of work: far above any
    /// physical system (a million atoms in a cell wider than the cutoff consider 27 million).
    static let maximumImageCopies = 1 << 34
    /// The most periodic copies of atoms a build may keep (5 GB of bookkeeping). A cell wider
    /// than the cutoff keeps only a shell of them; a million atoms keep a few hundred thousand.
    static let maximumGhostCount = 1 << 28

    /// Forces a rebuild at the next `update`.
    public func invalidate() { positionsAtBuild = [] }

    /// The positions the list was last built from (nil before the first build and after
    /// ``invalidate()``). Which pairs the list holds, in which order, and the images its atoms
    /// were wrapped by follow from them and the cell alone.
    public var anchorPositions: [Vec3]? { buildCount > 0 && !positionsAtBuild.isEmpty ? positionsAtBuild : nil }

    /// Builds the list from `anchor`, positions an earlier run built it from
    /// (``anchorPositions``), so that it is the list that run had: the same pairs in the same
    /// order, and the same rebuilds to come. `update` then rebuilds only when an atom has moved
    /// more than half the skin from `anchor`.
    public func rebuild(from anchor: [Vec3], cell: Cell?) throws {
        do {
            try build(positions: anchor, cell: cell)
        } catch {
            // Half-built state must not count as a list for these positions.
            positionsAtBuild = []
            throw error
        }
    }

    private func needsRebuild(positions: [Vec3], cell: Cell?) -> Bool {
        guard positions.count == positionsAtBuild.count, cell == cellAtBuild, buildCount > 0 else { return true }
        let limit = 0.25 * skin * skin
        return positions.withUnsafeBufferPointer { p in
            positionsAtBuild.withUnsafeBufferPointer { q in
                for i in 0..<p.count {
                    let d = p[i] - q[i]
                    if (d * d).sum() > limit { return true }
                }
                return false
            }
        }
    }

    private func build(positions: [Vec3], cell: Cell?) throws {
        buildCount += 1
        positionsAtBuild = positions
        cellAtBuild = cell
        let n = positions.count
        let cut = cutoff + skin
        let cut2 = cut * cut

        // A frame for binning: the real cell, or a box around the atoms when there is none.
        let frame: Cell
        var origin = Vec3.zero
        if let cell = cell {
            frame = cell
        } else {
            var lo = positions.first ?? .zero, hi = lo
            for r in positions { lo = pointwiseMin(lo, r); hi = pointwiseMax(hi, r) }
            origin = lo
            let edge = pointwiseMax(hi - lo, Vec3(repeating: cut)) + 1.0
            // Non-finite positions give a non-finite box; fall back to a unit box so that the
            // build finishes (the caller reports the non-finite positions).
            frame = (try? Cell.orthorhombic(edge, pbc: .none)) ?? Cell.unitBox
        }
        let pbc = frame.pbc
        let delta = Vec3(repeating: cut) / frame.perpendicularWidths  // the cutoff's reach in fractional units

        // Wrap along periodic axes; remember the integer shift of every atom.
        var frac = [Vec3](repeating: .zero, count: n)
        var wrapShift = [SIMD3<Int32>](repeating: .zero, count: n)
        var fracLo = Vec3(repeating: .infinity), fracHi = Vec3(repeating: -.infinity)
        for i in 0..<n {
            var f = frame.fractional(positions[i] - origin)
            var s = SIMD3<Int32>.zero
            for k in 0..<3 where pbc[k] {
                let fl = f[k].rounded(.down)
                // Clamped to the image counter's range, an atom 2·10⁹ cells away silently lost
                // every neighbour (its energy term vanished).
                if fl.isFinite && abs(fl) > 1e9 {
                    throw GeometryError.positionOutOfRange("atom \(i) lies \(fl) cell lengths outside the cell along axis \(k + 1) (at most 10⁹)")
                }
                s[k] = fl.isFinite ? Int32(fl) : 0
                f[k] -= fl
                if !(f[k] < 1) { f[k] = 0; s[k] &+= 1 }  // -tiny + 1 rounds to 1; NaN lands at 0
            }
            frac[i] = f
            wrapShift[i] = s
            if f.isFinite {
                fracLo = pointwiseMin(fracLo, f)
                fracHi = pointwiseMax(fracHi, f)
            }
        }
        if !(fracLo.x <= fracHi.x && fracLo.y <= fracHi.y && fracLo.z <= fracHi.z) { fracLo = .zero; fracHi = .zero }

        // Bins at least half the cutoff wide; a neighbour is at most `reach` bins away (more
        // than two when the cutoff exceeds the cell). Periodic axes tile the cell exactly with
        // `nb` bins, so an image's bin is its atom's bin plus image·nb, computed in integers:
        // the pair (i, j + S) is then exactly `offset` bins from i when (j, i − S) is
        // `−offset` from j, which is what lets the half list use half the stencil.
        var binLo = Vec3.zero, binWidth = Vec3.zero
        var nb = SIMD3<Int>(1, 1, 1)
        for k in 0..<3 {
            if pbc[k] {
                nb[k] = max(1, Int(min(4096, (2 / delta[k]).rounded(.down))))  // clamped before `Int`: a huge cell
                binWidth[k] = 1 / Double(nb[k])
            } else {
                let span = max(0, fracHi[k] - fracLo[k])
                binWidth[k] = max(delta[k] / 2, span / 1_000_000)
                nb[k] = Int((span / binWidth[k]).rounded(.down)) + 1
                binLo[k] = fracLo[k]
            }
        }
        // Keep the bin count proportional to the atom count for sparse non-periodic systems.
        // Clamped before `Int`, for a cell of atomic width or less: the image test below rejects it.
        func reachOf(_ k: Int) -> Int { max(1, Int(min(100_000, (delta[k] / binWidth[k]).rounded(.up)))) }
        func binTotal() -> Int {
            var t = 1
            for k in 0..<3 { t *= nb[k] + 2 * reachOf(k) }
            return t
        }
        // Periodic axes too (their bins still tile the cell: a whole number of them): a cell a
        // thousand times wider than the cutoff once asked for 4096³ bins, past `Int32`.
        while binTotal() > 8 * n + 4096 {
            var changed = false
            for k in 0..<3 where nb[k] > 1 {
                nb[k] = (nb[k] + 1) / 2
                binWidth[k] = pbc[k] ? 1 / Double(nb[k]) : binWidth[k] * 2
                changed = true
            }
            if !changed { break }
        }
        let reach = SIMD3<Int>(reachOf(0), reachOf(1), reachOf(2))
        let pad = reach  // empty or ghost bins around the cell, so the stencil never leaves the grid
        let dims = nb &+ 2 &* pad
        let strideY = dims.z, strideX = dims.y * dims.z
        let nbins = dims.x * strideX
        // Before any bin index is formed: they are `Int32`.
        var imageRange = SIMD3<Int>(0, 0, 0)
        for k in 0..<3 where pbc[k] { imageRange[k] = (pad[k] + nb[k] - 1) / nb[k] }
        let images = (2 * imageRange.x + 1) * (2 * imageRange.y + 1) * (2 * imageRange.z + 1)
        let copies = n.multipliedReportingOverflow(by: images)
        guard images <= Self.maximumImageCount, !copies.overflow, copies.partialValue <= Self.maximumImageCopies,
              nbins < Int(Int32.max) else {
            let widths = frame.perpendicularWidths
            if images == 1 {
                // No periodic image is the trouble: the atoms are too far apart to bin. The box's
                // edges, not its widths, whose cross products overflow for such spans.
                let m = frame.matrix
                let span = cell == nil ? "the box around the atoms spans \(m[0, 0]) × \(m[1, 1]) × \(m[2, 2]) Å"
                    : "the cell's widths are \(widths.x), \(widths.y), \(widths.z) Å"
                throw GeometryError.positionOutOfRange(
                    "the atoms are too far apart for the cell-list search (\(span): \(nbins) bins of at least half the cutoff \(cut) Å, at most \(Int32.max)); is an atom far from the others?")
            }
            throw GeometryError.cellTooSmall(
                "the cutoff \(cut) Å (with the skin) reaches \(imageRange.x), \(imageRange.y), \(imageRange.z) periodic images along a, b, c "
                + "(cell widths \(widths.x), \(widths.y), \(widths.z) Å): \(images) images of \(n) atoms; at most "
                + "\(Self.maximumImageCount) images and \(Self.maximumImageCopies) atom copies are supported")
        }

        // Bin of each local atom.
        var localBin = [SIMD3<Int>](repeating: .zero, count: n)
        for i in 0..<n {
            var b = SIMD3<Int>(0, 0, 0)
            for k in 0..<3 {
                let x = ((frac[i][k] - binLo[k]) / binWidth[k]).rounded(.down)
                b[k] = x.isFinite ? max(0, min(nb[k] - 1, Int(max(-1e9, min(1e9, x))))) : 0
            }
            localBin[i] = b &+ pad
        }

        // Extended atoms: locals, then periodic images whose bin lies on the padded grid.
        var extOwner = [Int32](), extImage = [SIMD3<Int32>](), extBin = [Int32]()
        extOwner.reserveCapacity(2 * n)
        extImage.reserveCapacity(2 * n)
        extBin.reserveCapacity(2 * n)
        for i in 0..<n {
            let b = localBin[i]
            extOwner.append(Int32(i))
            extImage.append(.zero)
            extBin.append(Int32(b.x * strideX + b.y * strideY + b.z))
        }
        for ix in -imageRange.x...imageRange.x {
            for iy in -imageRange.y...imageRange.y {
                for iz in -imageRange.z...imageRange.z {
                    if ix == 0 && iy == 0 && iz == 0 { continue }
                    let img = SIMD3<Int>(ix, iy, iz)
                    let offset = img &* nb
                    localBin.withUnsafeBufferPointer { lb in
                        for i in 0..<n {
                            let b = lb[i] &+ offset
                            if b.x < 0 || b.y < 0 || b.z < 0 || b.x >= dims.x || b.y >= dims.y || b.z >= dims.z { continue }
                            extOwner.append(Int32(i))
                            extImage.append(SIMD3<Int32>(truncatingIfNeeded: img))
                            extBin.append(Int32(b.x * strideX + b.y * strideY + b.z))
                        }
                    }
                    guard extOwner.count <= Self.maximumGhostCount else {
                        throw GeometryError.cellTooSmall("more than \(Self.maximumGhostCount) periodic copies of \(n) atoms lie within \(cut) Å of the cell")
                    }
                }
            }
        }
        let next = extOwner.count

        // Counting sort into bins; what the inner loop reads is stored in bin order, so a
        // bin's atoms are contiguous: packed x, y, z, the owner and the image relative to the
        // owner's wrap (the pair shift is that plus the row atom's wrap).
        var binStart = [Int32](repeating: 0, count: nbins + 1)
        for e in 0..<next { binStart[Int(extBin[e]) + 1] += 1 }
        for b in 0..<nbins { binStart[b + 1] += binStart[b] }
        var fill = binStart
        var sortedXYZ = [Double](repeating: 0, count: 3 * next)
        var sortedOwner = [Int32](repeating: 0, count: next)
        var sortedShift = [SIMD3<Int32>](repeating: .zero, count: next)
        var sortedIsImage = [Bool](repeating: false, count: next)
        var slotOfLocal = [Int32](repeating: 0, count: n)
        for e in 0..<next {
            let b = Int(extBin[e])
            let slot = Int(fill[b])
            fill[b] += 1
            let owner = Int(extOwner[e])
            let img = extImage[e]
            let r = frame.cartesian(frac[owner] + Vec3(Double(img.x), Double(img.y), Double(img.z)))
            sortedXYZ[3 * slot] = r.x
            sortedXYZ[3 * slot + 1] = r.y
            sortedXYZ[3 * slot + 2] = r.z
            sortedOwner[slot] = Int32(owner)
            sortedShift[slot] = img &- wrapShift[owner]
            sortedIsImage[slot] = e >= n
            if e < n { slotOfLocal[e] = Int32(slot) }
        }

        // Distinct shifts are numbered in order of first sight (the zero shift is 0).
        var shiftTable = ShiftNumbering()

        // Stencil: bins within ±reach. Bins adjacent along z are adjacent in memory, so each
        // (dx, dy) column of 2·reach.z + 1 bins is one contiguous range of slots. The half list
        // keeps the lexicographically positive offsets: whole columns with (dx, dy) > 0, and in
        // the atom's own column the atoms sorted after it (own bin, then the bins above).
        let half = kind == .half
        var columns: [Int] = []  // linear offset of each column's lowest bin
        for dx in -reach.x...reach.x { for dy in -reach.y...reach.y {
            if dx == 0 && dy == 0 { continue }
            if half && !(dx > 0 || (dx == 0 && dy > 0)) { continue }
            columns.append(dx * strideX + dy * strideY - reach.z)
        }}
        let columnLength = 2 * reach.z + 1
        let stencilBins = columns.count * columnLength + columnLength

        // Upper bound of one row's length: the fullest bin times the bins the stencil visits.
        var fullestBin = 0
        for b in 0..<nbins { fullestBin = max(fullestBin, Int(binStart[b + 1] - binStart[b])) }
        let rowBound = fullestBin * stencilBins
        var capacity = max(1024, rowBound, n * max(8, neighbor.count / max(1, n) + 8))
        var outNeighbor = [Int32](repeating: 0, count: capacity)
        var outShift = [SIMD3<Int32>](repeating: .zero, count: capacity)
        var count = 0
        var newStart = [Int32](repeating: 0, count: n + 1)
        var newSameImageEnd = [Int32](repeating: 0, count: n)
        var i = 0
        // Fill rows until the buffers might overflow, grow them, continue.
        while i < n {
            guard count + rowBound < Int(Int32.max) else {
                throw GeometryError.cellTooSmall("more than \(Int32.max) neighbour pairs within \(cut) Å of \(n) atoms")
            }
            if count + rowBound > capacity {
                // Never past `Int32.max`, so that no row can end beyond what `start` holds.
                capacity = min(2 * capacity + rowBound, Int(Int32.max))
                outNeighbor += [Int32](repeating: 0, count: capacity - outNeighbor.count)
                outShift += [SIMD3<Int32>](repeating: .zero, count: capacity - outShift.count)
            }
            (i, count) = fillRows(from: i, count: count, half: half, cut2: cut2, rowBound: rowBound, capacity: capacity,
                                  xyz: sortedXYZ, owner: sortedOwner, relShift: sortedShift, isImage: sortedIsImage,
                                  binStart: binStart,
                                  columns: columns, columnReach: reach.z, slotOfLocal: slotOfLocal, localBinIndex: extBin, wrapShift: wrapShift,
                                  outNeighbor: &outNeighbor, outShift: &outShift, start: &newStart,
                                  sameImageEnd: &newSameImageEnd)
        }

        // Shift vectors to indices: almost every pair has one of a handful of shifts, so the
        // last one looked up is remembered.
        var newShiftIndex = [UInt32](repeating: 0, count: count)
        var lastShift = SIMD3<Int32>.zero, lastIndex: UInt32 = 0
        for k in 0..<count {
            let s = outShift[k]
            if s != lastShift {
                lastShift = s
                lastIndex = shiftTable.number(of: s)
            }
            newShiftIndex[k] = lastIndex
        }
        start = newStart
        sameImageEnd = newSameImageEnd
        wrapShifts = wrapShift
        wrapVectors = wrapShift.map { frame.shiftVector($0) }
        outNeighbor.removeLast(outNeighbor.count - count)
        neighbor = outNeighbor
        shiftIndex = newShiftIndex
        shifts = shiftTable.shifts
        shiftVectors = shifts.map { frame.shiftVector($0) }
    }

    /// Fills rows `first...` of the list until the output may not hold another full row.
    /// Returns the next row to fill and the number of pairs written.
    private func fillRows(from first: Int, count initialCount: Int, half: Bool, cut2: Double, rowBound: Int, capacity: Int,
                          xyz: [Double], owner: [Int32], relShift: [SIMD3<Int32>], isImage: [Bool], binStart: [Int32],
                          columns: [Int], columnReach: Int,
                          slotOfLocal: [Int32], localBinIndex: [Int32], wrapShift: [SIMD3<Int32>],
                          outNeighbor: inout [Int32], outShift: inout [SIMD3<Int32>], start: inout [Int32],
                          sameImageEnd: inout [Int32]) -> (Int, Int) {
        let n = slotOfLocal.count
        var count = initialCount
        var i = first
        let columnLength = 2 * columnReach + 1
        var crossing = [Int32](repeating: 0, count: rowBound)
        isImage.withUnsafeBufferPointer { isImage in
        crossing.withUnsafeMutableBufferPointer { crossing in
        sameImageEnd.withUnsafeMutableBufferPointer { sameImageEnd in
        xyz.withUnsafeBufferPointer { xyz in
        owner.withUnsafeBufferPointer { owner in
        relShift.withUnsafeBufferPointer { relShift in
        binStart.withUnsafeBufferPointer { bs in
        columns.withUnsafeBufferPointer { columns in
        slotOfLocal.withUnsafeBufferPointer { slotOfLocal in
        localBinIndex.withUnsafeBufferPointer { localBin in
        wrapShift.withUnsafeBufferPointer { wrapShift in
        outNeighbor.withUnsafeMutableBufferPointer { outNeighbor in
        outShift.withUnsafeMutableBufferPointer { outShift in
        start.withUnsafeMutableBufferPointer { start in
            // Candidates inside the cut-off are compacted without branches: every slot is
            // written, the count advances only for those inside (about a quarter, in no order
            // a branch predictor could learn). `rowBound` leaves room for every candidate.
            // Slots are stored first (in `outNeighbor`) and turned into owners and shifts per row.
            @inline(__always) func scan(_ from: Int, _ to: Int, _ xi: Double, _ yi: Double, _ zi: Double) {
                var slot = from
                var c = count
                while slot < to {
                    let dx = xyz[3 * slot] - xi, dy = xyz[3 * slot + 1] - yi, dz = xyz[3 * slot + 2] - zi
                    outNeighbor[c] = Int32(truncatingIfNeeded: slot)
                    c &+= dx * dx + dy * dy + dz * dz < cut2 ? 1 : 0
                    slot += 1
                }
                count = c
            }
            while i < n && count + rowBound <= capacity {
                let rowStart = count
                let slotI = Int(slotOfLocal[i])
                let xi = xyz[3 * slotI], yi = xyz[3 * slotI + 1], zi = xyz[3 * slotI + 2]
                let centre = Int(localBin[i])
                if half {
                    scan(slotI + 1, Int(bs[centre + columnReach + 1]), xi, yi, zi)
                } else {
                    scan(Int(bs[centre - columnReach]), slotI, xi, yi, zi)
                    scan(slotI + 1, Int(bs[centre + columnReach + 1]), xi, yi, zi)
                }
                for c in 0..<columns.count {
                    let b = centre + columns[c]
                    scan(Int(bs[b]), Int(bs[b + columnLength]), xi, yi, zi)
                }
                // Slots to (owner, shift), same-image partners first (stable partition; writes
                // never overtake reads since w ≤ k).
                let wi = wrapShift[i]
                var w = rowStart, crossingCount = 0
                for k in rowStart..<count {
                    let slot = Int(outNeighbor[k])
                    if isImage[slot] {
                        crossing[crossingCount] = Int32(truncatingIfNeeded: slot)
                        crossingCount += 1
                    } else {
                        outNeighbor[w] = owner[slot]
                        outShift[w] = relShift[slot] &+ wi
                        w += 1
                    }
                }
                sameImageEnd[i] = Int32(w)
                for c in 0..<crossingCount {
                    let slot = Int(crossing[c])
                    outNeighbor[w] = owner[slot]
                    outShift[w] = relShift[slot] &+ wi
                    w += 1
                }
                start[i + 1] = Int32(count)
                i += 1
            }
        }}}}}}}}}}}}}}
        return (i, count)
    }
}

/// Distinct image shifts numbered in order of first sight (`.zero` is 0), by open addressing on
/// a multiplicative hash of the three components. Swift's `Dictionary` hashes with SipHash:
/// when unwrapped atoms had spread over ±50 boxes (almost every pair a shift of its own), its
/// hashing took three quarters of a 32,000-atom Lennard-Jones run. A table indexed by the shift
/// itself, kept beside it for narrow ranges of shifts, was no faster and cleared up to 4 MB per build.
struct ShiftNumbering {
    private(set) var shifts: [SIMD3<Int32>] = [.zero]
    /// Number of the shift in each slot; `UInt32.max` marks an empty one (there are fewer
    /// shifts than pairs, and fewer pairs than `Int32.max`).
    private var slots = [UInt32](repeating: .max, count: 1024)

    init() { slots[Self.slot(of: .zero, mask: slots.count - 1)] = 0 }

    @inline(__always) private static func slot(of s: SIMD3<Int32>, mask: Int) -> Int {
        var h = UInt64(UInt32(bitPattern: s.x)) &* 0x9E37_79B9_7F4A_7C15
        h = (h ^ UInt64(UInt32(bitPattern: s.y))) &* 0xBF58_476D_1CE4_E5B9
        h = (h ^ UInt64(UInt32(bitPattern: s.z))) &* 0x94D0_49BB_1331_11EB
        return Int(truncatingIfNeeded: h ^ (h >> 31)) & mask
    }

    /// The number of `shift`, a new one if it was not seen before.
    mutating func number(of shift: SIMD3<Int32>) -> UInt32 {
        let mask = slots.count - 1
        var i = Self.slot(of: shift, mask: mask)
        while slots[i] != .max {
            if shifts[Int(slots[i])] == shift { return slots[i] }
            i = (i + 1) & mask
        }
        let number = UInt32(truncatingIfNeeded: shifts.count)
        shifts.append(shift)
        slots[i] = number
        if 2 * shifts.count > slots.count { grow() }
        return number
    }

    /// Twice the slots, so that at most half are full and probes stay short.
    private mutating func grow() {
        slots = [UInt32](repeating: .max, count: 2 * slots.count)
        let mask = slots.count - 1
        for (number, shift) in shifts.enumerated() {
            var i = Self.slot(of: shift, mask: mask)
            while slots[i] != .max { i = (i + 1) & mask }
            slots[i] = UInt32(truncatingIfNeeded: number)
        }
    }
}

/// Lexicographic sign of an image shift: decides which of a pair of an atom with its own
/// image goes into a half list.
@inlinable func isPositive(_ s: SIMD3<Int32>) -> Bool {
    if s.x != 0 { return s.x > 0 }
    if s.y != 0 { return s.y > 0 }
    return s.z > 0
}
