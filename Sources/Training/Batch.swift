import Foundation
import ENINet
import Geometry
import Tensors

/// A frame with its graph built once (positions do not change during training).
public struct PreparedFrame: Sendable {
    public var frame: TrainingFrame
    public var graph: ENINetGraph
    /// Positions relative to ``ENINetOutput/readoutOrigin(positions:atomicNumbers:)`` (the dipole readout's lever arms).
    public var centredPositions: [Vec3]

    /// Builds the graph of `frame` for `configuration` (cutoff, cap, line-graph rule).
    public init(_ frame: TrainingFrame, configuration: ENINetConfiguration) throws {
        self.frame = frame
        let list = NeighborList(cutoff: configuration.cutoff, skin: 0, kind: .full)
        _ = try list.update(positions: frame.positions, cell: frame.cell)
        graph = try ENINetGraph(positions: frame.positions, neighborList: list, cutoff: configuration.cutoff,
                                maxNeighbors: configuration.maxNeighbors, rule: configuration.lineGraphRule)
        let centre = ENINetOutput.readoutOrigin(positions: frame.positions, atomicNumbers: frame.atomicNumbers)
        centredPositions = frame.positions.map { $0 - centre }
    }
}

/// Several structures packed into one disconnected graph: atoms, edges and triplets of
/// structure `b` follow those of structure `b − 1`, indices offset accordingly.
public struct TrainingBatch {
    public var atomicNumbers: [Int]
    public var positions: [Vec3]
    public var graph: ENINetGraph
    /// The structure each atom belongs to.
    public var structureOfAtom: [Int32]
    public var atomCounts: [Int]
    public var energies: [Double]
    public var forces: [Vec3]
    public var dipoles: [Vec3?]
    /// Stress labels (eV/Å³) with their cells' volumes (Å³), nil for structures without one.
    public var stressLabels: [(stress: Mat3, volume: Double)?]
    public var centredPositions: [Vec3]
    public var structureCount: Int { atomCounts.count }

    public init(_ frames: [PreparedFrame]) throws {
        var z: [Int] = [], r: [Vec3] = [], owner: [Int32] = [], counts: [Int] = [], energies: [Double] = []
        var forces: [Vec3] = [], dipoles: [Vec3?] = [], centred: [Vec3] = [], stressLabels: [(stress: Mat3, volume: Double)?] = []
        var src: [Int32] = [], dst: [Int32] = [], image: [SIMD3<Int32>] = [], shift: [Vec3] = [], tin: [Int32] = [], tout: [Int32] = []
        for (b, p) in frames.enumerated() {
            let atomOffset = Int32(z.count), edgeOffset = Int32(src.count)
            z += p.frame.atomicNumbers
            r += p.frame.positions
            owner += [Int32](repeating: Int32(b), count: p.frame.atomCount)
            counts.append(p.frame.atomCount)
            energies.append(p.frame.energy)
            forces += p.frame.forces
            dipoles.append(p.frame.dipole)
            stressLabels.append(p.frame.labelledStress)
            centred += p.centredPositions
            src += p.graph.edgeSource.map { $0 + atomOffset }
            dst += p.graph.edgeDestination.map { $0 + atomOffset }
            image += p.graph.edgeImage
            shift += p.graph.edgeShift
            tin += p.graph.tripletIn.map { $0 + edgeOffset }
            tout += p.graph.tripletOut.map { $0 + edgeOffset }
        }
        atomicNumbers = z
        positions = r
        structureOfAtom = owner
        atomCounts = counts
        self.energies = energies
        self.forces = forces
        self.dipoles = dipoles
        self.stressLabels = stressLabels
        centredPositions = centred
        graph = try ENINetGraph(atomCount: z.count, edgeSource: src, edgeDestination: dst, edgeImage: image, edgeShift: shift,
                                tripletIn: tin, tripletOut: tout)
    }
}

/// How much each error counts in the training loss.
public struct LossWeights: Equatable, Sendable {
    public var energy: Double
    public var forces: Double
    public var dipole: Double
    /// The weight of the stress error, compared as the virial per atom, `(σ − σ_ref)·V/N` (eV),
    /// on the structures that carry a stress.
    public var stress: Double
    /// Compare energies per atom (`(E − E_ref)/N`) rather than in total.
    public var energyPerAtom: Bool

