// Element loops. Each kernel is generic but pre-specialised for Float and Double: a call from
// generic code dispatches to the specialised body, so the inner loops run on concrete types.

enum UnaryKernel {
    case neg, exp, log, sqrt, sin, cos, sigmoid, silu, softplus, relu, square, reciprocal, tanh, abs
    // Fused derivatives used by first-order backward passes (no graph to build).
    case siluDerivative, sigmoidDerivative, siluSecondDerivative, sigmoidSecondDerivative, reluMask, signum
}

@inline(__always)
func sigmoidScalar<T: TensorScalar>(_ x: T) -> T {
    // Evaluated on the side where exp cannot overflow; written without a branch so that loops
    // over it vectorise.
    let e = T.tensorExp(-Swift.abs(x))
    let inverse = 1 / (1 + e)
    return x >= 0 ? inverse : e * inverse
}

// The element function is applied inside the function that switches on the operation, so that
// it is inlined into the loop and the loop vectorises; passing it through the chunking closure
// left larger ones (SiLU and its derivatives) as one indirect call per element.
@inline(__always)
func mapRange<T: TensorScalar>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ r: Range<Int>, _ f: (T) -> T) {
    for i in r { y[i] = f(x[i]) }
}

@_specialize(where T == Float)
@_specialize(where T == Double)
func unaryKernel<T: TensorScalar>(_ op: UnaryKernel, _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ n: Int) {
    ParallelLoop.forChunks(n, work: n * 8) { r in unaryRange(op, x, y, r) }
}

@_specialize(where T == Float)
@_specialize(where T == Double)
func unaryRange<T: TensorScalar>(_ op: UnaryKernel, _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ r: Range<Int>) {
    switch op {
    case .neg: mapRange(x, y, r) { -$0 }
    case .exp: mapRange(x, y, r) { T.tensorExp($0) }
    case .log: mapRange(x, y, r) { T.tensorLog($0) }
    case .sqrt: mapRange(x, y, r) { $0.squareRoot() }
    case .sin: mapRange(x, y, r) { T.tensorSin($0) }
    case .cos: mapRange(x, y, r) { T.tensorCos($0) }
    case .tanh: mapRange(x, y, r) { T.tensorTanh($0) }
    case .sigmoid: mapRange(x, y, r) { sigmoidScalar($0) }
    case .silu: mapRange(x, y, r) { $0 * sigmoidScalar($0) }
    case .softplus: mapRange(x, y, r) { v in
        // log(1 + e^v) without overflow: max(v, 0) + log1p(e^-|v|).
        Swift.max(v, 0) + T.tensorLog1p(T.tensorExp(-Swift.abs(v)))
    }
    case .relu: mapRange(x, y, r) { Swift.max($0, 0) }
    case .square: mapRange(x, y, r) { $0 * $0 }
    case .reciprocal: mapRange(x, y, r) { 1 / $0 }
    case .abs: mapRange(x, y, r) { Swift.abs($0) }
    case .siluDerivative: mapRange(x, y, r) { v in
        let s = sigmoidScalar(v)
        return s * (1 + v * (1 - s))
    }
    case .sigmoidDerivative: mapRange(x, y, r) { v in
        let s = sigmoidScalar(v)
        return s * (1 - s)
    }
    case .siluSecondDerivative: mapRange(x, y, r) { v in
        let s = sigmoidScalar(v)
        return s * (1 - s) * (2 + v * (1 - 2 * s))
    }
    case .sigmoidSecondDerivative: mapRange(x, y, r) { v in
        let s = sigmoidScalar(v)
        return s * (1 - s) * (1 - 2 * s)
    }
    case .reluMask: mapRange(x, y, r) { $0 > 0 ? 1 : 0 }
    case .signum: mapRange(x, y, r) { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) }
    }
}

enum ScalarKernel {
    case add, mul, rsub, rdiv, pow, clampMin, clampMax, greater, less, greaterEqual, lessEqual, equal
    /// `exp(x² · c)`: with c = −γ, a Gaussian of a radial basis.
    case gaussian
}

@_specialize(where T == Float)
@_specialize(where T == Double)
func scalarKernel<T: TensorScalar>(_ op: ScalarKernel, _ x: UnsafePointer<T>, _ c: T, _ y: UnsafeMutablePointer<T>, _ n: Int) {
    ParallelLoop.forChunks(n, work: n * 8) { r in scalarRange(op, x, c, y, r) }
}

