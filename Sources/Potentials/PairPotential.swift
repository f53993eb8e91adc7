import Geometry

/// How a pair potential is brought to zero at its cutoff r_c.
public enum PairCutoff: Sendable, Equatable, CustomStringConvertible {
    /// Energy shifted so that u(r_c) = 0; forces are those of the unshifted potential and
    /// jump to zero at r_c. This is ASE's `LennardJones(smooth=False)` and LAMMPS
    /// `pair_modify shift yes`.
    case shifted
    /// Energy and force cut off as they are (both jump at r_c).
    case truncated
    /// Energy multiplied by the quintic switch S(t) = 1 − 10t³ + 15t⁴ − 6t⁵,
    /// t = (r − onset)/(r_c − onset), between `onset` and r_c: energy, force and the force's
    /// derivative are continuous (C²), which is what long NVE runs need.
    case switched(onset: Double)

    public var description: String {
        switch self {
        case .shifted: return "shifted"
        case .truncated: return "truncated"
        case .switched(let onset): return "switched from \(onset) Å"
        }
    }
}

/// A radial pair interaction before any cutoff treatment.
protocol PairFunction {
    /// u(r) and −u′(r)/r at the squared distance r².
    func evaluate(squaredDistance r2: Double) -> (energy: Double, forceOverR: Double)
    /// The same for two distances at once (the pair loop works on two neighbours per iteration).
    func evaluate(squaredDistances r2: SIMD2<Double>) -> (energy: SIMD2<Double>, forceOverR: SIMD2<Double>)
}

extension PairFunction {
    @inline(__always)
    func evaluate(squaredDistances r2: SIMD2<Double>) -> (energy: SIMD2<Double>, forceOverR: SIMD2<Double>) {
        let a = evaluate(squaredDistance: r2[0]), b = evaluate(squaredDistance: r2[1])
        return (SIMD2(a.energy, b.energy), SIMD2(a.forceOverR, b.forceOverR))
    }
}

/// Applies a `PairCutoff` to a raw pair term; one concrete type per case so the pair loop is
/// specialised and carries no branch on the scheme.
protocol CutoffRule {
    func apply(squaredDistance r2: Double, energy: Double, forceOverR: Double) -> (energy: Double, forceOverR: Double)
    func apply(squaredDistances r2: SIMD2<Double>, energy: SIMD2<Double>, forceOverR: SIMD2<Double>)
        -> (energy: SIMD2<Double>, forceOverR: SIMD2<Double>)
}

struct ShiftRule: CutoffRule {
    let shift: Double
    @inline(__always)
    func apply(squaredDistance r2: Double, energy: Double, forceOverR: Double) -> (energy: Double, forceOverR: Double) {
        (energy - shift, forceOverR)
    }
    @inline(__always)
    func apply(squaredDistances r2: SIMD2<Double>, energy: SIMD2<Double>, forceOverR: SIMD2<Double>)
        -> (energy: SIMD2<Double>, forceOverR: SIMD2<Double>) {
        (energy - shift, forceOverR)
    }
}

struct TruncateRule: CutoffRule {
    @inline(__always)
    func apply(squaredDistance r2: Double, energy: Double, forceOverR: Double) -> (energy: Double, forceOverR: Double) {
        (energy, forceOverR)
    }
    @inline(__always)
    func apply(squaredDistances r2: SIMD2<Double>, energy: SIMD2<Double>, forceOverR: SIMD2<Double>)
        -> (energy: SIMD2<Double>, forceOverR: SIMD2<Double>) {
        (energy, forceOverR)
    }
}

struct SwitchRule: CutoffRule {
    let onset: Double, onset2: Double, inverseWidth: Double

    init(onset: Double, cutoff: Double) {
        self.onset = onset
        self.onset2 = onset * onset
        self.inverseWidth = 1 / (cutoff - onset)
    }

