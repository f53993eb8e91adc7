import CBLAS
import Foundation

// Reverse-mode differentiation over the recorded graph.

/// Gradients of `y` with respect to each tensor of `wrt`, in the spirit of PyTorch's
/// `torch.autograd.grad`.
///
/// - Parameters:
///   - y: the tensor to differentiate; a one-element tensor unless `seed` is given.
///   - wrt: the tensors to differentiate with respect to (leaves or intermediate results).
///   - seed: the vector of the vector–Jacobian product (`∂L/∂y`); defaults to 1 for a scalar.
///   - createGraph: record the backward pass itself, so that the returned gradients can be
///     differentiated again (forces inside a training loss). Without it the backward builds
///     no graph and the gradients carry no history.
/// - Returns: one gradient per `wrt` tensor, of its shape; zeros where `y` does not depend on it.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func grad<T: TensorScalar>(of y: Tensor<T>, wrt: [Tensor<T>], seed: Tensor<T>? = nil,
                                  createGraph: Bool = false) throws -> [Tensor<T>] {
    let collected = try Autograd.run(y, seed: seed, createGraph: createGraph, targets: wrt,
                                     accumulateIntoLeaves: false)
    return wrt.enumerated().map { i, x in collected[i] ?? Tensor<T>.zeros(x.shape) }
}

extension Tensor {
    /// Accumulates `∂self/∂leaf` (times `seed`) into the ``grad`` of every leaf that requires a
    /// gradient, like PyTorch's `backward()`. No graph is recorded for the gradients.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func backward(seed: Tensor? = nil) throws {
        _ = try Autograd.run(self, seed: seed, createGraph: false, targets: [], accumulateIntoLeaves: true)
    }
}

