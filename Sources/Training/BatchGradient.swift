import ENINet
import Geometry
import Tensors

/// The training loss of a batch and its gradient on a model's parameters, with the batch's
/// structures shared among the tensor threads (data parallelism).
///
/// A training step runs thousands of short operations (a few microseconds each for one
/// aspirin), so splitting each of them over threads costs about what it saves; splitting the
/// batch does not. Worker `w` differentiates the loss of its share of the structures on a
/// network of its own (``ENINetDifferentiableModel/replica()``, refreshed from ``model`` at
/// every call), with the loss weights scaled by its share of the structures and atoms so that
/// the shares' losses add up to the batch's; the gradients are then summed in worker order, so
/// a given thread count gives the same numbers on every run.
///
/// ```swift
/// let gradient = BatchGradient(model: model, workers: TensorThreads.count)
/// let (loss, gradients) = try gradient.evaluate(frames, weights: LossWeights())
/// try optimizer.step(gradients: gradients)
/// ```
public final class BatchGradient<T: ENINetFloat> {
    /// The network whose parameters the gradients belong to (worker 0 runs on it).
    public let model: ENINetDifferentiableModel<T>
    /// The most shares a batch is split into.
    public let workers: Int
    private var replicas: [ENINetDifferentiableModel<T>] = []

    public init(model: ENINetDifferentiableModel<T>, workers: Int = TensorThreads.count) {
        self.model = model
        self.workers = max(1, workers)
    }

    /// The loss of `frames` as one batch (``ENINetDifferentiableModel/loss(on:weights:differentiable:)``)
    /// and its gradient on `model.parameters.tensors`, in their order.
    public func evaluate(_ frames: [PreparedFrame], weights: LossWeights) throws -> (loss: BatchLoss<T>, gradients: [Tensor<T>]) {
        let parts = try run(frames, weights: weights) { net, batch, weights in
            let loss = try net.loss(on: batch, weights: weights)
            return (loss, try grad(of: loss.total, wrt: net.parameters.tensors))
        }
        return try GradMode.withoutGradients {
            var gradients = parts[0].gradients
            for part in parts.dropFirst() { gradients = try zip(gradients, part.gradients).map { try $0 + $1 } }
            return (Self.combined(parts), gradients)
        }
    }

    /// The loss of `frames` as one batch without a graph (validation), the shares on the
    /// workers as in ``evaluate(_:weights:)``.
    public func loss(_ frames: [PreparedFrame], weights: LossWeights) throws -> BatchLoss<T> {
        Self.combined(try run(frames, weights: weights) { net, batch, weights in
            (try net.loss(on: batch, weights: weights, differentiable: false), [])
        })
    }

    /// A run of a batch's structures, with the fractions of the batch's structures, atoms and
    /// stress-labelled structures it holds.
    private struct Share {
        var frames: Range<Int>
        var structures: Double, atoms: Double, stressed: Double
    }

    private typealias Part = (share: Share, loss: BatchLoss<T>, gradients: [Tensor<T>])

