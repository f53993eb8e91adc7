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
        try neighborList.update(positions: positions, cell: cell)
        return try ENINetGraph(positions: positions, neighborList: neighborList, cutoff: configuration.cutoff,
                               maxNeighbors: configuration.maxNeighbors, rule: configuration.lineGraphRule)
    }

    /// Evaluates a configuration on a given graph.
    public func evaluate(atomicNumbers: [Int], positions: [Vec3], graph: ENINetGraph, forces: Bool = true) throws -> ENINetOutput {
        for (i, r) in positions.enumerated() where !r.isFinite {
            throw ModelFileError("evaluate: atom \(i) has a non-finite position \(r.plainDescription)")
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

extension ENINetOutput {
    /// The origin of the dipole and polarizability readouts: the centre of `atomicNumbers`'
    /// standard masses, the origin training uses. A model's atom charges need not add up to
    /// zero, so the origin is part of the model: masses from a structure file (deuterium,
    /// say) moved it and changed the predicted dipole of a neutral molecule.
    public static func readoutOrigin(positions: [Vec3], atomicNumbers: [Int]) -> Vec3 {
        var total = 0.0, centre = Vec3.zero
        for (z, r) in zip(atomicNumbers, positions) {
            let m = Elements.mass(of: z) ?? 1
            total += m
            centre += m * r
        }
        return centre / max(total, 1e-300)
    }

    /// The dipole readout `μ = Σ_i (mu_i + q_i (r_i − r_o))` (for models trained on dipoles),
    /// about ``readoutOrigin(positions:atomicNumbers:)``.
    public func dipole(positions: [Vec3], atomicNumbers: [Int]) -> Vec3 {
        let origin = Self.readoutOrigin(positions: positions, atomicNumbers: atomicNumbers)
        var mu = Vec3.zero
        for i in 0..<min(positions.count, atomScalars.count) { mu += atomVectors[i] + atomScalars[i] * (positions[i] - origin) }
        return mu
    }

    /// The polarizability readout `α = Σ_i (q_i I + mu_i ⊗ (r_i − r_o) + (r_i − r_o) ⊗ mu_i)`,
    /// about ``readoutOrigin(positions:atomicNumbers:)``.
    public func polarizability(positions: [Vec3], atomicNumbers: [Int]) -> Mat3 {
        let origin = Self.readoutOrigin(positions: positions, atomicNumbers: atomicNumbers)
        var alpha = Mat3.zero
        for i in 0..<min(positions.count, atomScalars.count) {
            let d = positions[i] - origin
            alpha += atomScalars[i] * Mat3.identity + Mat3.outer(atomVectors[i], d) + Mat3.outer(d, atomVectors[i])
        }
        return alpha
    }
}
