import Foundation

/// Errors an operation reports instead of trapping: mismatched shapes, bad axes or indices,
/// gradients asked for in an impossible way.
public struct TensorError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }

    static func shape(_ op: String, _ shapes: [Int]...) -> TensorError {
        TensorError("\(op): incompatible shapes \(shapes.map { "\($0)" }.joined(separator: " and "))")
    }
}

/// Which inputs of an operation need a gradient; a backward skips the others.
public struct InputMask {
    let bits: UInt64
    public subscript(_ i: Int) -> Bool { i >= 64 || bits & (1 << UInt64(i)) != 0 }
}

/// Whether operations record a graph. Gradients need it; pure inference runs faster without.
///
/// The switches are per thread: a backward pass turns recording off (or on, with
/// `createGraph`) for its own duration, and a thread training on its share of a batch must not
/// find its forward pass unrecorded because another thread's pass is running.
public enum GradMode {
    static var recording: Bool {
        @inline(__always) get { ThreadFlags.bits & ThreadFlags.recordingOff == 0 }
        set { ThreadFlags.set(ThreadFlags.recordingOff, !newValue) }
    }

    /// Whether operations currently record the graph for differentiation (on this thread).
    public static var isEnabled: Bool { recording }

    /// Runs `body` without recording any graph: results carry no history and no gradient.
    public static func withoutGradients<R>(_ body: () throws -> R) rethrows -> R {
        let saved = recording
        recording = false
        defer { recording = saved }
        return try body()
    }

    /// Runs `body` with recording set to `enabled`.
    public static func with<R>(enabled: Bool, _ body: () throws -> R) rethrows -> R {
        let saved = recording
        recording = enabled
        defer { recording = saved }
        return try body()
    }

    /// Runs `body` with backward passes that run alongside those of other threads in the same
    /// mode, for data parallelism: each thread differentiates a graph of its own, built on its
    /// own copies of the parameters. A pass marks the tensors it visits, so two passes that
    /// share a tensor needing a gradient would corrupt each other: such a pass throws instead.
    /// Outside this mode a backward pass waits until no other pass runs, so graphs may share
    /// anything.
    public static func withPrivateGraphs<R>(_ body: () throws -> R) rethrows -> R {
        let saved = ThreadFlags.bits & ThreadFlags.privateGraphs != 0
        ThreadFlags.set(ThreadFlags.privateGraphs, true)
        defer { ThreadFlags.set(ThreadFlags.privateGraphs, saved) }
        return try body()
    }

    /// Whether this thread's backward passes run alongside other threads' (``withPrivateGraphs(_:)``).
    public static var hasPrivateGraphs: Bool { ThreadFlags.bits & ThreadFlags.privateGraphs != 0 }
}

/// The autodiff's per-thread switches, as bits of one thread-specific word (a missing value
/// reads as zero: recording on, graphs shared).
enum ThreadFlags {
    /// `insideBackwardPass`: this thread runs a backward pass, whose lock it holds, so a pass
    /// started from one of its backward functions must not take the lock again.
    static let recordingOff = 1, privateGraphs = 2, insideBackwardPass = 4
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()
    static var bits: Int { @inline(__always) get { Int(bitPattern: pthread_getspecific(key)) } }
    static func set(_ flag: Int, _ on: Bool) {
        let value = on ? bits | flag : bits & ~flag
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: value))
    }
}

/// A dense, row-major array of `Float` or `Double` with a shape, that remembers how it was
/// computed so that gradients (and gradients of gradients) can be taken.
///
/// Operations return new tensors; they never change their inputs. A result records its
/// inputs and a backward function only when gradient recording is on (see ``GradMode``) and
/// some input requires a gradient. The graph points from results to inputs only, so a
/// tensor and its history never form a retain cycle: dropping the last result frees it all.
///
/// Layouts used by ENINet: scalars `[rows, channels]`, vectors `[rows, 3, channels]`.
public final class Tensor<Scalar: TensorScalar> {
    /// Signature of a backward function: given the gradient of the output (and the output itself,
    /// whose inputs are `output.inputs`), the gradients of the inputs (nil where not needed).
    public typealias Backward = (_ gradient: Tensor, _ output: Tensor, _ needs: InputMask) throws -> [Tensor?]

