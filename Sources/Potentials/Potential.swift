import Geometry

/// Energy, forces and virial of one configuration.
public struct ForceResult: Sendable {
    /// Potential energy (eV).
    public var energy: Double
    /// Forces (eV/Å), one per atom: minus the gradient of `energy`.
    public var forces: [Vec3]
    /// Virial tensor W = −∂E/∂ε (eV) for a homogeneous strain ε applied as r → r·(I+ε) to
    /// positions and cell rows; for pair potentials W = Σ_pairs d ⊗ f. The configurational
    /// stress (ASE sign) is −W/V and the pressure is (2·KE + tr W)/(3V).
    public var virial: Mat3

    public init(energy: Double, forces: [Vec3], virial: Mat3) {
        self.energy = energy
        self.forces = forces
        self.virial = virial
    }

    public static func zero(atoms: Int) -> ForceResult {
        ForceResult(energy: 0, forces: [Vec3](repeating: .zero, count: atoms), virial: .zero)
    }
}

/// Errors a potential reports: bad parameters, unsupported systems, non-finite results.
public struct PotentialError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One protocol for every potential (the ASE Calculator idea): Lennard-Jones, Morse,
/// harmonic terms, ENINet, sums, external codes. Nothing else in the engine knows which one
/// it talks to.
///
/// A potential owns whatever it caches between calls (its neighbour list with a Verlet skin),
/// so implementations are classes.
public protocol Potential: AnyObject {
    /// A short name for logs ("lj", "eninet", "sum(lj, harmonic)").
    var name: String { get }
    /// Energy, forces and virial of `configuration`.
    func compute(_ configuration: Configuration) throws -> ForceResult
    /// Drops every cache (neighbour lists) so that the next `compute` starts afresh.
    ///
    /// The order in which a pair sum adds its terms depends on when its neighbour list was
    /// last built. A run that restarts from a file rebuilds its lists at the restart step; the
    /// uninterrupted run calls this at the same step (``Simulation/checkpoint()`` does) so that
    /// both continue with identical bits. The default does nothing (for cache-free potentials).
    func invalidateCaches()
}

extension Potential {
    public func invalidateCaches() {}
}
