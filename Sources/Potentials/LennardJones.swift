import Geometry

/// The 12-6 Lennard-Jones pair potential u(r) = 4ε[(σ/r)¹² − (σ/r)⁶] between all atoms.
///
/// One pair type for now (every atom interacts with the same σ and ε); the pair loop is
/// generic over the pair function, so per-species tables slot in as another `PairFunction`.
/// Periodic images are all counted, so a cutoff longer than half the box is handled exactly
/// as ASE's `NeighborList` does.
public final class LennardJones: SingleListPotential {
    /// σ (Å).
    public let sigma: Double
    /// ε (eV).
    public let epsilon: Double
    /// r_c (Å).
    public let cutoff: Double
    /// How the potential reaches zero at `cutoff`.
    public let scheme: PairCutoff
    /// The Verlet list (half, cutoff + skin); rebuilt when an atom moved more than half the skin.
    public let neighborList: NeighborList

    public var name: String { "lj" }

    /// - Parameters:
    ///   - sigma: σ in Å.
    ///   - epsilon: ε in eV.
    ///   - cutoff: r_c in Å.
    ///   - scheme: `.shifted` (ASE/LAMMPS `shift yes`), `.truncated` or `.switched(onset:)`.
    ///   - skin: Verlet skin in Å (0 rebuilds the list at every call).
    public init(sigma: Double, epsilon: Double, cutoff: Double, scheme: PairCutoff = .shifted,
                skin: Double = 1.0) throws {
        guard sigma > 0, sigma.isFinite, epsilon.isFinite else {
            throw PotentialError("lj: σ = \(sigma) Å must be positive and ε = \(epsilon) eV finite")
        }
        try validatePairCutoff(cutoff, scheme, skin: skin, potential: "lj")
        self.sigma = sigma
        self.epsilon = epsilon
        self.cutoff = cutoff
        self.scheme = scheme
        self.neighborList = NeighborList(cutoff: cutoff, skin: skin, kind: .half)
    }

    public func compute(_ configuration: Configuration) throws -> ForceResult {
        try neighborList.update(positions: configuration.positions, cell: configuration.cell)
        var forces = [Vec3](repeating: .zero, count: configuration.count)
        let pair = LennardJonesPair(sigma: sigma, epsilon: epsilon)
        let sum = pairSum(pair, scheme: scheme, cutoff: cutoff, positions: configuration.positions,
                          list: neighborList, forces: &forces)
        return ForceResult(energy: sum.energy, forces: forces, virial: sum.virial)
    }

}

struct LennardJonesPair: PairFunction {
    let sigma2: Double, fourEpsilon: Double, twentyFourEpsilon: Double

    init(sigma: Double, epsilon: Double) {
        sigma2 = sigma * sigma
        fourEpsilon = 4 * epsilon
        twentyFourEpsilon = 24 * epsilon
    }

    @inline(__always)
    func evaluate(squaredDistance r2: Double) -> (energy: Double, forceOverR: Double) {
        let inverse2 = 1 / r2
        let s2 = sigma2 * inverse2
        let s6 = s2 * s2 * s2
        return (fourEpsilon * s6 * (s6 - 1), twentyFourEpsilon * s6 * (2 * s6 - 1) * inverse2)
    }

    @inline(__always)
    func evaluate(squaredDistances r2: SIMD2<Double>) -> (energy: SIMD2<Double>, forceOverR: SIMD2<Double>) {
        let inverse2 = 1 / r2
        let s2 = sigma2 * inverse2
        let s6 = s2 * s2 * s2
        return (fourEpsilon * s6 * (s6 - 1), twentyFourEpsilon * s6 * (2 * s6 - 1) * inverse2)
    }
}
