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
}

/// Applies a `PairCutoff` to a raw pair term; one concrete type per case so the pair loop is
/// specialised and carries no branch on the scheme.
protocol CutoffRule {
    func apply(squaredDistance r2: Double, energy: Double, forceOverR: Double) -> (energy: Double, forceOverR: Double)
}

struct ShiftRule: CutoffRule {
    let shift: Double
    @inline(__always)
    func apply(squaredDistance r2: Double, energy: Double, forceOverR: Double) -> (energy: Double, forceOverR: Double) {
        (energy - shift, forceOverR)
    }
}

struct TruncateRule: CutoffRule {
    @inline(__always)
    func apply(squaredDistance r2: Double, energy: Double, forceOverR: Double) -> (energy: Double, forceOverR: Double) {
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
    let packed = UnsafeMutablePointer<Double>.allocate(capacity: 3 * n + 3)
    let packedForce = UnsafeMutablePointer<Double>.allocate(capacity: 3 * n + 3)
    defer { packed.deallocate(); packedForce.deallocate() }
    packedForce.initialize(repeating: 0, count: 3 * n + 3)
    positions.withUnsafeBufferPointer { pos in
        for i in 0..<n { packed[3 * i] = pos[i].x; packed[3 * i + 1] = pos[i].y; packed[3 * i + 2] = pos[i].z }
    }
    let start = list.start, neighbor = list.neighbor, shiftIndex = list.shiftIndex
    let shiftVectors = list.shiftVectors
    let shiftCount = shiftVectors.count
    let packedShift = UnsafeMutablePointer<Double>.allocate(capacity: 3 * shiftCount)
    defer { packedShift.deallocate() }
    for s in 0..<shiftCount {
        packedShift[3 * s] = shiftVectors[s].x; packedShift[3 * s + 1] = shiftVectors[s].y; packedShift[3 * s + 2] = shiftVectors[s].z
    }
    start.withUnsafeBufferPointer { start in
    neighbor.withUnsafeBufferPointer { neighbor in
    shiftIndex.withUnsafeBufferPointer { shiftIndex in
        guard n > 0, start.count > n, let start = start.baseAddress else { return }
        let neighbor = neighbor.baseAddress, shiftIndex = shiftIndex.baseAddress
        let f = packedForce, p = packed, sv = packedShift
        for i in 0..<n {
            let xi = p[3 * i], yi = p[3 * i + 1], zi = p[3 * i + 2]
            var fxi = 0.0, fyi = 0.0, fzi = 0.0
            let hi = Int(start[i + 1])
            var k = Int(start[i])
            while k < hi {
                let j3 = 3 * Int(neighbor.unsafelyUnwrapped[k])
                let s3 = 3 * Int(shiftIndex.unsafelyUnwrapped[k])
                k += 1
                let dx = p[j3] + sv[s3] - xi
                let dy = p[j3 + 1] + sv[s3 + 1] - yi
                let dz = p[j3 + 2] + sv[s3 + 2] - zi
                let r2 = dx * dx + dy * dy + dz * dz
                if r2 >= cutoff2 { continue }
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
            f[3 * i] += fxi; f[3 * i + 1] += fyi; f[3 * i + 2] += fzi
        }
    }}}
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
