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
public func grad<T: TensorScalar>(of y: Tensor<T>, wrt: [Tensor<T>], seed: Tensor<T>? = nil,
                                  createGraph: Bool = false) throws -> [Tensor<T>] {
    let targets = Dictionary(wrt.enumerated().map { (ObjectIdentifier($0.element), $0.offset) },
                             uniquingKeysWith: { a, _ in a })
    let collected = try Autograd.run(y, seed: seed, createGraph: createGraph, targets: targets,
                                     accumulateIntoLeaves: false)
    return wrt.enumerated().map { i, x in collected[i] ?? Tensor<T>.zeros(x.shape) }
}

extension Tensor {
    /// Accumulates `∂self/∂leaf` (times `seed`) into the ``grad`` of every leaf that requires a
    /// gradient, like PyTorch's `backward()`. No graph is recorded for the gradients.
    public func backward(seed: Tensor? = nil) throws {
        _ = try Autograd.run(self, seed: seed, createGraph: false, targets: [:], accumulateIntoLeaves: true)
    }
}

enum Autograd {
    static func run<T: TensorScalar>(_ y: Tensor<T>, seed: Tensor<T>?, createGraph: Bool,
                                     targets: [ObjectIdentifier: Int], accumulateIntoLeaves: Bool) throws -> [Int: Tensor<T>] {
        let start: Tensor<T>
        if let seed {
            guard seed.shape == y.shape else { throw TensorError.shape("grad seed", seed.shape, y.shape) }
            start = seed
        } else {
            guard y.count == 1 else { throw TensorError("grad: \(y.operation) result of shape \(y.shape) needs a seed") }
            start = Tensor<T>(repeating: 1, shape: y.shape)
        }
        guard y.requiresGrad else { return [:] }

        // Post-order (inputs before results) over the nodes that require a gradient.
        var order: [Tensor<T>] = []
        var slot: [ObjectIdentifier: Int] = [:]
        var stack: [(Tensor<T>, Int)] = [(y, 0)]
        var visiting = Set<ObjectIdentifier>([ObjectIdentifier(y)])
        while let (node, next) = stack.popLast() {
            if next < node.inputs.count {
                stack.append((node, next + 1))
                let child = node.inputs[next]
                let id = ObjectIdentifier(child)
                if child.requiresGrad && slot[id] == nil && !visiting.contains(id) {
                    visiting.insert(id)
                    stack.append((child, 0))
                }
            } else {
                slot[ObjectIdentifier(node)] = order.count
                order.append(node)
            }
        }

        // A node is relevant when a target (or, for backward(), a leaf) lies at or below it.
        var relevant = [Bool](repeating: false, count: order.count)
        for (k, node) in order.enumerated() {
            var r = targets[ObjectIdentifier(node)] != nil || (accumulateIntoLeaves && node.isLeaf)
            if !r {
                for input in node.inputs where input.requiresGrad {
                    if let j = slot[ObjectIdentifier(input)], relevant[j] { r = true; break }
                }
            }
            relevant[k] = r
        }

        var grads = [Tensor<T>?](repeating: nil, count: order.count)
        grads[order.count - 1] = start
        var collected: [Int: Tensor<T>] = [:]
        try GradMode.with(enabled: createGraph) {
            for k in stride(from: order.count - 1, through: 0, by: -1) {
                guard relevant[k], let g = grads[k] else { continue }
                grads[k] = nil
                let node = order[k]
                if let t = targets[ObjectIdentifier(node)] { collected[t] = g }
                if accumulateIntoLeaves && node.isLeaf {
                    let d = g.detached()
                    node.grad = try node.grad.map { try $0 + d } ?? d.copy()
                }
                guard let backward = node.backward else { continue }
                var bits: UInt64 = 0
                var slots: [Int?] = []
                slots.reserveCapacity(node.inputs.count)
                for (i, input) in node.inputs.enumerated() {
                    var j: Int? = nil
                    if input.requiresGrad, let s = slot[ObjectIdentifier(input)], relevant[s] {
                        j = s
                        if i < 64 { bits |= 1 << UInt64(i) }
                    }
                    slots.append(j)
                }
                if bits == 0 && node.inputs.count <= 64 { continue }
                let inputGrads = try backward(g, node, InputMask(bits: bits))
                for (i, j) in slots.enumerated() {
                    guard let j, i < inputGrads.count, let gi = inputGrads[i] else { continue }
                    guard gi.shape == node.inputs[i].shape else {
                        throw TensorError("backward of \(node.operation): gradient shape \(gi.shape) for input \(node.inputs[i].shape)")
                    }
                    grads[j] = try grads[j].map { try $0 + gi } ?? gi
                }
            }
        }
        return collected
    }
}
