import Foundation
import Geometry

/// The arithmetic precision of the network (positions, forces and energies are Double either way).
public enum ENINetPrecision: String, Sendable {
    case float, double
}

/// A loaded ENINet model: evaluates energy, forces, virial and per-atom readouts of a
/// configuration, in Float or Double.
///
/// ```swift
/// let model = try ENINetModel(contentsOf: "eninet-small.safetensors", precision: .double)
/// let out = try model.evaluate(atomicNumbers: z, positions: r, cell: nil)
/// print(out.energy, out.forces)
/// ```
public final class ENINetModel: @unchecked Sendable {
    public let file: ENINetModelFile
    public var configuration: ENINetConfiguration { file.configuration }
    public let precision: ENINetPrecision
    private let single: HandScheduledNetwork<Float>?
    private let double: HandScheduledNetwork<Double>?

    public init(file: ENINetModelFile, precision: ENINetPrecision = .float) throws {
        try file.configuration.validate(source: file.weights.path)
        try file.checkShapes()
        self.file = file
        self.precision = precision
        switch precision {
        case .float: single = try HandScheduledNetwork<Float>(file: file); double = nil
        case .double: double = try HandScheduledNetwork<Double>(file: file); single = nil
        }
    }

    public convenience init(contentsOf path: String, precision: ENINetPrecision = .float) throws {
        try self.init(file: try ENINetModelFile(contentsOf: path), precision: precision)
    }

    /// A full neighbour list suited to this model (cutoff `rc`, Verlet `skin`).
    public func makeNeighborList(skin: Double = 0.5) -> NeighborList {
        NeighborList(cutoff: configuration.cutoff, skin: skin, kind: .full)
    }

    /// The graph of `positions` from a neighbour list (updated here), with this model's cap and line-graph rule.
    public func graph(positions: [Vec3], cell: Cell?, neighborList: NeighborList) throws -> ENINetGraph {
        neighborList.update(positions: positions, cell: cell)
        return try ENINetGraph(positions: positions, neighborList: neighborList, cutoff: configuration.cutoff,
                               maxNeighbors: configuration.maxNeighbors, rule: configuration.lineGraphRule)
    }

    /// Evaluates a configuration on a given graph.
    public func evaluate(atomicNumbers: [Int], positions: [Vec3], graph: ENINetGraph, forces: Bool = true) throws -> ENINetOutput {
        for (i, r) in positions.enumerated() where !(r.x.isFinite && r.y.isFinite && r.z.isFinite) {
            throw ModelFileError("evaluate: atom \(i) has a non-finite position \(r)")
        }
        if let net = double {
            return try net.evaluate(atomicNumbers: atomicNumbers, positions: positions, graph: graph, forces: forces).output
        } else if let net = single {
            return try net.evaluate(atomicNumbers: atomicNumbers, positions: positions, graph: graph, forces: forces).output
        }
        throw ModelFileError("evaluate: model has no network")
    }

    /// Evaluates a configuration, building its graph with a fresh neighbour list.
    public func evaluate(atomicNumbers: [Int], positions: [Vec3], cell: Cell?, forces: Bool = true) throws -> ENINetOutput {
        let g = try graph(positions: positions, cell: cell, neighborList: makeNeighborList(skin: 0))
        return try evaluate(atomicNumbers: atomicNumbers, positions: positions, graph: g, forces: forces)
    }

    /// Intermediate tensors by reference name (Double models only; for checks).
    func intermediates(atomicNumbers: [Int], positions: [Vec3], graph: ENINetGraph) throws -> [String: [Double]] {
        var out: [String: [Double]] = [:]
        if let net = double {
            _ = try net.evaluate(atomicNumbers: atomicNumbers, positions: positions, graph: graph, forces: false) { out[$0] = $1 }
        } else if let net = single {
            _ = try net.evaluate(atomicNumbers: atomicNumbers, positions: positions, graph: graph, forces: false) { out[$0] = $1.map { Double($0) } }
        }
        return out
    }
}