@_specialize(where T == Float)
@_specialize(where T == Double)
func scalarRange<T: TensorScalar>(_ op: ScalarKernel, _ x: UnsafePointer<T>, _ c: T, _ y: UnsafeMutablePointer<T>, _ r: Range<Int>) {
    switch op {
    case .add: mapRange(x, y, r) { $0 + c }
    case .mul: mapRange(x, y, r) { $0 * c }
    case .rsub: mapRange(x, y, r) { c - $0 }
    case .rdiv: mapRange(x, y, r) { c / $0 }
    case .pow:
        if c == 2 { mapRange(x, y, r) { $0 * $0 } }
        else if c == 3 { mapRange(x, y, r) { $0 * $0 * $0 } }
        else if c == 0.5 { mapRange(x, y, r) { $0.squareRoot() } }
        else { mapRange(x, y, r) { T.tensorExp(c * T.tensorLog($0)) } }
    case .clampMin: mapRange(x, y, r) { Swift.max($0, c) }
    case .clampMax: mapRange(x, y, r) { Swift.min($0, c) }
    case .greater: mapRange(x, y, r) { $0 > c ? 1 : 0 }
    case .less: mapRange(x, y, r) { $0 < c ? 1 : 0 }
    case .greaterEqual: mapRange(x, y, r) { $0 >= c ? 1 : 0 }
    case .lessEqual: mapRange(x, y, r) { $0 <= c ? 1 : 0 }
    case .equal: mapRange(x, y, r) { $0 == c ? 1 : 0 }
    case .gaussian: mapRange(x, y, r) { T.tensorExp($0 * $0 * c) }
    }
}

/// Calls `body` with `count`, passed as a literal for the channel counts ENINet's small
/// configurations use, so that after inlining their loops have a fixed trip count and are
/// unrolled and vectorised; LLVM's vector loops start at 8 or 16 elements and leave
/// 4-channel rows (the triplet features of the reference 'small' network) to scalar code.
@inline(__always)
func withChannelCount<R>(_ count: Int, _ body: (Int) -> R) -> R {
    switch count {
    case 4: return body(4)
    case 8: return body(8)
    default: return body(count)
    }
}

/// `body(flag)` with `flag` a literal in each copy, so that the loops it inlines into test it
/// once, not per row or per step (the GEMM kernels' accumulate and width flags).
@inline(__always)
func withLiteral(_ flag: Bool, _ body: (Bool) -> Void) {
    if flag { body(true) } else { body(false) }
}

/// How two shapes broadcast: the output shape and, after merging axes that can be walked as
/// one, the sizes and element strides of each input (stride 0 on a broadcast axis).
struct BroadcastPlan {
    var outputShape: [Int]
    var sizes: [Int] = []
    var stridesA: [Int] = []
    var stridesB: [Int] = []
    var count: Int

    /// The plan for `a` against `b`, nil when they do not broadcast. The strides live in stack
    /// scratch space and the axis arrays are reserved up front: padded copies of the shapes and
    /// growing arrays cost about a dozen allocations per plan, and a training step makes
    /// thousands of plans.
    init?(_ a: [Int], _ b: [Int]) {
        let rank = Swift.max(a.count, b.count)
        let padA = rank - a.count, padB = rank - b.count
        @inline(__always) func sizeA(_ i: Int) -> Int { i < padA ? 1 : a[i - padA] }
        @inline(__always) func sizeB(_ i: Int) -> Int { i < padB ? 1 : b[i - padB] }
        @inline(__always) func outputSize(_ i: Int) -> Int { let x = sizeA(i), y = sizeB(i); return x == 1 ? y : x }
        // The output is usually one of the inputs' shapes (`[rows, 4]` against `[rows, 1]`):
        // that array is shared, not built anew.
        var outputIsA = a.count == rank, outputIsB = b.count == rank
        for i in 0..<rank {
            let x = sizeA(i), y = sizeB(i), o = outputSize(i)
            guard x == y || x == 1 || y == 1 else { return nil }
            if o != x { outputIsA = false }
            if o != y { outputIsB = false }
        }
        let out = outputIsA ? a : outputIsB ? b : (0..<rank).map(outputSize)
        outputShape = out
        count = out.reduce(1, *)
        var sizes = [Int](), stridesA = [Int](), stridesB = [Int]()
        sizes.reserveCapacity(rank)
        stridesA.reserveCapacity(rank)
        stridesB.reserveCapacity(rank)
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 2 * rank) { strides in
            // Each input's stride per output axis, 0 where it is broadcast.
            var accA = 1, accB = 1
            for i in stride(from: rank - 1, through: 0, by: -1) {
                let x = sizeA(i), y = sizeB(i)
                strides[2 * i] = x == 1 ? 0 : accA
                strides[2 * i + 1] = y == 1 ? 0 : accB
                accA *= x
                accB *= y
            }
            // Merge axis i into the next inner one when both inputs step through them contiguously.
            for i in 0..<rank where out[i] != 1 {
                let sa = strides[2 * i], sb = strides[2 * i + 1]
                if let last = sizes.indices.last, stridesA[last] == sa * out[i], stridesB[last] == sb * out[i] {
                    sizes[last] *= out[i]
                    stridesA[last] = sa
                    stridesB[last] = sb
                } else {
                    sizes.append(out[i]); stridesA.append(sa); stridesB.append(sb)
                }
            }
        }
        if sizes.isEmpty { sizes = [1]; stridesA = [0]; stridesB = [0] }
        self.sizes = sizes
        self.stridesA = stridesA
        self.stridesB = stridesB
    }
}

