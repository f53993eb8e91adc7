// Elementwise operations. Every backward is written with tensor operations, so a gradient
// computed with `createGraph: true` can itself be differentiated. When no graph is being
// recorded, some backwards use a fused derivative kernel instead of composing several ops.

extension BroadcastPlan {
    init(sameShape shape: [Int]) {
        outputShape = shape
        count = shape.reduce(1, *)
        sizes = [count]
        stridesA = [1]
        stridesB = [1]
    }
}

extension Tensor {
    // MARK: Building blocks

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    func mapped(_ kernel: UnaryKernel) -> Storage<Scalar> {
        let s = Storage<Scalar>.make(count: count)
        unaryKernel(kernel, storage.base, s.base, count)
        return s
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    func unary(_ kernel: UnaryKernel, _ name: String, _ backward: @escaping Backward) -> Tensor {
        Tensor.result(shape, mapped(kernel), name, self, backward)
    }

    /// A constant (no history) computed elementwise.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    func constant(_ kernel: UnaryKernel) -> Tensor {
        Tensor(shape: shape, storage: mapped(kernel))
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    func scalarOp(_ kernel: ScalarKernel, _ c: Scalar, _ name: String, _ backward: @escaping Backward) -> Tensor {
        let s = Storage<Scalar>.make(count: count)
        scalarKernel(kernel, storage.base, c, s.base, count)
        return Tensor.result(shape, s, name, self, backward)
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    func constant(_ kernel: ScalarKernel, _ c: Scalar) -> Tensor {
        let s = Storage<Scalar>.make(count: count)
        scalarKernel(kernel, storage.base, c, s.base, count)
        return Tensor(shape: shape, storage: s)
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    static func plan(_ a: Tensor, _ b: Tensor, _ name: String) throws -> BroadcastPlan {
        if a.shape == b.shape { return BroadcastPlan(sameShape: a.shape) }
        guard let p = BroadcastPlan(a.shape, b.shape) else { throw TensorError.shape(name, a.shape, b.shape) }
        return p
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    static func binaryStorage(_ kernel: BinaryKernel, _ a: Tensor, _ b: Tensor, _ name: String) throws -> (BroadcastPlan, Storage<Scalar>) {
        let p = try plan(a, b, name)
        let s = Storage<Scalar>.make(count: p.count)
        binaryKernel(kernel, p, a.storage.base, b.storage.base, s.base)
        return (p, s)
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    /// A constant (no history) from a binary kernel, e.g. a fused first-order backward.
    static func fused(_ kernel: BinaryKernel, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        let (p, s) = try binaryStorage(kernel, a, b, "fused")
        return Tensor(shape: p.outputShape, storage: s)
    }

    static func binary(_ kernel: BinaryKernel, _ a: Tensor, _ b: Tensor, _ name: String,
                       _ backward: @escaping Backward) throws -> Tensor {
        let (p, s) = try binaryStorage(kernel, a, b, name)
        return result(p.outputShape, s, name, [a, b], backward)
    }

    // MARK: Arithmetic with broadcasting

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func + (a: Tensor, b: Tensor) throws -> Tensor {
        try binary(.add, a, b, "add") { g, y, needs in
            let a = y.inputs[0], b = y.inputs[1]
            return [needs[0] ? try g.sum(toShape: a.shape) : nil,
                    needs[1] ? try g.sum(toShape: b.shape) : nil]
        }
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func - (a: Tensor, b: Tensor) throws -> Tensor {
        try binary(.sub, a, b, "sub") { g, y, needs in
            let a = y.inputs[0], b = y.inputs[1]
            // Negated after the sum: the same values, on the smaller shape when b is broadcast.
            return [needs[0] ? try g.sum(toShape: a.shape) : nil,
                    needs[1] ? -(try g.sum(toShape: b.shape)) : nil]
        }
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func * (a: Tensor, b: Tensor) throws -> Tensor {
        try binary(.mul, a, b, "mul") { g, y, needs in
            let a = y.inputs[0], b = y.inputs[1]
            return [needs[0] ? try productSum(g, b, toShape: a.shape) : nil,
                    needs[1] ? try productSum(g, a, toShape: b.shape) : nil]
        }
    }

    /// `(a * b).sum(toShape: target)` as one operation when `a` and `b` have the same shape and
    /// the summed axes are adjacent (the backward of a broadcast product), without writing the
    /// full product.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    static func productSum(_ a: Tensor, _ b: Tensor, toShape target: [Int]) throws -> Tensor {
        if target == a.shape || a.shape != b.shape || target.count > a.rank { return try (a * b).sum(toShape: target) }
        let lead = a.rank - target.count
        var axes = Array(0..<lead)
        for (k, t) in target.enumerated() where t != a.shape[lead + k] {
            guard t == 1 else { throw TensorError.shape("sumToShape", a.shape, target) }
            axes.append(lead + k)
        }
        guard let lo = axes.first, let hi = axes.last, hi - lo + 1 == axes.count else {
            return try (a * b).sum(toShape: target)
        }
        let outer = a.shape[..<lo].reduce(1, *)
        let length = a.shape[lo...hi].reduce(1, *)
        let inner = a.shape[(hi + 1)...].reduce(1, *)
        let s = Storage<Scalar>.make(count: outer * inner)
        productSumKernel(a.storage.base, b.storage.base, s.base, outer: outer, length: length, inner: inner)
        var kept = a.shape
        for k in axes { kept[k] = 1 }
        return result(target, s, "productSum", [a, b]) { g, y, needs in
            let a = y.inputs[0], b = y.inputs[1]
            let spread = try g.reshaped(kept)
            return [needs[0] ? try spread * b : nil, needs[1] ? try spread * a : nil]
        }
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func / (a: Tensor, b: Tensor) throws -> Tensor {
        try binary(.div, a, b, "div") { g, y, needs in
            let a = y.inputs[0], b = y.inputs[1]
            // d(a/b)/db = −y/b: one quotient g/b serves both gradients, and the negation
            // follows the sum (the smaller shape when b is broadcast).
            let quotient = try g / b
            let gb: Tensor? = needs[1] ? -(try (quotient * y).sum(toShape: b.shape)) : nil
            return [needs[0] ? try quotient.sum(toShape: a.shape) : nil, gb]
        }
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static prefix func - (x: Tensor) -> Tensor {
        x.unary(.neg, "neg") { g, _, _ in [-g] }
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func + (x: Tensor, c: Scalar) -> Tensor {
        x.scalarOp(.add, c, "addScalar") { g, _, _ in [g] }
    }
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func + (c: Scalar, x: Tensor) -> Tensor { x + c }
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func - (x: Tensor, c: Scalar) -> Tensor { x + (-c) }
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func - (c: Scalar, x: Tensor) -> Tensor {
        x.scalarOp(.rsub, c, "rsubScalar") { g, _, _ in [-g] }
    }
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func * (x: Tensor, c: Scalar) -> Tensor {
        x.scalarOp(.mul, c, "mulScalar") { g, _, _ in [g * c] }
    }
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func * (c: Scalar, x: Tensor) -> Tensor { x * c }
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func / (x: Tensor, c: Scalar) -> Tensor { x * (1 / c) }
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func / (c: Scalar, x: Tensor) -> Tensor {
        x.scalarOp(.rdiv, c, "rdivScalar") { g, y, _ in
            // d(c/x)/dx = -c/x² = -y/x
            [try -(g * y) / y.inputs[0]]
        }
    }

    /// Elementwise `x^p` for a constant exponent (x > 0 unless p is a small integer).
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func pow(_ p: Scalar) -> Tensor {
        scalarOp(.pow, p, "pow") { g, y, _ in
            let x = y.inputs[0]
            if p == 2 { return [try g * x * 2] }
            return [try g * x.pow(p - 1) * p]
        }
    }

    // MARK: Elementwise functions

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func exp() -> Tensor {
        unary(.exp, "exp") { g, y, _ in [try g * y] }
    }

    /// `exp(−γ x²)` elementwise, the Gaussian of a radial basis: one pass instead of a square,
    /// a scale and `exp`, each written out and differentiated again in a training step. The
    /// values are those of that composition.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func gaussian(gamma: Scalar) -> Tensor {
        scalarOp(.gaussian, -gamma, "gaussian") { g, y, _ in [try g * y * (y.inputs[0] * (-2 * gamma))] }
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func log() -> Tensor {
        unary(.log, "log") { g, y, _ in [try g / y.inputs[0]] }
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func sqrt() -> Tensor {
        unary(.sqrt, "sqrt") { g, y, _ in [try g / (y * 2)] }
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func sin() -> Tensor {
        unary(.sin, "sin") { g, y, _ in [try g * y.inputs[0].cos()] }
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func cos() -> Tensor {
        unary(.cos, "cos") { g, y, _ in [try -(g * y.inputs[0].sin())] }
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func tanh() -> Tensor {
        unary(.tanh, "tanh") { g, y, _ in [try g * (1 - y * y)] }
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func square() -> Tensor {
        unary(.square, "square") { g, y, _ in [try g * y.inputs[0] * 2] }
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func reciprocal() -> Tensor {
        unary(.reciprocal, "reciprocal") { g, y, _ in [try -(g * y * y)] }
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func abs() -> Tensor {
        unary(.abs, "abs") { g, y, _ in [try g * y.inputs[0].constant(.signum)] }
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func sigmoid() -> Tensor {
        unary(.sigmoid, "sigmoid") { g, y, _ in [try Tensor.sigmoidGradient(y.inputs[0], g)] }
    }

    /// `x * sigmoid(x)`.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func silu() -> Tensor {
        unary(.silu, "silu") { g, y, _ in [try Tensor.siluGradient(y.inputs[0], g)] }
    }

    /// The values of a fused `g · f′(x)`: one pass when the shapes agree, the broadcasting
    /// binary kernel otherwise.
    private static func fusedGradientStorage(_ kernel: GradientKernel, _ broadcastOp: BinaryKernel, _ x: Tensor, _ g: Tensor,
                                             _ name: String) throws -> ([Int], Storage<Scalar>) {
        if x.shape == g.shape {
            let s = Storage<Scalar>.make(count: x.count)
            gradientKernel(kernel, x.storage.base, g.storage.base, s.base, x.count)
            return (x.shape, s)
        }
        let (p, b) = try binaryStorage(broadcastOp, x, g, name)
        return (p.outputShape, b)
    }

    /// The backward of `g · f′(x)` in one pass over same-shape tensors, when no graph is
    /// recorded: `[gOut · g · f″(x), gOut · f′(x)]` (nil where not needed), or nil to fall back
    /// to the composed form for broadcast shapes.
    private static func fusedSecondOrder(_ kernel: GradientKernel, _ x: Tensor, _ g: Tensor, _ gOut: Tensor,
                                         _ needs: InputMask) -> [Tensor?]? {
        guard x.shape == g.shape, gOut.shape == x.shape else { return nil }
        let gx = needs[0] ? Storage<Scalar>.make(count: x.count) : nil
        let gg = needs[1] ? Storage<Scalar>.make(count: x.count) : nil
        secondOrderGradientKernel(kernel, x.storage.base, g.storage.base, gOut.storage.base, gx?.base, gg?.base, x.count)
        return [gx.map { Tensor(shape: x.shape, storage: $0) }, gg.map { Tensor(shape: x.shape, storage: $0) }]
    }

    /// `g · silu′(x)` in one pass: the backward of ``silu()``, itself differentiable in `x` and `g`
    /// (its own backward needs `silu″`, composed from operations when a graph is recorded).
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func siluGradient(_ x: Tensor, _ g: Tensor) throws -> Tensor {
        let (shape, s) = try fusedGradientStorage(.silu, .siluBackward, x, g, "siluGradient")
        return result(shape, s, "siluGradient", [x, g]) { gOut, y, needs in
            let x = y.inputs[0], g = y.inputs[1]
            if !GradMode.recording, let fused = fusedSecondOrder(.silu, x, g, gOut, needs) { return fused }
            var gx: Tensor? = nil
            if needs[0] {
                let second: Tensor
                if GradMode.recording {
                    let s = x.sigmoid()
                    second = try s * (1 - s) * (try x * (1 - 2 * s) + 2)   // silu″ = s(1−s)(2 + x(1−2s))
                } else {
                    second = x.constant(.siluSecondDerivative)
                }
                gx = try (gOut * g * second).sum(toShape: x.shape)
            }
            let gg: Tensor? = needs[1] ? try siluGradient(x, gOut).sum(toShape: g.shape) : nil
            return [gx, gg]
        }
    }

    /// `g · sigmoid′(x)` in one pass: the backward of ``sigmoid()``, itself differentiable.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func sigmoidGradient(_ x: Tensor, _ g: Tensor) throws -> Tensor {
        let (shape, s) = try fusedGradientStorage(.sigmoid, .sigmoidBackward, x, g, "sigmoidGradient")
        return result(shape, s, "sigmoidGradient", [x, g]) { gOut, y, needs in
            let x = y.inputs[0], g = y.inputs[1]
            if !GradMode.recording, let fused = fusedSecondOrder(.sigmoid, x, g, gOut, needs) { return fused }
            var gx: Tensor? = nil
            if needs[0] {
                let second: Tensor
                if GradMode.recording {
                    let s = x.sigmoid()
                    second = try s * (1 - s) * (1 - 2 * s)                  // sigmoid″ = s(1−s)(1−2s)
                } else {
                    second = x.constant(.sigmoidSecondDerivative)
                }
                gx = try (gOut * g * second).sum(toShape: x.shape)
            }
            let gg: Tensor? = needs[1] ? try sigmoidGradient(x, gOut).sum(toShape: g.shape) : nil
            return [gx, gg]
        }
    }

    /// `log(1 + exp(x))`, computed without overflow.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func softplus() -> Tensor {
        unary(.softplus, "softplus") { g, y, _ in [try g * y.inputs[0].sigmoid()] }
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func relu() -> Tensor {
        unary(.relu, "relu") { g, y, _ in [try g * y.inputs[0].constant(.reluMask)] }
    }

    /// Values clamped into `[lower, upper]`; the gradient is zero where clamping happened.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func clamped(min lower: Scalar = -.infinity, max upper: Scalar = .infinity) -> Tensor {
        let s = Storage<Scalar>.make(count: count)
        scalarKernel(.clampMin, storage.base, lower, s.base, count)
        scalarKernel(.clampMax, s.base, upper, s.base, count)
        return Tensor.result(shape, s, "clamp", self) { g, y, _ in
            let x = y.inputs[0]
            let inside = try x.constant(.greaterEqual, lower) * x.constant(.lessEqual, upper)
            return [try g * inside]
        }
    }

    // MARK: Masks (constants, no gradient)

    /// 1 where `x > c`, else 0.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func greater(than c: Scalar) -> Tensor { constant(.greater, c) }
    /// 1 where `x < c`, else 0.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func less(than c: Scalar) -> Tensor { constant(.less, c) }
    /// 1 where `x >= c`, else 0.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func greaterOrEqual(to c: Scalar) -> Tensor { constant(.greaterEqual, c) }
    /// 1 where `x <= c`, else 0.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func lessOrEqual(to c: Scalar) -> Tensor { constant(.lessEqual, c) }
    /// 1 where `x == c`, else 0.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func equal(to c: Scalar) -> Tensor { constant(.equal, c) }
    /// 1 where `a > b` (broadcast), else 0.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func greater(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        let (p, s) = try binaryStorage(.greater, a, b, "greater")
        return Tensor(shape: p.outputShape, storage: s)
    }
    /// 1 where `a == b` (broadcast), else 0.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func equal(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        let (p, s) = try binaryStorage(.equal, a, b, "equal")
        return Tensor(shape: p.outputShape, storage: s)
    }

    /// `a / b` where `b != 0`, and 0 where `b == 0` (norms of zero vectors have zero gradient).
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func divideOrZero(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try binary(.divOrZero, a, b, "divideOrZero") { g, y, needs in
            let a = y.inputs[0], b = y.inputs[1]
            let gb: Tensor? = needs[1] ? try (-Tensor.divideOrZero(g * y, b)).sum(toShape: b.shape) : nil
            return [needs[0] ? try Tensor.divideOrZero(g, b).sum(toShape: a.shape) : nil, gb]
        }
    }
}

/// `condition != 0 ? a : b`, broadcasting all three; `condition` is a constant.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func select<T: TensorScalar>(_ condition: Tensor<T>, _ a: Tensor<T>, _ b: Tensor<T>) throws -> Tensor<T> {
    try Tensor.select(condition, a, b)
}

extension Tensor {
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func select(_ condition: Tensor, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        guard let p1 = BroadcastPlan(a.shape, b.shape),
              let p = BroadcastPlan(condition.shape, p1.outputShape) else {
            throw TensorError.shape("select", condition.shape, a.shape, b.shape)
        }
        let shape = p.outputShape
        let c = condition.shape == shape ? condition : try condition.detached().expanded(to: shape)
        let ae = a.shape == shape ? a.detached() : try a.detached().expanded(to: shape)
        let be = b.shape == shape ? b.detached() : try b.detached().expanded(to: shape)
        let s = Storage<Scalar>.make(count: p.count)
        selectKernel(c.storage.base, ae.storage.base, be.storage.base, s.base, p.count)
        let cond = condition.detached()
        return result(shape, s, "select", [a, b]) { g, y, needs in
            let a = y.inputs[0], b = y.inputs[1]
            let zero = Tensor(0)
            return [needs[0] ? try Tensor.select(cond, g, zero).sum(toShape: a.shape) : nil,
                    needs[1] ? try Tensor.select(cond, zero, g).sum(toShape: b.shape) : nil]
        }
    }
}
