import ENINet
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
            var gradients = parts[0].1
            for part in parts.dropFirst() { gradients = try zip(gradients, part.1).map { try $0 + $1 } }
            return (Self.combined(parts.map { $0.0 }, frames: frames, weights: weights), gradients)
        }
    }

    /// The loss of `frames` as one batch without a graph (validation), the shares on the
    /// workers as in ``evaluate(_:weights:)``.
    public func loss(_ frames: [PreparedFrame], weights: LossWeights) throws -> BatchLoss<T> {
        let parts = try run(frames, weights: weights) { net, batch, weights in
            (try net.loss(on: batch, weights: weights, differentiable: false), [Tensor<T>]())
        }
        return Self.combined(parts.map { $0.0 }, frames: frames, weights: weights)
    }

    /// `body` on each share's batch with its network and its scaled weights, on the workers.
    private func run(_ frames: [PreparedFrame], weights: LossWeights,
                     _ body: (ENINetDifferentiableModel<T>, TrainingBatch, LossWeights) throws -> (BatchLoss<T>, [Tensor<T>]))
        throws -> [(BatchLoss<T>, [Tensor<T>])] {
        let shares = Self.shares(atomCounts: frames.map { $0.frame.atomCount }, parts: workers)
        if shares.count <= 1 { return [try body(model, try TrainingBatch(frames), weights)] }
        while replicas.count < shares.count - 1 { replicas.append(try model.replica()) }
        var results = [Result<(BatchLoss<T>, [Tensor<T>]), Error>?](repeating: nil, count: shares.count)
        results.withUnsafeMutableBufferPointer { results in
            TensorThreads.perform(iterations: shares.count) { w in
                results[w] = Result {
                    let net = w == 0 ? model : replicas[w - 1]
                    if w > 0 { for (copy, live) in zip(net.parameters.tensors, model.parameters.tensors) { try copy.assign(live) } }
                    let share = Array(frames[shares[w]])
                    return try GradMode.withPrivateGraphs {
                        try body(net, try TrainingBatch(share), Self.scaled(weights, share: share, of: frames))
                    }
                }
            }
        }
        return try results.map { result in
            guard let result else { throw TrainingError("a data-parallel worker did not run") }
            return try result.get()
        }
    }

    /// The loss weights of a share: each times the share of what its mean runs over (structures
    /// for energies and dipoles, atoms for forces), so that the shares' losses add up to the batch's.
    private static func scaled(_ weights: LossWeights, share: [PreparedFrame], of frames: [PreparedFrame]) -> LossWeights {
        let (structures, atoms) = fractions(share, of: frames)
        return LossWeights(energy: weights.energy * structures, forces: weights.forces * atoms,
                           dipole: weights.dipole * structures, energyPerAtom: weights.energyPerAtom)
    }

    /// The fractions of the structures and of the atoms of `frames` that `share` holds.
    private static func fractions(_ share: ArraySlice<PreparedFrame>, of frames: [PreparedFrame]) -> (structures: Double, atoms: Double) {
        func atoms<C: Collection>(_ c: C) -> Double where C.Element == PreparedFrame { Double(c.reduce(0) { $0 + $1.frame.atomCount }) }
        return (Double(share.count) / Double(max(frames.count, 1)), atoms(share) / max(atoms(frames), 1))
    }
    private static func fractions(_ share: [PreparedFrame], of frames: [PreparedFrame]) -> (structures: Double, atoms: Double) {
        fractions(share[...], of: frames)
    }

    /// The batch's loss from its shares': the totals add up (their weights were scaled), the
    /// mean squared errors are averaged over what each runs over, the predictions follow one another.
    private static func combined(_ losses: [BatchLoss<T>], frames: [PreparedFrame], weights: LossWeights) -> BatchLoss<T> {
        guard losses.count > 1 else { return losses[0] }
        let shares = Self.shares(atomCounts: frames.map { $0.frame.atomCount }, parts: losses.count)
        var total = 0.0, energy = 0.0, forces = 0.0, dipole = 0.0
        var result = losses[0]
        for (k, (loss, range)) in zip(losses, shares).enumerated() {
            let (structures, atoms) = fractions(frames[range], of: frames)
            total += loss.total.item.tensorDouble
            energy += loss.energyMSE * structures
            forces += loss.forceMSE * atoms
            dipole += loss.dipoleMSE * structures
            if k > 0 {
                result.predictedEnergies += loss.predictedEnergies
                result.predictedForces += loss.predictedForces
                result.predictedDipoles += loss.predictedDipoles
            }
        }
        result.total = Tensor<T>(T(tensorDouble: total))
        result.energyMSE = energy
        result.forceMSE = forces
        result.dipoleMSE = dipole
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