/// Calls `body(row, offsetA, offsetB)` for each row in `rows` of a row-major loop nest whose
/// last axis is the row itself; the offsets are each operand's element offset at the row's start.
/// One outer axis needs one multiply per row; deeper nests keep an odometer in a raw buffer,
/// because an array there paid uniqueness checks on every (often short) row.
@inline(__always)
func walkRows(_ rows: Range<Int>, sizes: UnsafeBufferPointer<Int>,
              stridesA: UnsafeBufferPointer<Int>, stridesB: UnsafeBufferPointer<Int>,
              _ body: (_ row: Int, _ offsetA: Int, _ offsetB: Int) -> Void) {
    let outerRank = sizes.count - 1
    if outerRank <= 1 {
        let sA = outerRank == 1 ? stridesA[0] : 0, sB = outerRank == 1 ? stridesB[0] : 0
        for row in rows { body(row, row * sA, row * sB) }
        return
    }
    let index = UnsafeMutablePointer<Int>.allocate(capacity: outerRank)
    defer { index.deallocate() }
    var offA = 0, offB = 0
    var rem = rows.lowerBound
    for d in stride(from: outerRank - 1, through: 0, by: -1) {
        index[d] = rem % sizes[d]
        rem /= sizes[d]
        offA += index[d] * stridesA[d]
        offB += index[d] * stridesB[d]
    }
    for row in rows {
        body(row, offA, offB)
        var d = outerRank - 1
        while d >= 0 {
            index[d] += 1
            offA += stridesA[d]
            offB += stridesB[d]
            if index[d] < sizes[d] { break }
            offA -= stridesA[d] * sizes[d]
            offB -= stridesB[d] * sizes[d]
            index[d] = 0
            d -= 1
        }
    }
}

