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

extension ForceResult {
    /// The virial of an answer from another code (``ExternalPotential``, ``SocketPotential``):
    /// the code's own for a cell periodic along every axis (`reported`, which throws when the
    /// code sent none), else Σ r ⊗ F, −∂E/∂ε for a translation-invariant energy (no pressure is
    /// logged without such a cell).
    static func answeredVirial(for configuration: Configuration, forces: [Vec3],
                               reported: (Cell) throws -> Mat3) rethrows -> Mat3 {
        if let cell = configuration.cell, cell.pbc == .all { return try reported(cell) }
        return zip(configuration.positions, forces).reduce(Mat3.zero) { $0 + Mat3.outer($1.0, $1.1) }
    }
}

/// Errors a potential reports: bad parameters, unsupported systems, non-finite results.
public struct PotentialError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// An evaluation abandoned because the user asked the run to stop (SIGINT, SIGTERM) while it
/// was under way: no result, nothing wrong with the configuration. Thrown by potentials whose
/// evaluation can take minutes (``ExternalPotential``); the run loop treats it as a stop after
/// the last completed step.
public struct EvaluationStopped: Error, CustomStringConvertible {
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
    /// Drops every cache (neighbour lists) so that the next `compute` starts afresh. The
    /// default does nothing (for cache-free potentials).
    func invalidateCaches()

    /// How many neighbour lists' build positions ``listAnchors`` holds, whatever the state
    /// (so that a sum can split what a restart gives back among its terms).
    var listAnchorCount: Int { get }
    /// The positions each of its neighbour lists was last built from, `listAnchorCount` of them
    /// in a fixed order, or none before the first `compute`.
    ///
    /// A pair sum adds its terms in the order of its list, which depends on the positions the
    /// list was built from: a run continued from a restart that rebuilt its lists from the
    /// current positions would differ from the uninterrupted run in the last bits. Saved in
    /// the restart and given back to ``restoreListAnchors(_:atomCount:cell:)``, they rebuild
    /// the very lists the interrupted run had. Empty by default: for potentials whose results
    /// do not depend on when a list was built (ENINet sorts its graph) or that keep none.
    var listAnchors: [[Vec3]] { get }
    /// Rebuilds the lists from `anchors` as ``listAnchors`` gave them. Returns false, changing
    /// nothing, when they do not fit this potential (their count, or their atom count against
    /// `atomCount`): a restart written by another potential, or by a version that saved none.
    func restoreListAnchors(_ anchors: [[Vec3]], atomCount: Int, cell: Cell?) throws -> Bool
}

extension Potential {
    public func invalidateCaches() {}
    public var listAnchorCount: Int { 0 }
    public var listAnchors: [[Vec3]] { [] }
    public func restoreListAnchors(_ anchors: [[Vec3]], atomCount: Int, cell: Cell?) throws -> Bool { anchors.isEmpty }
}

/// The ``Potential`` anchor members of a potential with one Verlet list.
public protocol SingleListPotential: Potential {
    var neighborList: NeighborList { get }
}

extension SingleListPotential {
    public func invalidateCaches() { neighborList.invalidate() }
    public var listAnchorCount: Int { 1 }
    public var listAnchors: [[Vec3]] { neighborList.anchorPositions.map { [$0] } ?? [] }
    public func restoreListAnchors(_ anchors: [[Vec3]], atomCount: Int, cell: Cell?) throws -> Bool {
        guard anchors.count == 1, anchors[0].count == atomCount else { return false }
        try neighborList.rebuild(from: anchors[0], cell: cell)
        return true
    }
}