enum Autograd {
    // A pass marks the tensors it visits, so passes that may share tensors run one at a time
    // (the write side); passes over private graphs (`GradMode.withPrivateGraphs`) run together
    // (the read side) and check their marks afterwards. A pass started from a backward function
    // of another on the same thread runs under the lock that one holds (glibc refuses a second
    // lock to a thread that holds it for writing, and a thread that holds it for reading and
    // asks to write waits forever), and both passes check their marks: they may share tensors.
    nonisolated(unsafe) static var lock: UnsafeMutablePointer<pthread_rwlock_t> = {
        let l = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)
        pthread_rwlock_init(l, nil)
        return l
    }()
    /// The last pass's number (atomic: private passes take theirs concurrently).
    nonisolated(unsafe) static var passCounter: UnsafeMutablePointer<Int> = {
        let p = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        p.initialize(to: 0)
        return p
    }()

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func run<T: TensorScalar>(_ y: Tensor<T>, seed: Tensor<T>?, createGraph: Bool,
                                     targets: [Tensor<T>], accumulateIntoLeaves: Bool) throws -> [Tensor<T>?] {
        var collected = [Tensor<T>?](repeating: nil, count: targets.count)
        let start: Tensor<T>
        if let seed {
            guard seed.shape == y.shape else { throw TensorError.shape("grad seed", seed.shape, y.shape) }
            start = seed
        } else {
            guard y.count == 1 else { throw TensorError("grad: \(y.operation) result of shape \(y.shape) needs a seed") }
            start = Tensor<T>(repeating: 1, shape: y.shape)
        }
        guard y.requiresGrad else { return collected }

        let isPrivate = GradMode.hasPrivateGraphs
        let isNested = ThreadFlags.bits & ThreadFlags.insideBackwardPass != 0
        if !isNested {
            if isPrivate { pthread_rwlock_rdlock(lock) } else { pthread_rwlock_wrlock(lock) }
            ThreadFlags.set(ThreadFlags.insideBackwardPass, true)
        }
        defer {
            if !isNested {
                ThreadFlags.set(ThreadFlags.insideBackwardPass, false)
                pthread_rwlock_unlock(lock)
            }
        }
        let pass = UInt64(tensors_atomic_add(passCounter, 1) + 1)
        for (i, x) in targets.enumerated() where x.autogradTargetVisit != pass {
            x.autogradTargetVisit = pass
            x.autogradTargetIndex = i
        }

        // Post-order (inputs before results) over the nodes that require a gradient.
        var order: [Tensor<T>] = []
        var stack: [(Tensor<T>, Int)] = [(y, 0)]
        y.autogradVisit = pass
        while let (node, next) = stack.popLast() {
            if next < node.inputs.count {
                stack.append((node, next + 1))
                let child = node.inputs[next]
                if child.requiresGrad && child.autogradVisit != pass {
                    child.autogradVisit = pass
                    stack.append((child, 0))
                }
            } else {
                node.autogradSlot = order.count
                order.append(node)
            }
        }

        // A node is relevant when a target (or, for backward(), a leaf) lies at or below it.
        var relevant = [Bool](repeating: false, count: order.count)
        for (k, node) in order.enumerated() {
            var r = node.autogradTargetVisit == pass || (accumulateIntoLeaves && node.isLeaf)
            if !r {
                for input in node.inputs where input.requiresGrad && input.autogradVisit == pass {
                    if relevant[input.autogradSlot] { r = true; break }
                }
            }
            relevant[k] = r
        }

        var grads = [Tensor<T>?](repeating: nil, count: order.count)
        var owned = [Bool](repeating: false, count: order.count)
        grads[order.count - 1] = start
        try GradMode.with(enabled: createGraph) {
            for k in stride(from: order.count - 1, through: 0, by: -1) {
                guard relevant[k], let g = grads[k] else { continue }
                grads[k] = nil
                let node = order[k]
                if node.autogradTargetVisit == pass { collected[node.autogradTargetIndex] = g }
                if accumulateIntoLeaves && node.isLeaf {
                    let d = g.detached()
                    node.grad = try node.grad.map { try $0 + d } ?? d.copy()
                }
                guard let backward = node.backward else { continue }
                var bits: UInt64 = 0
                let inputs = node.inputs
                for (i, input) in inputs.enumerated() where i < 64 {
                    if input.requiresGrad && input.autogradVisit == pass && relevant[input.autogradSlot] {
                        bits |= 1 << UInt64(i)
                    }
                }
                if bits == 0 && inputs.count <= 64 { continue }
                if !createGraph, let region = node.sliceRegion, inputs.count == 1 {
                    try addSlice(g, region, into: inputs[0].autogradSlot, of: inputs[0], &grads, &owned)
                    continue
                }
                var inputGrads = try backward(g, node, InputMask(bits: bits))
                for (i, input) in inputs.enumerated() where i < inputGrads.count {
                    guard input.requiresGrad && input.autogradVisit == pass else { continue }
                    let j = input.autogradSlot
                    guard relevant[j], var gi = inputGrads[i] else { continue }
                    inputGrads[i] = nil
                    guard gi.shape == input.shape else {
                        throw TensorError("backward of \(node.operation): gradient shape \(gi.shape) for input \(input.shape)")
                    }
                    guard let existing = grads[j] else {
                        // A fresh result that nothing else holds can take later contributions in place.
                        owned[j] = !createGraph && Tensor.isUniquelyHeld(&gi)
                        grads[j] = gi
                        continue
                    }
                    if owned[j] && existing.canAbsorb(gi) {
                        // A sum this pass made itself (or a gradient only it holds): nobody else sees it.
                        existing.absorb(gi)
                    } else if !createGraph && Tensor.isUniquelyHeld(&gi) && gi.canAbsorb(existing) {
                        gi.absorb(existing)
                        grads[j] = gi
                        owned[j] = true
                    } else {
                        grads[j] = try Tensor.accumulation(existing, gi)
                        owned[j] = true
                    }
                }
            }
        }
        // Another pass that visited one of these tensors has overwritten its mark (marks are only
        // ever overwritten, so any overlap in time leaves one behind). Under the write lock, only
        // a pass nested in this one's backward functions can have started since, and then the
        // counter has moved.
        let othersRan = isPrivate || isNested || UInt64(tensors_atomic_load(passCounter)) != pass
        if othersRan, let shared = order.first(where: { $0.autogradVisit != pass }) ?? targets.first(where: { $0.autogradTargetVisit != pass }) {
            throw TensorError("backward of \(shared.operation): a tensor of this graph was differentiated by another backward pass at the same time, on another thread or from a backward function of this pass (GradMode.withPrivateGraphs needs graphs that share no tensor requiring a gradient; a backward function may differentiate only a graph of its own)")
        }
        return collected
    }

    /// A slice's gradient added into its region of the input's gradient, which this pass then
    /// owns (a fresh embedding, or a copy of a gradient someone else may hold).
    private static func addSlice<T: TensorScalar>(_ g: Tensor<T>, _ region: SliceRegion, into j: Int, of input: Tensor<T>,
                                    _ grads: inout [Tensor<T>?], _ owned: inout [Bool]) throws {
        guard let existing = grads[j] else {
            grads[j] = try g.embedded(axis: region.axis, start: region.start, length: region.inputLength)
            owned[j] = true
            return
        }
        let target = owned[j] ? existing : existing.copy()
        let (outer, _, inner) = input.axisGeometry(region.axis)
        blockAddKernel(g.storage.base, target.storage.base, yLength: region.inputLength, yStart: region.start,
                       outer: outer, length: g.shape[region.axis], inner: inner)
        grads[j] = target
        owned[j] = true
    }
}