@inline(__always)
func broadcastLoop<T: TensorScalar, Op: ElementOperation>(
    _: Op.Type, _ plan: BroadcastPlan, _ a: UnsafePointer<T>, _ b: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>
) {
    @inline(__always) func f(_ x: T, _ z: T) -> T { Op.apply(x, z) }
    let n = plan.count
    let rank = plan.sizes.count
    let inner = plan.sizes[rank - 1]
    let ia = plan.stridesA[rank - 1], ib = plan.stridesB[rank - 1]
    @inline(__always) func rowLoop(_ yr: UnsafeMutablePointer<T>, _ ar: UnsafePointer<T>, _ br: UnsafePointer<T>,
                                   _ count: Int) {
        if ia == 1 && ib == 1 { for i in 0..<count { yr[i] = f(ar[i], br[i]) } }
        else if ia == 1 && ib == 0 { let bv = br[0]; for i in 0..<count { yr[i] = f(ar[i], bv) } }
        else if ia == 0 && ib == 1 { let av = ar[0]; for i in 0..<count { yr[i] = f(av, br[i]) } }
        // Both operands constant along the row (a broadcast copy of one value per row, the
        // backward of a sum): one value filled in, not an offset product and its overflow
        // check per element.
        else if ia == 0 && ib == 0 { let v = f(ar[0], br[0]); for i in 0..<count { yr[i] = v } }
        else { for i in 0..<count { yr[i] = f(ar[i * ia], br[i * ib]) } }
    }
    if rank == 2 {
        // One outer axis (a matrix against a row, a column or a matrix): rows of a literal
        // length where there is one, offsets without overflow checks. Through `walkRows` each
        // short row paid an offset product, an overflow check and a branch (`[rows, 4]` against
        // `[rows, 1]`, triplet features and their cutoffs: the largest item of a training step).
        let rows = plan.sizes[0], rowA = plan.stridesA[0], rowB = plan.stridesB[0]
        if Op.hasLaneForm && inner == 4 && ((ia == 1 && ib == 0 && rowA == 4 && rowB == 1) || (ia == 0 && ib == 1 && rowA == 1 && rowB == 4)) {
            let perRowFirst = ia == 0
            ParallelLoop.forChunks(rows, work: n) { r in
                if perRowFirst { fourWideRowPairs(Op.self, r, a, b, y, perRowFirst: true) }
                else { fourWideRowPairs(Op.self, r, b, a, y, perRowFirst: false) }
            }
            return
        }
        ParallelLoop.forChunks(rows, work: n) { r in
            withChannelCount(inner) { inner in
                for row in r { rowLoop(y + row &* inner, a + row &* rowA, b + row &* rowB, inner) }
            }
        }
        return
    }
    if rank == 1 {
        // One long row: split it into chunks instead of splitting rows.
        ParallelLoop.forChunks(n, work: n) { r in
            let start = r.lowerBound
            rowLoop(y + start, a + start * ia, b + start * ib, r.count)
        }
        return
    }
    plan.sizes.withUnsafeBufferPointer { sizes in
    plan.stridesA.withUnsafeBufferPointer { sA in
    plan.stridesB.withUnsafeBufferPointer { sB in
        if rank >= 3 && inner <= 8 {
            // Short rows (4 channels): walk blocks of the last two axes instead, so that the
            // per-row bookkeeping is paid once per block and the rows have a literal length.
            let mid = sizes[rank - 2], ma = sA[rank - 2], mb = sB[rank - 2]
            let block = mid * inner
            let outer = rank - 1
            ParallelLoop.forChunks(n / block, work: n) { r in
                walkRows(r, sizes: UnsafeBufferPointer(rebasing: sizes[..<outer]),
                         stridesA: UnsafeBufferPointer(rebasing: sA[..<outer]),
                         stridesB: UnsafeBufferPointer(rebasing: sB[..<outer])) { blockIndex, offA, offB in
                    let yb = y + blockIndex * block, ab = a + offA, bb = b + offB
                    withChannelCount(inner) { inner in
                        for j in 0..<mid { rowLoop(yb + j * inner, ab + j * ma, bb + j * mb, inner) }
                    }
                }
            }
            return
        }
        ParallelLoop.forChunks(n / inner, work: n) { r in
            withChannelCount(inner) { inner in
                walkRows(r, sizes: sizes, stridesA: sA, stridesB: sB) { row, offA, offB in
                    rowLoop(y + row * inner, a + offA, b + offB, inner)
                }
            }
        }
    }}}
}

/// Rows of four against one value per row (triplet features and their cutoffs), two rows to
/// an eight-lane operation: written row by row, LLVM could not tell the output from the
/// inputs and kept four scalar operations and stores per row, about twice this loop's time.
@inline(__always)
func fourWideRowPairs<T: TensorScalar, Op: ElementOperation>(
    _: Op.Type, _ rows: Range<Int>, _ perRow: UnsafePointer<T>, _ wide: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>,
    perRowFirst: Bool
) {
    var r = rows.lowerBound
    while r + 2 <= rows.upperBound {
        let x = lanes(wide + 4 * r)
        let s = SIMD8(lowHalf: SIMD4(repeating: perRow[r]), highHalf: SIMD4(repeating: perRow[r + 1]))
        let z = perRowFirst ? Op.apply(lanes: s, x) : Op.apply(lanes: x, s)
        setLanes(y + 4 * r, z)
        r += 2
    }
    if r < rows.upperBound {
        for i in 0..<4 { y[4 * r + i] = perRowFirst ? Op.apply(perRow[r], wide[4 * r + i]) : Op.apply(wide[4 * r + i], perRow[r]) }
    }
}

enum BinaryKernel {
    case add, sub, mul, div, divOrZero, maximum, minimum, greater, equal
    // Fused first-order backwards: a = x, b = incoming gradient.
    case siluBackward, sigmoidBackward
}