    @inline(__always)
    func apply(squaredDistance r2: Double, energy: Double, forceOverR: Double) -> (energy: Double, forceOverR: Double) {
        if r2 <= onset2 { return (energy, forceOverR) }
        let r = r2.squareRoot()
        let t = (r - onset) * inverseWidth
        let t2 = t * t
        let s = 1 - t2 * t * (10 - 15 * t + 6 * t2)
        let dsdr = -30 * t2 * (1 - t) * (1 - t) * inverseWidth
        return (s * energy, s * forceOverR - dsdr * energy / r)
    }

    /// Below the onset t is clamped to 0, where S = 1 and S′ = 0 exactly, so both lanes give
    /// the bits of the scalar version.
    @inline(__always)
    func apply(squaredDistances r2: SIMD2<Double>, energy: SIMD2<Double>, forceOverR: SIMD2<Double>)
        -> (energy: SIMD2<Double>, forceOverR: SIMD2<Double>) {
        let r = r2.squareRoot()
        let t = pointwiseMax((r - onset) * inverseWidth, SIMD2(repeating: 0))
        let t2 = t * t
        let s = 1 - t2 * t * (10 - 15 * t + 6 * t2)
        let dsdr = -30 * t2 * (1 - t) * (1 - t) * inverseWidth
        return (s * energy, s * forceOverR - dsdr * energy / r)
    }
}

/// Checks shared by the pair potentials' initialisers.
func validatePairCutoff(_ cutoff: Double, _ scheme: PairCutoff, skin: Double, potential: String) throws {
    guard cutoff > 0, cutoff.isFinite else {
        throw PotentialError("\(potential): cutoff \(cutoff) Å must be positive and finite")
    }
    guard skin >= 0, skin.isFinite else {
        throw PotentialError("\(potential): neighbour-list skin \(skin) Å must be non-negative")
    }
    if case .switched(let onset) = scheme {
        guard onset >= 0, onset < cutoff else {
            throw PotentialError("\(potential): switching onset \(onset) Å must lie in [0, cutoff = \(cutoff) Å)")
        }
    }
}

