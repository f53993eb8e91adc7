import ENINet
import Geometry

/// ENINet as a ``Potential``: owns a full neighbour list with a Verlet skin and rebuilds the
/// graph from it at every call (the list itself is rebuilt only when an atom has moved more
/// than half the skin).
///
/// ```swift
/// let potential = try ENINetPotential(contentsOf: "model.safetensors", precision: .float)
/// let result = try potential.compute(configuration)   // energy (eV), forces (eV/Å), virial (eV)
/// ```
public final class ENINetPotential: Potential {
    public let name = "eninet"
    public let model: ENINetModel
    private let neighborList: NeighborList
    /// The full output of the last `compute` (per-atom energies, readout scalars and vectors).
    public private(set) var lastOutput: ENINetOutput?

    /// - Parameters:
    ///   - skin: Verlet skin (Å) of the neighbour list; larger means fewer rebuilds and more pairs to filter.
    public init(model: ENINetModel, skin: Double = 1.0) {
        self.model = model
        self.neighborList = model.makeNeighborList(skin: skin)
    }

    public convenience init(contentsOf path: String, precision: ENINetPrecision = .float, skin: Double = 1.0) throws {
        self.init(model: try ENINetModel(contentsOf: path, precision: precision), skin: skin)
    }

    /// How many times the neighbour list has been built (for logs and tests).
    public var neighborListBuilds: Int { neighborList.buildCount }

    public func compute(_ configuration: Configuration) throws -> ForceResult {
        guard model.configuration.target == .energy else {
            throw PotentialError("eninet: the model predicts \(model.configuration.target.rawValue), not an energy")
        }
        let graph = try model.graph(positions: configuration.positions, cell: configuration.cell, neighborList: neighborList)
        let out = try model.evaluate(atomicNumbers: configuration.atomicNumbers, positions: configuration.positions, graph: graph)
        guard out.energy.isFinite else { throw PotentialError("eninet: the energy is not finite (\(out.energy))") }
        for (i, f) in out.forces.enumerated() where !f.isFinite {
            throw PotentialError("eninet: the force on atom \(i) is not finite")
        }
        lastOutput = out
        return ForceResult(energy: out.energy, forces: out.forces, virial: out.virial)
    }
}