@_specialize(where T == Float)
@_specialize(where T == Double)
func binaryKernel<T: TensorScalar>(_ op: BinaryKernel, _ plan: BroadcastPlan,
                                   _ a: UnsafePointer<T>, _ b: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>) {
    switch op {
    case .add: broadcastLoop(Add.self, plan, a, b, y)
    case .sub: broadcastLoop(Subtract.self, plan, a, b, y)
    case .mul: broadcastLoop(Multiply.self, plan, a, b, y)
    case .div: broadcastLoop(Divide.self, plan, a, b, y)
    case .divOrZero: broadcastLoop(DivideOrZero.self, plan, a, b, y)
    case .maximum: broadcastLoop(Maximum.self, plan, a, b, y)
    case .minimum: broadcastLoop(Minimum.self, plan, a, b, y)
    case .greater: broadcastLoop(Greater.self, plan, a, b, y)
    case .equal: broadcastLoop(Equal.self, plan, a, b, y)
    case .siluBackward: broadcastLoop(SiLUBackward.self, plan, a, b, y)
    case .sigmoidBackward: broadcastLoop(SigmoidBackward.self, plan, a, b, y)
    }
}

/// An element function of two operands, as a type: a closure passed into the broadcasting loop
/// stayed an indirect call per element in the chunks that run on other threads, where a type's
/// static function is specialised and inlined into every chunk.
protocol ElementOperation {
    static func apply<T: TensorScalar>(_ a: T, _ b: T) -> T
    /// Whether ``apply(lanes:_:)`` is one vector instruction (else it is never called).
    static var hasLaneForm: Bool { get }
    static func apply<T: TensorScalar>(lanes a: SIMD8<T>, _ b: SIMD8<T>) -> SIMD8<T>
}
extension ElementOperation {
    @inline(__always) static var hasLaneForm: Bool { false }
    @inline(__always) static func apply<T: TensorScalar>(lanes a: SIMD8<T>, _ b: SIMD8<T>) -> SIMD8<T> {
        var y = SIMD8<T>()
        for i in 0..<8 { y[i] = apply(a[i], b[i]) }
        return y
    }
}
enum Add: ElementOperation {
    @inline(__always) static func apply<T: TensorScalar>(_ a: T, _ b: T) -> T { a + b }
    @inline(__always) static var hasLaneForm: Bool { true }
    @inline(__always) static func apply<T: TensorScalar>(lanes a: SIMD8<T>, _ b: SIMD8<T>) -> SIMD8<T> { a + b }
}
enum Subtract: ElementOperation {
    @inline(__always) static func apply<T: TensorScalar>(_ a: T, _ b: T) -> T { a - b }
    @inline(__always) static var hasLaneForm: Bool { true }
    @inline(__always) static func apply<T: TensorScalar>(lanes a: SIMD8<T>, _ b: SIMD8<T>) -> SIMD8<T> { a - b }
}
enum Multiply: ElementOperation {
    @inline(__always) static func apply<T: TensorScalar>(_ a: T, _ b: T) -> T { a * b }
    @inline(__always) static var hasLaneForm: Bool { true }
    @inline(__always) static func apply<T: TensorScalar>(lanes a: SIMD8<T>, _ b: SIMD8<T>) -> SIMD8<T> { a * b }
}
enum Divide: ElementOperation {
    @inline(__always) static func apply<T: TensorScalar>(_ a: T, _ b: T) -> T { a / b }
    @inline(__always) static var hasLaneForm: Bool { true }
    @inline(__always) static func apply<T: TensorScalar>(lanes a: SIMD8<T>, _ b: SIMD8<T>) -> SIMD8<T> { a / b }
}
enum DivideOrZero: ElementOperation {
    @inline(__always) static func apply<T: TensorScalar>(_ a: T, _ b: T) -> T { b == 0 ? 0 : a / b }
}
enum Maximum: ElementOperation { @inline(__always) static func apply<T: TensorScalar>(_ a: T, _ b: T) -> T { Swift.max(a, b) } }
enum Minimum: ElementOperation { @inline(__always) static func apply<T: TensorScalar>(_ a: T, _ b: T) -> T { Swift.min(a, b) } }
enum Greater: ElementOperation { @inline(__always) static func apply<T: TensorScalar>(_ a: T, _ b: T) -> T { a > b ? 1 : 0 } }
enum Equal: ElementOperation { @inline(__always) static func apply<T: TensorScalar>(_ a: T, _ b: T) -> T { a == b ? 1 : 0 } }
/// `a` is x, `b` the incoming gradient.
enum SiLUBackward: ElementOperation {
    @inline(__always) static func apply<T: TensorScalar>(_ x: T, _ g: T) -> T {
        let s = sigmoidScalar(x)
        return g * s * (1 + x * (1 - s))
    }
}
enum SigmoidBackward: ElementOperation {
    @inline(__always) static func apply<T: TensorScalar>(_ x: T, _ g: T) -> T {
        let s = sigmoidScalar(x)
        return g * s * (1 - s)
    }
}
/// The first operand (a broadcast copy).
enum First: ElementOperation { @inline(__always) static func apply<T: TensorScalar>(_ a: T, _ b: T) -> T { a } }