/// Sums a pair function over a half neighbour list: energy, forces (added into `forces`) and
/// the virial Σ d ⊗ f_j with d = r_j − r_i.
///
/// Newton's third law: each pair is visited once and both atoms receive its force; atom i's
/// force is kept in registers for its whole row. Coordinates are copied into a packed x,y,z
/// array first: scalar arithmetic on packed Doubles compiles to tighter code than
/// `SIMD3<Double>` (a padded 4-lane type) for this gather/scatter loop.
@inline(__always)
func accumulatePairs<F: PairFunction, R: CutoffRule>(
    _ pair: F, _ rule: R, cutoff: Double, positions: [Vec3], list: NeighborList,
    forces: inout [Vec3]
) -> (energy: Double, virial: Mat3) {
    let cutoff2 = cutoff * cutoff
    let n = positions.count
    var energy = 0.0
    var vxx = 0.0, vyy = 0.0, vzz = 0.0, vxy = 0.0, vyz = 0.0, vzx = 0.0
    // Packed x, y, z of the positions as given and of the positions wrapped as at the last
    // list build; pairs of the same image use the latter and need no shift vector.
    let packed = UnsafeMutablePointer<Double>.allocate(capacity: 3 * n + 3)
    let packedWrapped = UnsafeMutablePointer<Double>.allocate(capacity: 3 * n + 3)
    let packedForce = UnsafeMutablePointer<Double>.allocate(capacity: 3 * n + 3)
    defer { packed.deallocate(); packedWrapped.deallocate(); packedForce.deallocate() }
    packedForce.initialize(repeating: 0, count: 3 * n + 3)
    let wrapVectors = list.wrapVectors
    guard wrapVectors.count == n, list.sameImageEnd.count == n, list.start.count == n + 1 else {
        return (0, .zero)  // only before the first build of an empty system
    }
    positions.withUnsafeBufferPointer { pos in
        wrapVectors.withUnsafeBufferPointer { wrap in
            for i in 0..<n {
                let r = pos[i], u = r - wrap[i]
                packed[3 * i] = r.x; packed[3 * i + 1] = r.y; packed[3 * i + 2] = r.z
                packedWrapped[3 * i] = u.x; packedWrapped[3 * i + 1] = u.y; packedWrapped[3 * i + 2] = u.z
            }
        }
    }
    let start = list.start, neighbor = list.neighbor, shiftIndex = list.shiftIndex, sameImageEnd = list.sameImageEnd
    let shiftVectors = list.shiftVectors
    let shiftCount = shiftVectors.count
    let packedShift = UnsafeMutablePointer<Double>.allocate(capacity: 3 * shiftCount)
    defer { packedShift.deallocate() }
    for s in 0..<shiftCount {
        packedShift[3 * s] = shiftVectors[s].x; packedShift[3 * s + 1] = shiftVectors[s].y; packedShift[3 * s + 2] = shiftVectors[s].z
    }
    start.withUnsafeBufferPointer { start in
    sameImageEnd.withUnsafeBufferPointer { sameImageEnd in
    neighbor.withUnsafeBufferPointer { neighbor in
    shiftIndex.withUnsafeBufferPointer { shiftIndex in
        guard n > 0, let start = start.baseAddress, let sameImageEnd = sameImageEnd.baseAddress else { return }
        let neighbor = neighbor.baseAddress, shiftIndex = shiftIndex.baseAddress
        let f = packedForce, sv = packedShift
        var e2 = SIMD2<Double>(repeating: 0)
        var fxi2 = SIMD2<Double>(repeating: 0), fyi2 = fxi2, fzi2 = fxi2
        var vxx2 = fxi2, vyy2 = fxi2, vzz2 = fxi2, vxy2 = fxi2, vyz2 = fxi2, vzx2 = fxi2
        var fxi = 0.0, fyi = 0.0, fzi = 0.0

        // Entries lo..<hi of atom i's row, two neighbours per iteration; pairs beyond the
        // cutoff are masked to zero rather than branched around (a third of the list lies in
        // the skin, in no order a branch predictor could learn). `shifted` is a constant at
        // each call, so each call site compiles to its own loop.
        @inline(__always)
        func segment(_ lo: Int, _ hi: Int, _ p: UnsafeMutablePointer<Double>, _ i: Int, shifted: Bool) {
            let xi = p[3 * i], yi = p[3 * i + 1], zi = p[3 * i + 2]
            var k = lo
            while k + 1 < hi {
                let ja = 3 * Int(neighbor.unsafelyUnwrapped[k]), jb = 3 * Int(neighbor.unsafelyUnwrapped[k + 1])
                var dx = SIMD2(p[ja], p[jb]), dy = SIMD2(p[ja + 1], p[jb + 1]), dz = SIMD2(p[ja + 2], p[jb + 2])
                if shifted {
                    let sa = 3 * Int(shiftIndex.unsafelyUnwrapped[k]), sb = 3 * Int(shiftIndex.unsafelyUnwrapped[k + 1])
                    dx += SIMD2(sv[sa], sv[sb]); dy += SIMD2(sv[sa + 1], sv[sb + 1]); dz += SIMD2(sv[sa + 2], sv[sb + 2])
                }
                k += 2
                dx -= xi; dy -= yi; dz -= zi
                let r2 = dx * dx + dy * dy + dz * dz
                let outside = r2 .>= cutoff2
                if all(outside) { continue }
                let raw = pair.evaluate(squaredDistances: r2)
                let term = rule.apply(squaredDistances: r2, energy: raw.energy, forceOverR: raw.forceOverR)
                e2 += term.energy.replacing(with: 0, where: outside)
                let fr = term.forceOverR.replacing(with: 0, where: outside)
                let fx = fr * dx, fy = fr * dy, fz = fr * dz
                f[ja] += fx[0]; f[ja + 1] += fy[0]; f[ja + 2] += fz[0]
                f[jb] += fx[1]; f[jb + 1] += fy[1]; f[jb + 2] += fz[1]
                fxi2 -= fx; fyi2 -= fy; fzi2 -= fz
                vxx2 += fx * dx; vyy2 += fy * dy; vzz2 += fz * dz
                vxy2 += fx * dy; vyz2 += fy * dz; vzx2 += fz * dx
            }
            if k < hi {
                let j3 = 3 * Int(neighbor.unsafelyUnwrapped[k])
                var dx = p[j3], dy = p[j3 + 1], dz = p[j3 + 2]
                if shifted {
                    let s3 = 3 * Int(shiftIndex.unsafelyUnwrapped[k])
                    dx += sv[s3]; dy += sv[s3 + 1]; dz += sv[s3 + 2]
                }
                dx -= xi; dy -= yi; dz -= zi
                let r2 = dx * dx + dy * dy + dz * dz
                if r2 < cutoff2 {
                    let raw = pair.evaluate(squaredDistance: r2)
                    let term = rule.apply(squaredDistance: r2, energy: raw.energy, forceOverR: raw.forceOverR)
                    energy += term.energy
                    let fr = term.forceOverR
                    let fx = fr * dx, fy = fr * dy, fz = fr * dz
                    f[j3] += fx; f[j3 + 1] += fy; f[j3 + 2] += fz
                    fxi -= fx; fyi -= fy; fzi -= fz
                    vxx += fx * dx; vyy += fy * dy; vzz += fz * dz
                    vxy += fx * dy; vyz += fy * dz; vzx += fz * dx
                }
            }
        }

        for i in 0..<n {
            let lo = Int(start[i]), mid = Int(sameImageEnd[i]), hi = Int(start[i + 1])
            segment(lo, mid, packedWrapped, i, shifted: false)
            segment(mid, hi, packed, i, shifted: true)
            fxi += fxi2.sum(); fyi += fyi2.sum(); fzi += fzi2.sum()
            f[3 * i] += fxi; f[3 * i + 1] += fyi; f[3 * i + 2] += fzi
            fxi = 0; fyi = 0; fzi = 0
            fxi2 = .zero; fyi2 = .zero; fzi2 = .zero
        }
        energy += e2.sum()
        vxx += vxx2.sum(); vyy += vyy2.sum(); vzz += vzz2.sum()
        vxy += vxy2.sum(); vyz += vyz2.sum(); vzx += vzx2.sum()
    }}}}
    forces.withUnsafeMutableBufferPointer { out in
        for i in 0..<min(n, out.count) {
            out[i] += Vec3(packedForce[3 * i], packedForce[3 * i + 1], packedForce[3 * i + 2])
        }
    }
    let virial = Mat3(Vec3(vxx, vxy, vzx), Vec3(vxy, vyy, vyz), Vec3(vzx, vyz, vzz))
    return (energy, virial)
}

/// Runs `accumulatePairs` with the rule that matches `scheme`.
@inline(__always)
func pairSum<F: PairFunction>(_ pair: F, scheme: PairCutoff, cutoff: Double, positions: [Vec3],
                              list: NeighborList, forces: inout [Vec3]) -> (energy: Double, virial: Mat3) {
    switch scheme {
    case .shifted:
        let shift = pair.evaluate(squaredDistance: cutoff * cutoff).energy
        return accumulatePairs(pair, ShiftRule(shift: shift), cutoff: cutoff, positions: positions, list: list, forces: &forces)
    case .truncated:
        return accumulatePairs(pair, TruncateRule(), cutoff: cutoff, positions: positions, list: list, forces: &forces)
    case .switched(let onset):
        return accumulatePairs(pair, SwitchRule(onset: onset, cutoff: cutoff), cutoff: cutoff,
                               positions: positions, list: list, forces: &forces)
    }
}
