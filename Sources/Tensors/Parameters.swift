// Named trainable tensors.

/// An ordered collection of named parameters (leaf tensors that require a gradient).
///
/// Names follow the reference model's state-dict keys (for example
/// `"layers.0.two_body.W_nn.weight"`), so weights load by name from a model file.
public final class ParameterSet<Scalar: TensorScalar> {
    public private(set) var names: [String] = []
    public private(set) var tensors: [Tensor<Scalar>] = []
    private var position: [String: Int] = [:]

    public init() {}

    /// The number of parameters (tensors).
    public var count: Int { tensors.count }
    /// The total number of scalars over all parameters.
    public var scalarCount: Int { tensors.reduce(0) { $0 + $1.count } }

    /// Registers `tensor` under `name` and marks it as requiring a gradient.
    @discardableResult
    public func add(_ name: String, _ tensor: Tensor<Scalar>) throws -> Tensor<Scalar> {
        guard position[name] == nil else { throw TensorError("parameter \"\(name)\" registered twice") }
        try tensor.setRequiresGrad(true)
        position[name] = tensors.count
        names.append(name)
        tensors.append(tensor)
        return tensor
    }

    /// Registers a zero-filled parameter of the given shape.
    @discardableResult
    public func add(_ name: String, shape: [Int]) throws -> Tensor<Scalar> {
        try add(name, Tensor<Scalar>.zeros(shape))
    }

    /// The parameter called `name`, if any.
    public subscript(name: String) -> Tensor<Scalar>? {
        position[name].map { tensors[$0] }
    }

    /// The parameter called `name`, or an error naming it.
    public func tensor(_ name: String) throws -> Tensor<Scalar> {
        guard let i = position[name] else { throw TensorError("no parameter named \"\(name)\"") }
        return tensors[i]
    }

    /// Overwrites the parameter `name` with `scalars` of the given shape (a shape or size
    /// mismatch is an error naming the parameter).
    public func load(_ name: String, shape: [Int], scalars: [Scalar]) throws {
        let t = try tensor(name)
        guard t.shape == shape || (t.count == scalars.count && shape.reduce(1, *) == t.count && t.shape.filter { $0 != 1 } == shape.filter { $0 != 1 }) else {
            throw TensorError("parameter \"\(name)\": shape \(shape) in the file, \(t.shape) expected")
        }
        do { try t.assign(scalars) } catch {
            throw TensorError("parameter \"\(name)\": \(scalars.count) values for shape \(t.shape)")
        }
    }

    /// Every parameter as `(name, shape, scalars)`, in registration order (for saving).
    public func export() -> [(name: String, shape: [Int], scalars: [Scalar])] {
        zip(names, tensors).map { ($0, $1.shape, $1.scalars) }
    }

    /// Forgets the gradients accumulated by `backward()`.
    public func zeroGradients() {
        for t in tensors { t.grad = nil }
    }

    /// The accumulated gradients (zeros where none).
    public var gradients: [Tensor<Scalar>] {
        tensors.map { $0.grad ?? Tensor<Scalar>.zeros($0.shape) }
    }
}

/// The global Euclidean norm of `gradients` and, if it exceeds `maxNorm`, the gradients
/// scaled down to that norm (new tensors; the inputs are not changed).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func clipGradientNorm<T: TensorScalar>(_ gradients: [Tensor<T>], maxNorm: Double) -> (gradients: [Tensor<T>], norm: Double) {
    var total = 0.0
    for g in gradients {
        g.withUnsafeBufferPointer { p in
            for v in p { let d = v.tensorDouble; total += d * d }
        }
    }
    let norm = total.squareRoot()
    guard norm > maxNorm, norm > 0 else { return (gradients, norm) }
    let scale = T(tensorDouble: maxNorm / (norm + 1e-6))
    return (GradMode.withoutGradients { gradients.map { $0.detached() * scale } }, norm)
}