/// `y = where(c != 0, a, b)` with c, a, b broadcast to the shape of y (broadcast beforehand).
@_specialize(where T == Float)
@_specialize(where T == Double)
func selectKernel<T: TensorScalar>(_ c: UnsafePointer<T>, _ a: UnsafePointer<T>, _ b: UnsafePointer<T>,
                                   _ y: UnsafeMutablePointer<T>, _ n: Int) {
    ParallelLoop.forChunks(n, work: n) { r in
        for i in r { y[i] = c[i] != 0 ? a[i] : b[i] }
    }
}

enum ReduceKernel { case sum, max, min }

/// Reduces the middle axis of `[outer, length, inner]` to `[outer, inner]`.
@_specialize(where T == Float)
@_specialize(where T == Double)
func reduceKernel<T: TensorScalar>(_ op: ReduceKernel, _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>,
                                   outer: Int, length: Int, inner: Int) {
    let work = outer * length * inner
    if inner == 1 {
        ParallelLoop.forChunks(outer, work: work) { r in
            for o in r {
                let row = x + o * length
                switch op {
                case .sum:
                    var s: T = 0
                    for l in 0..<length { s += row[l] }
                    y[o] = s
                case .max:
                    var m = -T.infinity
                    for l in 0..<length { m = Swift.max(m, row[l]) }
                    y[o] = m
                case .min:
                    var m = T.infinity
                    for l in 0..<length { m = Swift.min(m, row[l]) }
                    y[o] = m
                }
            }
        }
        return
    }
    switch op {
    case .sum: reduceRows(Add.self, x, y, outer: outer, length: length, inner: inner, identity: 0)
    case .max: reduceRows(Maximum.self, x, y, outer: outer, length: length, inner: inner, identity: -T.infinity)
    case .min: reduceRows(Minimum.self, x, y, outer: outer, length: length, inner: inner, identity: T.infinity)
    }
}

/// The middle-axis reduction for `inner > 1`. Short rows (a bias gradient over 4 channels)
/// are combined 32 elements at a time into independent partial results in a stack buffer, so
/// that the loop is neither a chain of dependent adds nor a store to `y` per row.
@inline(__always)
func reduceRows<T: TensorScalar, Op: ElementOperation>(_: Op.Type, _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>,
                                                       outer: Int, length: Int, inner: Int, identity: T) {
    @inline(__always) func combine(_ a: T, _ b: T) -> T { Op.apply(a, b) }
    ParallelLoop.forChunks(outer, work: outer * length * inner) { r in
        withChannelCount(inner) { inner in
            let rowsPerBlock = inner < 32 ? 32 / inner : 1
            let block = rowsPerBlock * inner
            withUnsafeTemporaryAllocation(of: T.self, capacity: block) { buffer in
                guard let acc = buffer.baseAddress else { return }
                for o in r {
                    let xo = x + o * length * inner
                    for q in 0..<block { acc[q] = identity }
                    var l = 0
                    while l + rowsPerBlock <= length {
                        let xl = xo + l * inner
                        for q in 0..<block { acc[q] = combine(acc[q], xl[q]) }
                        l += rowsPerBlock
                    }
                    for b in 1..<rowsPerBlock { for i in 0..<inner { acc[i] = combine(acc[i], acc[b * inner + i]) } }
                    while l < length {
                        let xl = xo + l * inner
                        for i in 0..<inner { acc[i] = combine(acc[i], xl[i]) }
                        l += 1
                    }
                    (y + o * inner).update(from: acc, count: inner)
                }
            }
        }
    }
}

/// Copies `count` elements: short rows in a loop, since `update(from:count:)` is a `memmove`
/// call per row (the 4-element rows of triplet features spent 5 % of a training step in such
/// calls, 0.75 % in the loop).
@inline(__always)
func copyRow<T>(_ source: UnsafePointer<T>, to target: UnsafeMutablePointer<T>, count: Int) {
    if count <= 64 {
        for i in 0..<count { target[i] = source[i] }
    } else {
        target.update(from: source, count: count)
    }
}