    public init(energy: Double = 1, forces: Double = 10, dipole: Double = 0, stress: Double = 0, energyPerAtom: Bool = true) {
        self.energy = energy
        self.forces = forces
        self.dipole = dipole
        self.stress = stress
        self.energyPerAtom = energyPerAtom
    }
}

/// The loss of one batch: the differentiable total and its parts as numbers.
public struct BatchLoss<T: ENINetFloat> {
    public var total: Tensor<T>
    public var energyMSE: Double
    public var forceMSE: Double
    public var dipoleMSE: Double
    /// Mean squared error of the virial per atom (eV²) over the structures with a stress.
    public var stressMSE: Double = 0
    /// Predicted total energies per structure and forces per atom (for metrics).
    public var predictedEnergies: [Double]
    public var predictedForces: [Vec3]
    /// Empty unless the loss weighs dipoles or the model is a dipole model.
    public var predictedDipoles: [Vec3]
    /// Predicted stresses (eV/Å³) of the structures with a stress label (nil for the others);
    /// empty when none was computed (no label, a dipole model, or a stress weight of 0 in training).
    public var predictedStresses: [Mat3?] = []
}

extension ENINetDifferentiableModel {
    /// The weighted mean-squared error on `batch`:
    /// `w_E·mean_b((E_b − E_ref)/N_b)² + w_F·mean_{i,α}(F_iα − F_ref)² + w_μ·mean_{b,α}(μ_bα − μ_ref)²
    /// + w_σ·mean_{b,αβ}((σ_bαβ − σ_ref)·V_b/N_b)²`, the last over the structures with a stress.
    ///
    /// Forces are `−∂E/∂r` and stresses `(1/V) ∂E/∂ε` (``ENINetDifferentiableModel/Strain``),
    /// taken with `createGraph: true`, so the loss stays differentiable in the parameters
    /// through them (a double backward). With `differentiable: false` no graph is kept
    /// (validation), and stresses are predicted wherever a label exists.
    public func loss(on batch: TrainingBatch, weights: LossWeights, differentiable: Bool = true) throws -> BatchLoss<T> {
        let n = batch.positions.count, b = batch.structureCount
        let needForces = weights.forces != 0 || (!differentiable && configuration.target == .energy)
        let labelledCount = batch.stressLabels.lazy.filter { $0 != nil }.count
        // Without a stress weight the strain stays out of the graph: training without stresses
        // runs the same operations, bit for bit, as before stresses existed.
        let needStress = configuration.target == .energy && labelledCount > 0 && (weights.stress != 0 || !differentiable)
        let positions = try Tensor<T>(shape: [n, 3], scalars: batch.positions.flatMap { [T($0.x), T($0.y), T($0.z)] },
                                      requiresGrad: needForces)
        let strain = needStress
            ? Strain(tensor: Tensor<T>(repeating: 0, shape: [b, 3, 3], requiresGrad: true), structureOfAtom: batch.structureOfAtom) : nil
        let out = try forward(atomicNumbers: batch.atomicNumbers, positions: positions, graph: batch.graph, strain: strain)
        let c = configuration
        let atomEnergy = out.atomScalars * T(c.scaleStd) + T(c.scaleMean)                    // [N, 1]
        let energies = try atomEnergy.scatterAdd(rows: batch.structureOfAtom, count: b)         // [B, 1]
        var total = Tensor<T>(0)
        var energyMSE = 0.0, forceMSE = 0.0, dipoleMSE = 0.0

        // The element reference energies move to the target side in Double: the network's sum then
        // stays small, and Float loses nothing to a large constant.
        var target = batch.energies
        for (i, z) in batch.atomicNumbers.enumerated() { target[Int(batch.structureOfAtom[i])] -= c.elementEnergy(z) }
        let reference = try Tensor<T>(shape: [b, 1], scalars: target.map { T(tensorDouble: $0) })
        var energyError = try energies - reference
        if weights.energyPerAtom {
            energyError = try energyError * Tensor<T>(shape: [b, 1], scalars: batch.atomCounts.map { T(1 / Double($0)) })
        }
        let energyLoss = energyError.square().mean()
        energyMSE = energyLoss.item.tensorDouble
        if weights.energy != 0 { total = try total + energyLoss * T(weights.energy) }

        var predictedForces: [Vec3] = [], predictedStresses: [Mat3?] = [], stressMSE = 0.0
        let targets = (needForces ? [positions] : []) + (strain.map { [$0.tensor] } ?? [])
        let createGraph = differentiable && (weights.forces != 0 || (needStress && weights.stress != 0))
        let gradients = targets.isEmpty ? [] : try grad(of: out.energy, wrt: targets, createGraph: createGraph)
        if needStress, let strainGradient = gradients.last {
            // ∂E/∂ε_b = V_b σ_b: the error as the virial per atom needs no division by the volume.
            var reference = [T](repeating: 0, count: 9 * b), scale = [T](repeating: 0, count: b)
            for (k, label) in batch.stressLabels.enumerated() {
                guard let (s, v) = label else { continue }
                for row in 0..<3 { for col in 0..<3 { reference[9 * k + 3 * row + col] = T(tensorDouble: s[row, col] * v) } }
                scale[k] = T(1 / Double(batch.atomCounts[k]))
            }
            let error = try (strainGradient - Tensor<T>(shape: [b, 3, 3], scalars: reference))
                * Tensor<T>(shape: [b, 1, 1], scalars: scale)
            let stressLoss = error.square().sum() * T(1 / Double(9 * labelledCount))
            stressMSE = stressLoss.item.tensorDouble
            if weights.stress != 0 { total = try total + stressLoss * T(weights.stress) }
            let g = strainGradient.scalars
            predictedStresses = batch.stressLabels.enumerated().map { k, label in
                guard let v = label?.volume else { return nil }
                let row = { (r: Int) in Vec3(g[9 * k + 3 * r].tensorDouble, g[9 * k + 3 * r + 1].tensorDouble, g[9 * k + 3 * r + 2].tensorDouble) / v }
                return Mat3(row(0), row(1), row(2))
            }
        }
        if needForces {
            let gradient = gradients[0]
            let referenceForces = try Tensor<T>(shape: [n, 3], scalars: batch.forces.flatMap { [T($0.x), T($0.y), T($0.z)] })
            // F = −∂E/∂r, so F − F_ref = −(∂E/∂r + F_ref).
            let forceLoss = try (gradient + referenceForces).square().mean()
            forceMSE = forceLoss.item.tensorDouble
            if weights.forces != 0 { total = try total + forceLoss * T(weights.forces) }
            let g = gradient.scalars
            predictedForces = (0..<n).map { Vec3(-g[3 * $0].tensorDouble, -g[3 * $0 + 1].tensorDouble, -g[3 * $0 + 2].tensorDouble) }
        }

        // μ_b = Σ_{i∈b} (mu_i + q_i (r_i − r_com)); lever arms are data, not differentiated.
        var predictedDipoles: [Vec3] = []
        if weights.dipole != 0 || c.target == .dipole {
            let arms = try Tensor<T>(shape: [n, 3], scalars: batch.centredPositions.flatMap { [T($0.x), T($0.y), T($0.z)] })
            let atomDipoles = try out.atomVectors.reshaped([n, 3]) + out.atomScalars * arms
            let dipoles = try atomDipoles.scatterAdd(rows: batch.structureOfAtom, count: b)        // [B, 3]
            let d = dipoles.scalars
            predictedDipoles = (0..<b).map { Vec3(d[3 * $0].tensorDouble, d[3 * $0 + 1].tensorDouble, d[3 * $0 + 2].tensorDouble) }
            if weights.dipole != 0 {
                guard batch.dipoles.allSatisfy({ $0 != nil }) else { throw TrainingError("loss.dipole_weight is set but a frame has no dipole") }
                let referenceDipoles = try Tensor<T>(shape: [b, 3], scalars: batch.dipoles.flatMap { v -> [T] in
                    let x = v ?? .zero
                    return [T(x.x), T(x.y), T(x.z)]
                })
                let dipoleLoss = try (dipoles - referenceDipoles).square().mean()
                dipoleMSE = dipoleLoss.item.tensorDouble
                total = try total + dipoleLoss * T(weights.dipole)
            }
        }
        // Back to total energies: prediction + (E_ref − target) = prediction + Σ e_Z.
        let e = energies.scalars.enumerated().map { $0.element.tensorDouble + batch.energies[$0.offset] - target[$0.offset] }
        return BatchLoss(total: total, energyMSE: energyMSE, forceMSE: forceMSE, dipoleMSE: dipoleMSE, stressMSE: stressMSE,
                         predictedEnergies: e, predictedForces: predictedForces, predictedDipoles: predictedDipoles,
                         predictedStresses: predictedStresses)
    }
}