    /// The size of every axis.
    public let shape: [Int]
    /// The number of elements.
    public let count: Int
    /// A variable only so that ``isUniquelyHeld(_:)`` can ask whether another tensor shares it.
    @exclusivity(unchecked) private(set) var storage: Storage<Scalar>
    /// The tensors this one was computed from (empty for leaves and untracked results).
    @exclusivity(unchecked) public private(set) var inputs: [Tensor]
    let backward: Backward?
    /// The name of the operation that made this tensor, for diagnostics.
    public let operation: String
    /// Whether gradients flow into this tensor.
    @exclusivity(unchecked) public private(set) var requiresGrad: Bool
    /// The gradient accumulated by ``backward(seed:)`` (leaves that require a gradient only).
    @exclusivity(unchecked) public var grad: Tensor?

    // Scratch space for a backward pass: which pass last visited this tensor, its position in
    // that pass's order, and whether (and as which) it was a requested tensor.
    // The mutable fields skip the runtime exclusivity checks (a measurable share of the cost of
    // a tiny op); no access to them overlaps another.
    @exclusivity(unchecked) var autogradVisit: UInt64 = 0
    @exclusivity(unchecked) var autogradSlot = 0
    @exclusivity(unchecked) var autogradTargetVisit: UInt64 = 0
    @exclusivity(unchecked) var autogradTargetIndex = 0
    /// For a recorded slice: where it lies in its input, so that a backward pass that builds no
    /// graph adds its gradient into that region of the input's gradient in place, instead of
    /// embedding it in zeros and adding whole tensors (a split's pieces would each pay for the
    /// full input).
    @exclusivity(unchecked) var sliceRegion: SliceRegion?

    /// Whether this tensor is a leaf: created directly rather than by a recorded operation.
    public var isLeaf: Bool { backward == nil }

    init(shape: [Int], storage: Storage<Scalar>, inputs: [Tensor] = [], operation: String = "leaf",
         backward: Backward? = nil, requiresGrad: Bool = false) {
        self.shape = shape
        self.count = storage.count
        self.storage = storage
        self.inputs = inputs
        self.operation = operation
        self.backward = backward
        self.requiresGrad = requiresGrad
    }