    /// `body` on each share's batch with its network and its scaled weights, on the workers.
    private func run(_ frames: [PreparedFrame], weights: LossWeights,
                     _ body: (ENINetDifferentiableModel<T>, TrainingBatch, LossWeights) throws -> (BatchLoss<T>, [Tensor<T>]))
        throws -> [Part] {
        let atomCounts = frames.map { $0.frame.atomCount }
        let totalAtoms = Double(max(atomCounts.reduce(0, +), 1)), totalStructures = Double(max(frames.count, 1))
        // The stress term averages over the structures with a label.
        let stressed = frames.map { $0.frame.labelledStress != nil ? 1 : 0 }
        let totalStressed = Double(max(stressed.reduce(0, +), 1))
        let shares = Self.shares(atomCounts: atomCounts, parts: workers).map { range in
            Share(frames: range, structures: Double(range.count) / totalStructures,
                  atoms: Double(atomCounts[range].reduce(0, +)) / totalAtoms,
                  stressed: Double(stressed[range].reduce(0, +)) / totalStressed)
        }
        if shares.count <= 1 {
            let (loss, gradients) = try body(model, try TrainingBatch(frames), weights)
            return [(Share(frames: frames.indices, structures: 1, atoms: 1, stressed: 1), loss, gradients)]
        }
        while replicas.count < shares.count - 1 { replicas.append(try model.replica()) }
        var results = [Result<(BatchLoss<T>, [Tensor<T>]), Error>?](repeating: nil, count: shares.count)
        results.withUnsafeMutableBufferPointer { results in
            TensorThreads.perform(iterations: shares.count) { w in
                results[w] = Result {
                    let net = w == 0 ? model : replicas[w - 1]
                    if w > 0 { for (copy, live) in zip(net.parameters.tensors, model.parameters.tensors) { try copy.assign(live) } }
                    let share = shares[w]
                    // Each weight times the share of what its mean runs over: structures for
                    // energies and dipoles, atoms for forces.
                    let scaled = LossWeights(energy: weights.energy * share.structures, forces: weights.forces * share.atoms,
                                             dipole: weights.dipole * share.structures, stress: weights.stress * share.stressed,
                                             energyPerAtom: weights.energyPerAtom)
                    return try GradMode.withPrivateGraphs {
                        try body(net, try TrainingBatch(Array(frames[share.frames])), scaled)
                    }
                }
            }
        }
        return try zip(shares, results).map { share, result in
            guard let result else { throw TrainingError("a data-parallel worker did not run") }
            let (loss, gradients) = try result.get()
            return (share, loss, gradients)
        }
    }

    /// The batch's loss from its shares': the totals add up (their weights were scaled), the
    /// mean squared errors are averaged over what each runs over, the predictions follow one another.
    private static func combined(_ parts: [Part]) -> BatchLoss<T> {
        guard parts.count > 1 else { return parts[0].loss }
        var total = 0.0, energy = 0.0, forces = 0.0, dipole = 0.0, stress = 0.0
        var result = parts[0].loss
        for (k, part) in parts.enumerated() {
            total += part.loss.total.item.tensorDouble
            energy += part.loss.energyMSE * part.share.structures
            forces += part.loss.forceMSE * part.share.atoms
            dipole += part.loss.dipoleMSE * part.share.structures
            stress += part.loss.stressMSE * part.share.stressed
            if k > 0 {
                result.predictedEnergies += part.loss.predictedEnergies
                result.predictedForces += part.loss.predictedForces
                result.predictedDipoles += part.loss.predictedDipoles
            }
        }
        result.total = Tensor<T>(T(tensorDouble: total))
        result.energyMSE = energy
        result.forceMSE = forces
        result.dipoleMSE = dipole
        result.stressMSE = stress
        // A share without labels predicts no stresses at all: nil for each of its structures.
        if parts.contains(where: { !$0.loss.predictedStresses.isEmpty }) {
            result.predictedStresses = parts.flatMap { part in
                part.loss.predictedStresses.isEmpty ? [Mat3?](repeating: nil, count: part.share.frames.count) : part.loss.predictedStresses
            }
        }
        return result
    }

    /// Consecutive runs of structures, at most `parts` of them and none empty, with about the
    /// same number of atoms each (the work of a structure grows with its atoms).
    static func shares(atomCounts: [Int], parts: Int) -> [Range<Int>] {
        let n = atomCounts.count, count = min(max(parts, 1), n)
        guard count > 1 else { return n == 0 ? [] : [0..<n] }
        let total = atomCounts.reduce(0, +)
        var bounds = [0], cumulative = 0, next = 0
        for k in 1..<count {
            // The first structure whose atoms before it reach k / count of the total, leaving
            // at least one structure for this share and for every later one.
            while next < n && cumulative * count < k * total { cumulative += atomCounts[next]; next += 1 }
            bounds.append(min(max(next, bounds[k - 1] + 1), n - (count - k)))
        }
        bounds.append(n)
        return (0..<count).map { bounds[$0]..<bounds[$0 + 1] }
    }
}
