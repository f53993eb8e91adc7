import Geometry
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The Morse pair potential u(r) = D[e^{−2α(r−r₀)} − 2e^{−α(r−r₀)}] between all atoms
/// (LAMMPS `pair_style morse`; ASE's `MorsePotential` with ρ₀ = α r₀), minimum −D at r₀.
public final class Morse: SingleListPotential {
    /// Well depth D (eV).
    public let depth: Double
    /// Width parameter α (1/Å).
    public let alpha: Double
    /// Equilibrium distance r₀ (Å).
    public let equilibriumDistance: Double
    /// r_c (Å).
    public let cutoff: Double
    public let scheme: PairCutoff
    public let neighborList: NeighborList

    public var name: String { "morse" }

    public init(depth: Double, alpha: Double, equilibriumDistance: Double, cutoff: Double,
                scheme: PairCutoff = .shifted, skin: Double = 1.0) throws {
        guard depth.isFinite, alpha > 0, alpha.isFinite, equilibriumDistance.isFinite else {
            throw PotentialError("morse: D = \(depth) eV, α = \(alpha) 1/Å, r0 = \(equilibriumDistance) Å must be finite with α > 0")
        }
        try validatePairCutoff(cutoff, scheme, skin: skin, potential: "morse")
        self.depth = depth
        self.alpha = alpha
        self.equilibriumDistance = equilibriumDistance
        self.cutoff = cutoff
        self.scheme = scheme
        self.neighborList = NeighborList(cutoff: cutoff, skin: skin, kind: .half)
    }

    public func compute(_ configuration: Configuration) throws -> ForceResult {
        try neighborList.update(positions: configuration.positions, cell: configuration.cell)
        var forces = [Vec3](repeating: .zero, count: configuration.count)
        let pair = MorsePair(depth: depth, alpha: alpha, r0: equilibriumDistance)
        let sum = pairSum(pair, scheme: scheme, cutoff: cutoff, positions: configuration.positions,
                          list: neighborList, forces: &forces)
        return ForceResult(energy: sum.energy, forces: forces, virial: sum.virial)
    }

}

struct MorsePair: PairFunction {
    let depth: Double, alpha: Double, r0: Double

    @inline(__always)
    func evaluate(squaredDistance r2: Double) -> (energy: Double, forceOverR: Double) {
        let r = r2.squareRoot()
        let e1 = exp(-alpha * (r - r0))
        let e2 = e1 * e1
        return (depth * (e2 - 2 * e1), 2 * alpha * depth * (e2 - e1) / r)
    }
}