    deinit {
        // A long chain of results would otherwise be released recursively, one stack frame per
        // link; unlink uniquely held inputs iteratively instead. Every test of `inputs` is left
        // to `unlink`, which is specialised: here, in the class's generic deinit, even `isEmpty`
        // looked up the array type's metadata at run time, for every tensor freed.
        Tensor.unlink(&inputs)
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    static func unlink(_ inputs: inout [Tensor]) {
        if inputs.isEmpty { return }
        // Usually every input outlives this tensor (or has no history); then nothing to do.
        var chained = false
        for i in inputs.indices where !inputs[i].inputs.isEmpty && isKnownUniquelyReferenced(&inputs[i]) {
            chained = true
            break
        }
        guard chained else { return }
        // `pending` becomes the only owner of the inputs, so an input held by nobody else is
        // seen as uniquely referenced when popped, and its own inputs are moved here instead
        // of being released by a nested deinit.
        var pending = inputs
        inputs = []
        while var t = pending.popLast() {
            if isKnownUniquelyReferenced(&t), !t.inputs.isEmpty {
                pending.append(contentsOf: t.inputs)
                t.inputs = []
            }
        }
    }

    // MARK: Creating tensors

    /// A tensor with the given shape and elements (row-major).
    public convenience init(shape: [Int], scalars: [Scalar], requiresGrad: Bool = false) throws {
        let n = shape.reduce(1, *)
        guard n == scalars.count, shape.allSatisfy({ $0 >= 0 }) else {
            throw TensorError("Tensor(shape: \(shape)): \(scalars.count) scalars given, \(n) needed")
        }
        let s = Storage<Scalar>.make(count: n)
        scalars.withUnsafeBufferPointer { src in
            if n > 0, let b = src.baseAddress { s.base.update(from: b, count: n) }
        }
        self.init(shape: shape, storage: s, requiresGrad: requiresGrad)
    }

    /// A one-element tensor of shape `[]`.
    public convenience init(_ value: Scalar, requiresGrad: Bool = false) {
        let s = Storage<Scalar>.make(count: 1)
        s.base[0] = value
        self.init(shape: [], storage: s, requiresGrad: requiresGrad)
    }

    /// A tensor of the given shape filled with `value`.
    public convenience init(repeating value: Scalar, shape: [Int], requiresGrad: Bool = false) {
        let n = shape.reduce(1, *)
        let s = Storage<Scalar>.make(count: Swift.max(0, n))
        s.base.initialize(repeating: value, count: Swift.max(0, n))
        self.init(shape: shape, storage: s, requiresGrad: requiresGrad)
    }

    /// A tensor of zeros.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(repeating: 0, shape: shape) }
    /// A tensor of ones.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func ones(_ shape: [Int]) -> Tensor { Tensor(repeating: 1, shape: shape) }

    /// A tensor converted from another precision (no gradient history).
    public convenience init<Other: TensorScalar>(converting other: Tensor<Other>, requiresGrad: Bool = false) {
        let s = Storage<Scalar>.make(count: other.count)
        let src = other.storage.base
        for i in 0..<other.count { s.base[i] = Scalar(tensorDouble: src[i].tensorDouble) }
        self.init(shape: other.shape, storage: s, requiresGrad: requiresGrad)
    }

    /// A leaf tensor of normally distributed values (mean 0, standard deviation `standardDeviation`).
    public static func randomNormal<G: RandomNumberGenerator>(
        _ shape: [Int], standardDeviation: Scalar = 1, using generator: inout G, requiresGrad: Bool = false
    ) -> Tensor {
        let t = Tensor(repeating: 0, shape: shape, requiresGrad: requiresGrad)
        var i = 0
        while i < t.count {
            // Box–Muller: two independent normals per pair of uniforms.
            let u1 = (Double(generator.next() >> 11) + 1) * 0x1p-53   // (0, 1]
            let u2 = Double(generator.next() >> 11) * 0x1p-53
            let r = (-2 * Foundation.log(u1)).squareRoot() * standardDeviation.tensorDouble
            t.storage.base[i] = Scalar(tensorDouble: r * Foundation.cos(2 * Double.pi * u2))
            if i + 1 < t.count { t.storage.base[i + 1] = Scalar(tensorDouble: r * Foundation.sin(2 * Double.pi * u2)) }
            i += 2
        }
        return t
    }

    /// A leaf tensor of values uniform in `range`.
    public static func randomUniform<G: RandomNumberGenerator>(
        _ shape: [Int], in range: ClosedRange<Double>, using generator: inout G, requiresGrad: Bool = false
    ) -> Tensor {
        let t = Tensor(repeating: 0, shape: shape, requiresGrad: requiresGrad)
        let low = range.lowerBound, width = range.upperBound - range.lowerBound
        for i in 0..<t.count {
            // 53 random bits as a fraction in [0, 1).
            let unit = Double(generator.next() >> 11) * 0x1p-53
            t.storage.base[i] = Scalar(tensorDouble: low + width * unit)
        }
        return t
    }

    // MARK: Reading and writing

    /// The number of axes.
    public var rank: Int { shape.count }

    /// The elements, row-major.
    public var scalars: [Scalar] { Array(UnsafeBufferPointer(start: storage.base, count: count)) }

    /// The single element of a one-element tensor (the first element otherwise).
    public var item: Scalar { count > 0 ? storage.base[0] : 0 }

    /// The element at a flat (row-major) index.
    public subscript(flat i: Int) -> Scalar { storage.base[i] }

    /// Calls `body` with the elements.
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Scalar>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.base, count: count))
    }

    /// Calls `body` with the elements for writing, in place. Meant for leaves (parameters, inputs):
    /// a result that some recorded graph still refers to must not be changed.
    public func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Scalar>) throws -> R) rethrows -> R {
        try body(UnsafeMutableBufferPointer(start: storage.base, count: count))
    }

    /// Overwrites the elements in place (same count), e.g. to load weights.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func assign(_ values: [Scalar]) throws {
        guard values.count == count else { throw TensorError("assign: \(values.count) values for shape \(shape)") }
        values.withUnsafeBufferPointer { src in
            if count > 0, let b = src.baseAddress { storage.base.update(from: b, count: count) }
        }
    }

    /// Overwrites the elements in place with another tensor's (same count).
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func assign(_ other: Tensor) throws {
        guard other.count == count else { throw TensorError("assign: shape \(other.shape) into \(shape)") }
        if other.storage !== storage { storage.base.update(from: other.storage.base, count: count) }
    }

    /// Turns gradient tracking on or off for a leaf.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func setRequiresGrad(_ on: Bool) throws {
        guard isLeaf else { throw TensorError("setRequiresGrad: \(operation) result is not a leaf") }
        requiresGrad = on
    }

    /// The same values with no history (shares memory).
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func detached() -> Tensor {
        Tensor(shape: shape, storage: storage)
    }

    /// An independent copy of the values, with no history.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func copy() -> Tensor {
        let s = Storage<Scalar>.make(count: count)
        s.base.update(from: storage.base, count: count)
        return Tensor(shape: shape, storage: s)
    }

    // MARK: Building results

    /// Wraps a freshly computed storage as the result of an operation, recording the graph when
    /// recording is on and an input needs a gradient.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    static func result(_ shape: [Int], _ storage: Storage<Scalar>, _ operation: String,
                       _ inputs: [Tensor], _ backward: @escaping Backward) -> Tensor {
        if GradMode.recording {
            for t in inputs where t.requiresGrad {
                return Tensor(shape: shape, storage: storage, inputs: inputs, operation: operation,
                              backward: backward, requiresGrad: true)
            }
        }
        return Tensor(shape: shape, storage: storage, operation: operation)
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    static func result(_ shape: [Int], _ storage: Storage<Scalar>, _ operation: String,
                       _ input: Tensor, _ backward: @escaping Backward) -> Tensor {
        if GradMode.recording && input.requiresGrad {
            return Tensor(shape: shape, storage: storage, inputs: [input], operation: operation,
                          backward: backward, requiresGrad: true)
        }
        return Tensor(shape: shape, storage: storage, operation: operation)
    }

    /// Whether nothing but `tensor` sees its values: no other reference to the tensor and no
    /// other tensor on its storage (a reshape or a detached copy shares it). A backward pass
    /// then adds further gradients into it in place.
    static func isUniquelyHeld(_ tensor: inout Tensor) -> Bool {
        isKnownUniquelyReferenced(&tensor) && isKnownUniquelyReferenced(&tensor.storage)
    }

    /// `a + b` (of one shape) as a sum that ``absorb(_:)`` can extend in place while nothing
    /// else holds it: the backward pass that builds a differentiable gradient sums each
    /// tensor's contributions in one buffer instead of a chain of new sums.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    static func accumulation(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        guard a.shape == b.shape else { throw TensorError.shape("accumulate", a.shape, b.shape) }
        let (_, s) = try binaryStorage(.add, a, b, "accumulate")
        return result(a.shape, s, "accumulate", [a, b]) { g, y, needs in y.inputs.indices.map { needs[$0] ? g : nil } }
    }

    /// Whether ``absorb(_:)`` can take `summand`: a sum recorded without a history (nothing
    /// it adds needs a gradient) cannot start passing one on.
    func canAbsorb(_ summand: Tensor) -> Bool { backward != nil || !summand.requiresGrad }

    /// Adds `summand` to an ``accumulation(_:_:)`` (or a gradient) that nothing else holds yet:
    /// to its values, and to its inputs when it has a history (the gradient of a sum reaches
    /// every summand alike). Only when ``canAbsorb(_:)``.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    func absorb(_ summand: Tensor) {
        axpyKernel(1, summand.storage.base, storage.base, count)
        if backward != nil { inputs.append(summand) }
    }

    /// Whether an operation on these inputs would be recorded.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    @inline(__always) static func recorded(_ a: Tensor, _ b: Tensor? = nil) -> Bool {
        GradMode.recording && (a.requiresGrad || (b?.requiresGrad ?? false))
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let shown = scalars.prefix(8).map { "\($0)" }.joined(separator: ", ")
        return "Tensor<\(Scalar.self)>(shape: \(shape), [\(shown)\(count > 8 ? ", …" : "")])"
    }
}

/// A user-defined differentiable operation: `forward` computes the value from plain values,
/// `backward` returns input gradients written in terms of tensor operations (so that it can be
/// differentiated again).
extension Tensor {
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func custom(
        _ name: String, inputs: [Tensor], shape: [Int], values: [Scalar], backward: @escaping Backward
    ) throws -> Tensor {
        let n = shape.reduce(1, *)
        guard values.count == n else { throw TensorError("\(name): \(values.count) values for shape \(shape)") }
        let s = Storage<Scalar>.make(count: n)
        values.withUnsafeBufferPointer { if n > 0, let b = $0.baseAddress { s.base.update(from: b, count: n) } }
        return result(shape, s, name, inputs, backward)
    }
}
