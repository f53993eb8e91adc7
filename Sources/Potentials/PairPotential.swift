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
/// Newton's third law: each pair is visited once and both atoms receive its force. The force
/// on atom i is accumulated in a register and stored once per row.
@inline(__always)
func accumulatePairs<F: PairFunction, R: CutoffRule>(
    _ pair: F, _ rule: R, cutoff: Double, positions: [Vec3], list: NeighborList,
    forces: inout [Vec3]
) -> (energy: Double, virial: Mat3) {
    let cutoff2 = cutoff * cutoff
    var energy = 0.0
    var diagonal = Vec3.zero      // xx, yy, zz
    var offDiagonal = Vec3.zero   // xy, yz, zx
    let n = positions.count
    positions.withUnsafeBufferPointer { pos in
    forces.withUnsafeMutableBufferPointer { force in
    list.start.withUnsafeBufferPointer { start in
    list.neighbor.withUnsafeBufferPointer { neighbor in
    list.shiftIndex.withUnsafeBufferPointer { shiftIndex in
    list.shiftVectors.withUnsafeBufferPointer { shiftVectors in
        guard let pos = pos.baseAddress, let force = force.baseAddress, let start = start.baseAddress,
              let shiftVectors = shiftVectors.baseAddress else { return }
        let neighbor = neighbor.baseAddress, shiftIndex = shiftIndex.baseAddress
        for i in 0..<n {
            let ri = pos[i]
            var fi = Vec3.zero
            let lo = Int(start[i]), hi = Int(start[i + 1])
            var k = lo
            while k < hi {
                let j = Int(neighbor.unsafelyUnwrapped[k])
                let d = pos[j] + shiftVectors[Int(shiftIndex.unsafelyUnwrapped[k])] - ri
                k += 1
                let r2 = (d * d).sum()
                if r2 >= cutoff2 { continue }
                let raw = pair.evaluate(squaredDistance: r2)
                let term = rule.apply(squaredDistance: r2, energy: raw.energy, forceOverR: raw.forceOverR)
                energy += term.energy
                let fj = term.forceOverR * d
                force[j] += fj
                fi -= fj
                diagonal += fj * d
                offDiagonal += fj * SIMD3(d.y, d.z, d.x)
            }
            force[i] += fi
        }
    }}}}}}
    let virial = Mat3(Vec3(diagonal.x, offDiagonal.x, offDiagonal.z),
                      Vec3(offDiagonal.x, diagonal.y, offDiagonal.y),
                      Vec3(offDiagonal.z, offDiagonal.y, diagonal.z))
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
