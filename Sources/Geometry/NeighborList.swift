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
    public private(set) var shiftIndex: [UInt16] = []
    /// Distinct integer image shifts; `shifts[0]` is always (0, 0, 0).
    public private(set) var shifts: [SIMD3<Int32>] = [.zero]
    /// `shifts` as Cartesian vectors of the cell of the last build.
    public private(set) var shiftVectors: [Vec3] = [.zero]
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
    @discardableResult
    public func update(positions: [Vec3], cell: Cell?) -> Bool {
        if needsRebuild(positions: positions, cell: cell) {
            build(positions: positions, cell: cell)
            return true
        }
        return false
    }

    /// Forces a rebuild at the next `update`.
    public func invalidate() { positionsAtBuild = [] }

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

    private func build(positions: [Vec3], cell: Cell?) {
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
            // A positive box always makes a valid cell.
            // Non-finite positions give a non-finite box; fall back to a unit box so that the
            // build finishes (the caller reports the non-finite positions).
            frame = (try? Cell.orthorhombic(edge, pbc: .none)) ?? Cell.unitBox
        }
        let pbc = frame.pbc
        let widths = frame.perpendicularWidths
        let delta = Vec3(repeating: cut) / widths  // padding in fractional units

        // Wrap along periodic axes; remember the integer shift of every atom.
        var frac = [Vec3](repeating: .zero, count: n)
        var wrapShift = [SIMD3<Int32>](repeating: .zero, count: n)
        var fracLo = Vec3(repeating: .infinity), fracHi = Vec3(repeating: -.infinity)
        for i in 0..<n {
            var f = frame.fractional(positions[i] - origin)
            var s = SIMD3<Int32>.zero
            for k in 0..<3 where pbc[k] {
                let fl = f[k].rounded(.down)
                s[k] = Int32(fl)
                f[k] -= fl
                if f[k] >= 1 { f[k] = 0; s[k] += 1 }  // -tiny + 1 rounds to 1
            }
            frac[i] = f
            wrapShift[i] = s
            fracLo = pointwiseMin(fracLo, f)
            fracHi = pointwiseMax(fracHi, f)
        }

        // Bins: at least `delta` wide in fractional units, so neighbours lie in the 27 adjacent bins.
        var binLo = Vec3.zero, binWidth = Vec3.zero
        var nb = SIMD3<Int>(1, 1, 1), pad = SIMD3<Int>(0, 0, 0)
        for k in 0..<3 {
            if pbc[k] {
                nb[k] = max(1, Int((1 / delta[k]).rounded(.down)))
                binWidth[k] = 1 / Double(nb[k])
                pad[k] = Int((delta[k] / binWidth[k]).rounded(.up))
                binLo[k] = 0
            } else {
                let span = n > 0 ? max(0, fracHi[k] - fracLo[k]) : 0
                binWidth[k] = max(delta[k], span / 1_000_000)
                nb[k] = Int((span / binWidth[k]).rounded(.down)) + 1
                binLo[k] = n > 0 ? fracLo[k] : 0
            }
        }
        // Keep the bin count proportional to the atom count for sparse non-periodic systems.
        while totalBins(nb, pad) > 8 * n + 4096 {
            for k in 0..<3 where !pbc[k] && nb[k] > 1 {
                binWidth[k] *= 2
                nb[k] = (nb[k] + 1) / 2
            }
            if (0..<3).allSatisfy({ pbc[$0] || nb[$0] == 1 }) { break }
        }
        let dims = nb &+ 2 &* pad
        // Bins narrower than the cutoff (a cell thinner than the cutoff) need a wider stencil.
        var reach = SIMD3<Int>(1, 1, 1)
        for k in 0..<3 { reach[k] = max(1, Int((delta[k] / binWidth[k] - 1e-12).rounded(.up))) }

        // Extended atoms: every local atom, then ghosts (images within the padded region).
        var extFrac: [Vec3] = frac
        var extOwner: [Int32] = (0..<n).map { Int32($0) }
        var extImage: [SIMD3<Int32>] = [SIMD3<Int32>](repeating: .zero, count: n)
        var imageRange = SIMD3<Int32>(0, 0, 0)
        for k in 0..<3 where pbc[k] { imageRange[k] = Int32(delta[k].rounded(.up)) }
        let lo3 = Vec3(-Double(pad.x) * binWidth.x, -Double(pad.y) * binWidth.y, -Double(pad.z) * binWidth.z)
        let hi3 = Vec3(1, 1, 1) - lo3
        for ix in -imageRange.x...imageRange.x {
            for iy in -imageRange.y...imageRange.y {
                for iz in -imageRange.z...imageRange.z {
                    if ix == 0 && iy == 0 && iz == 0 { continue }
                    let img = SIMD3<Int32>(ix, iy, iz)
                    let off = Vec3(Double(ix), Double(iy), Double(iz))
                    for i in 0..<n {
                        let f = frac[i] + off
                        // Keep images that fall inside the padded bins along the periodic axes.
                        var inside = true
                        for k in 0..<3 where pbc[k] {
                            if f[k] < lo3[k] - delta[k] * 1e-9 || f[k] >= hi3[k] { inside = false; break }
                        }
                        if inside {
                            extFrac.append(f)
                            extOwner.append(Int32(i))
                            extImage.append(img)
                        }
                    }
                }
            }
        }
        let next = extFrac.count

        // Counting sort of extended atoms into bins.
        func binCoordinates(_ f: Vec3) -> SIMD3<Int> {
            var b = SIMD3<Int>(0, 0, 0)
            for k in 0..<3 {
                let x = ((f[k] - binLo[k]) / binWidth[k]).rounded(.down) + Double(pad[k])
                b[k] = max(0, min(dims[k] - 1, x.isFinite ? Int(x) : 0))
            }
            return b
        }
        let nbins = dims.x * dims.y * dims.z
        var binOf = [Int32](repeating: 0, count: next)
        var binStart = [Int32](repeating: 0, count: nbins + 1)
        for e in 0..<next {
            let b = binCoordinates(extFrac[e])
            let id = (b.x * dims.y + b.y) * dims.z + b.z
            binOf[e] = Int32(id)
            binStart[id + 1] += 1
        }
        for b in 0..<nbins { binStart[b + 1] += binStart[b] }
        var fill = binStart
        var binAtoms = [Int32](repeating: 0, count: next)
        for e in 0..<next {
            let b = Int(binOf[e])
            binAtoms[Int(fill[b])] = Int32(e)
            fill[b] += 1
        }

        // Cartesian positions of extended atoms in the wrapped frame.
        var extPos = [Vec3](repeating: .zero, count: next)
        for e in 0..<next { extPos[e] = frame.cartesian(extFrac[e]) }

        var newStart = [Int32](repeating: 0, count: n + 1)
        var newNeighbor: [Int32] = []
        var newShiftIndex: [UInt16] = []
        newNeighbor.reserveCapacity(n * 40)
        newShiftIndex.reserveCapacity(n * 40)
        var shiftTable: [SIMD3<Int32>: UInt16] = [.zero: 0]
        var shiftList: [SIMD3<Int32>] = [.zero]
        let half = kind == .half

        extPos.withUnsafeBufferPointer { ep in
        extOwner.withUnsafeBufferPointer { owner in
        binAtoms.withUnsafeBufferPointer { ba in
        binStart.withUnsafeBufferPointer { bs in
            for i in 0..<n {
                let bi = binCoordinates(frac[i])
                let ri = ep[i]
                let si = wrapShift[i]
                for dx in -reach.x...reach.x {
                    let x = bi.x + dx
                    if x < 0 || x >= dims.x { continue }
                    for dy in -reach.y...reach.y {
                        let y = bi.y + dy
                        if y < 0 || y >= dims.y { continue }
                        for dz in -reach.z...reach.z {
                            let z = bi.z + dz
                            if z < 0 || z >= dims.z { continue }
                            let b = (x * dims.y + y) * dims.z + z
                            for slot in Int(bs[b])..<Int(bs[b + 1]) {
                                let e = Int(ba[slot])
                                if e == i { continue }
                                let d = ep[e] - ri
                                if (d * d).sum() >= cut2 { continue }
                                let j = Int(owner[e])
                                let shift = extImage[e] &- wrapShift[j] &+ si
                                if half {
                                    if j < i { continue }
                                    if j == i && !isPositive(shift) { continue }
                                }
                                let idx: UInt16
                                if let known = shiftTable[shift] {
                                    idx = known
                                } else {
                                    idx = UInt16(truncatingIfNeeded: shiftList.count)
                                    shiftTable[shift] = idx
                                    shiftList.append(shift)
                                }
                                newNeighbor.append(Int32(j))
                                newShiftIndex.append(idx)
                            }
                        }
                    }
                }
                newStart[i + 1] = Int32(newNeighbor.count)
            }
        }}}}

        start = newStart
        neighbor = newNeighbor
        shiftIndex = newShiftIndex
        shifts = shiftList
        shiftVectors = shiftList.map { frame.shiftVector($0) }
    }

    private func totalBins(_ nb: SIMD3<Int>, _ pad: SIMD3<Int>) -> Int {
        let d = nb &+ 2 &* pad
        return d.x * d.y * d.z
    }
}

/// Lexicographic sign of an image shift: decides which of a pair of an atom with its own
/// image goes into a half list.
@inlinable func isPositive(_ s: SIMD3<Int32>) -> Bool {
    if s.x != 0 { return s.x > 0 }
    if s.y != 0 { return s.y > 0 }
    return s.z > 0
}