/// `y[e, :] = x[index[e], :]` for rows of `width` elements.
@_specialize(where T == Float)
@_specialize(where T == Double)
func gatherKernel<T: TensorScalar>(_ x: UnsafePointer<T>, _ index: UnsafePointer<Int32>, _ y: UnsafeMutablePointer<T>,
                                   rows: Int, width: Int) {
    ParallelLoop.forChunks(rows, work: rows * width) { r in
        withChannelCount(width) { width in
            for e in r { copyRow(x + Int(index[e]) * width, to: y + e * width, count: width) }
        }
    }
}

/// `y[index[e], :] += x[e, :]` (y zeroed by the caller). Threads split the columns, so no two
/// threads touch the same element.
@_specialize(where T == Float)
@_specialize(where T == Double)
func scatterAddKernel<T: TensorScalar>(_ x: UnsafePointer<T>, _ index: UnsafePointer<Int32>, _ y: UnsafeMutablePointer<T>,
                                       rows: Int, width: Int) {
    let columnBlocks = width >= 32 ? width / 16 : 1
    ParallelLoop.forChunks(columnBlocks, work: rows * width) { blocks in
        let lo = width * blocks.lowerBound / columnBlocks
        let hi = width * blocks.upperBound / columnBlocks
        for e in 0..<rows {
            let yr = y + Int(index[e]) * width
            let xr = x + e * width
            for i in lo..<hi { yr[i] += xr[i] }
        }
    }
}

/// Copies the block `[outer, length, inner]` of `x` (an axis of size `xLength`, starting at
/// `xStart`) into `y` (an axis of size `yLength`, starting at `yStart`).
@_specialize(where T == Float)
@_specialize(where T == Double)
func blockCopyKernel<T: TensorScalar>(_ x: UnsafePointer<T>, xLength: Int, xStart: Int,
                                      _ y: UnsafeMutablePointer<T>, yLength: Int, yStart: Int,
                                      outer: Int, length: Int, inner: Int) {
    let width = length * inner
    ParallelLoop.forChunks(outer, work: outer * width) { r in
        withChannelCount(width) { width in
            for o in r { copyRow(x + (o * xLength + xStart) * inner, to: y + (o * yLength + yStart) * inner, count: width) }
        }
    }
}

/// `y[o, yStart + l, i] += x[o, l, i]` over `[outer, length, inner]` blocks of `x`.
@_specialize(where T == Float)
@_specialize(where T == Double)
func blockAddKernel<T: TensorScalar>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, yLength: Int, yStart: Int,
                                     outer: Int, length: Int, inner: Int) {
    let width = length * inner
    ParallelLoop.forChunks(outer, work: outer * width) { r in
        for o in r {
            let xo = x + o * width, yo = y + (o * yLength + yStart) * inner
            for q in 0..<width { yo[q] += xo[q] }
        }
    }
}

/// General axis permutation: `y` has shape `shape[perm[i]]`.
@_specialize(where T == Float)
@_specialize(where T == Double)
func permuteKernel<T: TensorScalar>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, shape: [Int], permutation: [Int]) {
    let rank = shape.count
    var inStrides = [Int](repeating: 1, count: rank)
    for d in stride(from: rank - 2, through: 0, by: -1) { inStrides[d] = inStrides[d + 1] * shape[d + 1] }
    let outShape = permutation.map { shape[$0] }
    let strides = permutation.map { inStrides[$0] }
    let n = shape.reduce(1, *)
    guard n > 0 else { return }
    let inner = outShape[rank - 1], innerStride = strides[rank - 1]
    outShape.withUnsafeBufferPointer { sizes in
    strides.withUnsafeBufferPointer { sx in
        walkRows(0..<(n / inner), sizes: sizes, stridesA: sx, stridesB: sx) { row, off, _ in
            let yr = y + row * inner
            for i in 0..<inner { yr[i] = x[off + i * innerStride] }
        }
    }}
}

/// `y += alpha * x` elementwise.
@_specialize(where T == Float)
@_specialize(where T == Double)
func axpyKernel<T: TensorScalar>(_ alpha: T, _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ n: Int) {
    ParallelLoop.forChunks(n, work: n) { r in
        for i in r { y[i] += alpha * x[i] }
    }
}

/// Broadcast copy: `y = a` walked with `plan` (whose b strides are ignored).
@_specialize(where T == Float)
@_specialize(where T == Double)
func broadcastCopyKernel<T: TensorScalar>(_ plan: BroadcastPlan, _ a: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>) {
    broadcastLoop(First.self, plan, a, a, y)
}

enum GradientKernel { case silu, sigmoid }

/// `y = g · f′(x)` for same-shape `x` and `g`, written as plain loops so that they vectorise
/// (a closure this large would not be inlined into the broadcasting loop).
@_specialize(where T == Float)
@_specialize(where T == Double)
func gradientKernel<T: TensorScalar>(_ op: GradientKernel, _ x: UnsafePointer<T>, _ g: UnsafePointer<T>,
                                     _ y: UnsafeMutablePointer<T>, _ n: Int) {
    ParallelLoop.forChunks(n, work: n * 8) { r in
        switch op {
        case .silu:
            for i in r {
                let v = x[i]
                let s = sigmoidScalar(v)
                y[i] = g[i] * s * (1 + v * (1 - s))
            }
        case .sigmoid:
            for i in r {
                let s = sigmoidScalar(x[i])
                y[i] = g[i] * s * (1 - s)
            }
        }
    }
}

/// The backward of `y = g · f′(x)` for same-shape tensors: `gx = gOut · g · f″(x)` and
/// `gg = gOut · f′(x)`, sharing one sigmoid per element; a nil output is skipped.
@_specialize(where T == Float)
@_specialize(where T == Double)
func secondOrderGradientKernel<T: TensorScalar>(_ op: GradientKernel, _ x: UnsafePointer<T>, _ g: UnsafePointer<T>,
                                                _ gOut: UnsafePointer<T>, _ gx: UnsafeMutablePointer<T>?,
                                                _ gg: UnsafeMutablePointer<T>?, _ n: Int) {
    ParallelLoop.forChunks(n, work: n * 16) { r in
        switch (op, gx, gg) {
        case (.silu, let gx?, let gg?):
            for i in r {
                let v = x[i], s = sigmoidScalar(v), d = gOut[i]
                gg[i] = d * s * (1 + v * (1 - s))
                gx[i] = d * g[i] * s * (1 - s) * (2 + v * (1 - 2 * s))
            }
        case (.silu, let gx?, nil):
            for i in r {
                let v = x[i], s = sigmoidScalar(v)
                gx[i] = gOut[i] * g[i] * s * (1 - s) * (2 + v * (1 - 2 * s))
            }
        case (.silu, nil, let gg?):
            for i in r {
                let v = x[i], s = sigmoidScalar(v)
                gg[i] = gOut[i] * s * (1 + v * (1 - s))
            }
        case (.sigmoid, let gx?, let gg?):
            for i in r {
                let s = sigmoidScalar(x[i]), d = gOut[i]
                gg[i] = d * s * (1 - s)
                gx[i] = d * g[i] * s * (1 - s) * (1 - 2 * s)
            }
        case (.sigmoid, let gx?, nil):
            for i in r {
                let s = sigmoidScalar(x[i])
                gx[i] = gOut[i] * g[i] * s * (1 - s) * (1 - 2 * s)
            }
        case (.sigmoid, nil, let gg?):
            for i in r {
                let s = sigmoidScalar(x[i])
                gg[i] = gOut[i] * s * (1 - s)
            }
        case (_, nil, nil):
            break
        }
    }
}

/// `y[o, i] = Σ_l a[o, l, i] · b[o, l, i]`: a product summed over the middle axis of
/// `[outer, length, inner]`, without writing the product.
@_specialize(where T == Float)
@_specialize(where T == Double)
func productSumKernel<T: TensorScalar>(_ a: UnsafePointer<T>, _ b: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>,
                                       outer: Int, length: Int, inner: Int) {
    if inner == 1 {
        // A sum per row (the cutoffs' gradients from triplet features: four channels), of a
        // literal length where there is one.
        ParallelLoop.forChunks(outer, work: outer * length) { r in
            withChannelCount(length) { length in
                for o in r {
                    var s: T = 0
                    let ao = a + o &* length, bo = b + o &* length
                    for l in 0..<length { s += ao[l] * bo[l] }
                    y[o] = s
                }
            }
        }
        return
    }
    ParallelLoop.forChunks(outer, work: outer * length * inner) { r in
        withChannelCount(inner) { inner in
        for o in r {
            let yo = y + o * inner
            for i in 0..<inner { yo[i] = 0 }
            for l in 0..<length {
                let al = a + (o * length + l) * inner, bl = b + (o * length + l) * inner
                for i in 0..<inner { yo[i] += al[i] * bl[i] }
            }
        }
        }
    }
}
