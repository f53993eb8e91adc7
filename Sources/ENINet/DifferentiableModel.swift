import Foundation
import Geometry
import Tensors

/// The network written once in differentiable tensor operations: positions and parameters are
/// tensors, so forces come from `grad(of: energy, wrt: [positions])` and, with
/// `createGraph: true`, stay differentiable for a training loss on forces.
///
/// Parameters carry the reference names (`conv_layers.twobody_conv.0.node_neighbors.weight`, ...);
/// the RBF centres are constants taken from the model file.
///
/// ```swift
/// let net = try ENINetDifferentiableModel<Double>(file: try ENINetModelFile(contentsOf: path))
/// let r = try Tensor<Double>(shape: [n, 3], scalars: flat, requiresGrad: true)
/// let out = try net.forward(atomicNumbers: z, positions: r, graph: graph)
/// let forces = try -grad(of: out.energy, wrt: [r], createGraph: true)[0]
/// ```
public final class ENINetDifferentiableModel<T: ENINetFloat> {
    public let configuration: ENINetConfiguration
    /// The learnable tensors under their reference names.
    public let parameters: ParameterSet<T>
    private let twoBodyCentres: Tensor<T>
    private let threeBodyCentres: Tensor<T>

    /// Parameters from a model file (converted to `T`).
    public init(file: ENINetModelFile) throws {
        try file.checkShapes()
        configuration = file.configuration
        let set = ParameterSet<T>()
        for (name, shape) in ENINetParameterLayout.expectedShapes(file.configuration) where !Self.isBuffer(name) {
            let values = try file.weights.doubles(name, shape: shape).map { T($0) }
            _ = try set.add(name, try Tensor<T>(shape: shape, scalars: values, requiresGrad: true))
        }
        parameters = set
        let k = file.configuration.radialBasisCount
        twoBodyCentres = try Tensor<T>(shape: [k], scalars: try file.weights.doubles("conv_layers.twobody_dist_rb.centers", shape: [k]).map { T($0) })
        threeBodyCentres = try Tensor<T>(shape: [k], scalars: try file.weights.doubles("conv_layers.threebody_dist_rb.centers", shape: [k]).map { T($0) })
    }

    /// A freshly initialised network (for training from scratch), with PyTorch's default
    /// initialisation: linear weights and biases uniform in ±1/sqrt(fan_in), the embedding
    /// standard normal, norm scales 1 and shifts 0. RBF centres are float32 `linspace` values.
    public init<G: RandomNumberGenerator>(configuration: ENINetConfiguration, using generator: inout G) throws {
        try configuration.validate(source: "new model")
        self.configuration = configuration
        let set = ParameterSet<T>()
        for (name, shape) in ENINetParameterLayout.expectedShapes(configuration) where !Self.isBuffer(name) {
            let tensor: Tensor<T>
            if name.hasSuffix("n_embedding.weight") {
                tensor = Tensor<T>.randomNormal(shape, standardDeviation: 1, using: &generator, requiresGrad: true)
            } else if name.contains("norm_mess.") || name.contains("norm_nv.") {
                tensor = Tensor<T>(repeating: name.hasSuffix(".weight") ? 1 : 0, shape: shape, requiresGrad: true)
            } else {
                // Linear layers: fan-in is the weight's second axis; a bias shares its weight's bound.
                let weightShape = name.hasSuffix(".bias")
                    ? ENINetParameterLayout.expectedShapes(configuration).first { $0.0 == name.dropLast(5) + ".weight" }?.1 ?? [1, 1]
                    : shape
                let bound = 1 / Double(max(weightShape.count > 1 ? weightShape[1] : 1, 1)).squareRoot()
                tensor = Tensor<T>.randomUniform(shape, in: -bound...bound, using: &generator, requiresGrad: true)
            }
            _ = try set.add(name, tensor)
        }
        parameters = set
        let k = configuration.radialBasisCount
        twoBodyCentres = try Tensor<T>(shape: [k], scalars: Self.float32Linspace(configuration.cutoff, k).map { T($0) })
        threeBodyCentres = try Tensor<T>(shape: [k], scalars: Self.float32Linspace(2 * configuration.cutoff, k).map { T($0) })
    }

    /// A copy whose parameters are tensors of its own, with the same values: the network of a
    /// data-parallel worker, whose backward passes must not visit another thread's tensors
    /// (`GradMode.withPrivateGraphs`). The RBF centres, constants, are shared.
    public func replica() throws -> ENINetDifferentiableModel<T> {
        let set = ParameterSet<T>()
        for (name, tensor) in zip(parameters.names, parameters.tensors) { try set.add(name, tensor.copy()) }
        return ENINetDifferentiableModel(configuration: configuration, parameters: set,
                                         twoBodyCentres: twoBodyCentres, threeBodyCentres: threeBodyCentres)
    }

    private init(configuration: ENINetConfiguration, parameters: ParameterSet<T>, twoBodyCentres: Tensor<T>, threeBodyCentres: Tensor<T>) {
        self.configuration = configuration
        self.parameters = parameters
        self.twoBodyCentres = twoBodyCentres
        self.threeBodyCentres = threeBodyCentres
    }

    /// `linspace(0, end, count)` in float32, filled from both ends as PyTorch does.
    static func float32Linspace(_ end: Double, _ count: Int) -> [Double] {
        let step = Float(end) / Float(count - 1)
        return (0..<count).map { i in Double(i < count / 2 ? Float(i) * step : Float(end) - Float(count - 1 - i) * step) }
    }

    /// Tensors that the reference stores but never trains: RBF centres and cutoff radii.
    static func isBuffer(_ name: String) -> Bool { name.hasSuffix(".centers") || name.hasSuffix(".cutoff") }

    /// The current parameters (and the fixed buffers) as a model file, stored as `dtype`.
    public func modelFile(dtype: SafeTensorsDType = .float32) throws -> ENINetModelFile {
        var file = SafeTensorsFile()
        for (name, tensor) in zip(parameters.names, parameters.tensors) {
            let values = tensor.scalars.map { $0.tensorDouble }
            file.add(dtype == .float64 ? SafeTensor(name: name, shape: tensor.shape, float64: values)
                                       : SafeTensor(name: name, shape: tensor.shape, float32: values.map { Float($0) }))
        }
        let c = configuration
        for (name, values) in [("conv_layers.twobody_dist_rb.centers", twoBodyCentres.scalars.map { $0.tensorDouble }),
                               ("conv_layers.threebody_dist_rb.centers", threeBodyCentres.scalars.map { $0.tensorDouble })] {
            file.add(dtype == .float64 ? SafeTensor(name: name, shape: [values.count], float64: values)
                                       : SafeTensor(name: name, shape: [values.count], float32: values.map { Float($0) }))
        }
        var cutoffs = ["conv_layers.twobody_cutoff_fn.cutoff": c.cutoff, "conv_layers.threebody_cutoff_fn.cutoff": 2 * c.cutoff]
        for l in 0..<c.interactionCount {
            cutoffs["conv_layers.twobody_conv.\(l).cutoff_fn.cutoff"] = c.cutoff
            cutoffs["conv_layers.threebody_conv.\(l).cutoff_fn.cutoff"] = 2 * c.cutoff
        }
        for (name, value) in cutoffs {
            file.add(dtype == .float64 ? SafeTensor(name: name, shape: [], float64: [value]) : SafeTensor(name: name, shape: [], float32: [Float(value)]))
        }
        let model = ENINetModelFile(configuration: c, weights: file)
        try model.checkShapes()
        return model
    }

    private func p(_ name: String) throws -> Tensor<T> { try parameters.tensor(name) }

    private func dense(_ x: Tensor<T>, _ name: String, bias: Bool = true) throws -> Tensor<T> {
        try linear(x, weight: try p(name + ".weight"), bias: bias ? try p(name + ".bias") : nil)
    }

    /// `dense(concat([x.gather(rows: first), x.gather(rows: second)], axis: 1), name)` computed as
    /// the gathered maps of `x`'s rows: the GEMMs run on the rows of `x` (edges, atoms) instead
    /// of on the pairs (triplets, edges), and no pair tensor is written.
    private func pairDense(_ x: Tensor<T>, first: [Int32], second: [Int32], _ name: String) throws -> Tensor<T> {
        let weight = try p(name + ".weight"), width = x.shape[1]
        let mapFirst = try linear(x, weight: weight.slice(axis: 1, start: 0, length: width), bias: try p(name + ".bias"))
        let mapSecond = try linear(x, weight: weight.slice(axis: 1, start: width, length: width))
        return try mapFirst.gather(rows: first) + mapSecond.gather(rows: second)
    }

    /// The parts `kept` of `dense(x, name).split(axis: 1, parts: parts)`, each from its own rows
    /// of the weight: a split's backward embeds every part's gradient in zeros of the full width
    /// and sums them, three times the traffic of the parts themselves.
    private func splitDense(_ x: Tensor<T>, _ name: String, parts: Int, keeping kept: Range<Int>) throws -> [Tensor<T>] {
        let weight = try p(name + ".weight"), bias = try p(name + ".bias")
        let width = weight.shape[0] / parts
        return try kept.map { k in
            try linear(x, weight: weight.slice(axis: 0, start: k * width, length: width),
                       bias: bias.slice(axis: 0, start: k * width, length: width))
        }
    }

    private func mlp(_ x: Tensor<T>, _ name: String) throws -> Tensor<T> {
        try dense(try dense(x, name + ".net.0").silu(), name + ".net.2")
    }

    private func gateMLP(_ x: Tensor<T>, _ name: String) throws -> Tensor<T> {
        let value = try dense(try dense(x, name + ".net.0").silu(), name + ".net.2")
        let gate = try dense(try dense(x, name + ".gates.0").silu(), name + ".gates.2").silu()
        return try value * gate
    }

    /// Cosine cutoff `0.5 (1 + cos(pi x / R))` for `x <= R`, else 0.
    private func cosineCutoff(_ x: Tensor<T>, _ radius: Double) throws -> Tensor<T> {
        let inside = x.lessOrEqual(to: T(radius))
        return try ((x * T(Double.pi / radius)).cos() + 1) * T(0.5) * inside
    }

    private func gaussians(_ x: Tensor<T>, centres: Tensor<T>, gamma: Double) throws -> Tensor<T> {
        try (x - centres).gaussian(gamma: T(gamma))  // [rows, 1] - [K]
    }

    private func vectorNorm(_ v: Tensor<T>, _ name: String) throws -> Tensor<T> {
        let weight = try p(name + ".weight")
        switch configuration.vectorNorm {
        case .maxMin:
            let n = try v.norm(axis: 1).clamped(min: T(1e-12))              // [R, C]
            let lo = try n.min(axis: 1, keepingDimensions: true)
            let hi = try n.max(axis: 1, keepingDimensions: true)
            let spread = try hi - lo
            let small = spread.less(than: T(1e-7))                            // constant 0/1
            let divisor = try spread * (1 - small) + small
            let scale = try ((n - lo) / divisor).relu() / n * weight          // [R, C]
            return try v * scale.unsqueezed(1)
        case .rms:
            let meanSquare = try (v * v).sum(axes: [1, 2], keepingDimensions: true) * T(1 / Double(configuration.featureCount))
            let inv = (meanSquare + T(configuration.vectorNormEpsilon)).sqrt().reciprocal()
            return try v * inv * weight
        }
    }

    /// What one forward pass returns.
    public struct Output {
        /// `Σ_i (std·q_i + mean)`, shape `[]`.
        public var energy: Tensor<T>
        /// Per-atom readout scalars `q_i`, `[N, 1]`.
        public var atomScalars: Tensor<T>
        /// Per-atom readout vectors `mu_i`, `[N, 3, 1]`.
        public var atomVectors: Tensor<T>
    }

    /// A homogeneous strain of each structure of a batch, `r → r·(I + ε_b)` applied to every
    /// bond vector of structure `b` (positions and cell rows alike). Left at zero, it changes no
    /// value; its gradient `∂E/∂ε_b` is `V_b σ_b`, the stress in ASE's sign times the volume.
    public struct Strain {
        /// `ε`, `[B, 3, 3]`: a leaf that requires a gradient.
        public var tensor: Tensor<T>
        /// The structure of each atom, `0..<B`.
        public var structureOfAtom: [Int32]

        public init(tensor: Tensor<T>, structureOfAtom: [Int32]) {
            self.tensor = tensor
            self.structureOfAtom = structureOfAtom
        }

        /// `d + d·ε` for rows `d` of vectors that start at atoms `origins`.
        func applied(to d: Tensor<T>, origins: [Int32]) throws -> Tensor<T> {
            let perRow = try tensor.gather(rows: origins.map { structureOfAtom[Int($0)] })          // [R, 3, 3]
            return try d + (d.unsqueezed(2) * perRow).sum(axis: 1)
        }
    }

    /// The network on `graph`, with `positions` (`[N, 3]`) a tensor (a leaf that requires a
    /// gradient when forces are wanted) and, for stresses, a `strain`.
    public func forward(atomicNumbers: [Int], positions: Tensor<T>, graph: ENINetGraph, strain: Strain? = nil) throws -> Output {
        let c = configuration
        let n = graph.atomCount, ne = graph.edgeCount
        let f = c.featureCount
        guard positions.shape == [n, 3], atomicNumbers.count == n else {
            throw ModelFileError("forward: positions of shape \(positions.shape) and \(atomicNumbers.count) atomic numbers for \(n) atoms")
        }
        if let strain {
            guard strain.structureOfAtom.count == n, strain.tensor.rank == 3, strain.tensor.shape.dropFirst() == [3, 3] else {
                throw ModelFileError("forward: a strain of shape \(strain.tensor.shape) over \(strain.structureOfAtom.count) atoms for \(n) atoms (needs [B, 3, 3] and one structure per atom)")
            }
        }
        for (i, z) in atomicNumbers.enumerated() where z < 0 || z >= c.elementCount {
            throw ModelFileError("atom \(i): atomic number \(z) is outside the model's table (0..<\(c.elementCount))")
        }
        let src = graph.edgeSource, dst = graph.edgeDestination
        let tin = graph.tripletIn, tout = graph.tripletOut
        let rc = c.cutoff

        // Geometry: edge vectors from positions by gathers and constant image shifts.
        // Filled in place: `flatMap` over the edges made a three-element array per edge, every step.
        var shiftScalars = [T]()
        shiftScalars.reserveCapacity(3 * ne)
        for shift in graph.edgeShift { shiftScalars.append(T(shift.x)); shiftScalars.append(T(shift.y)); shiftScalars.append(T(shift.z)) }
        let shifts = try Tensor<T>(shape: [ne, 3], scalars: shiftScalars)
        var d = try positions.gather(rows: dst) + shifts - positions.gather(rows: src)     // [E, 3]
        if let strain { d = try strain.applied(to: d, origins: src) }
        let r = try d.norm(axis: 1, keepingDimensions: true)                               // [E, 1]
        let u = try d / r
        let edgeCut = try cosineCutoff(r, rc)                                              // [E, 1]
        // The triplets' radial terms once per span (``ENINetGraph``), then gathered per triplet.
        let spanIn = graph.spanTriplet.map { tin[Int($0)] }, spanOut = graph.spanTriplet.map { tout[Int($0)] }
        let spanShift = try shifts.gather(rows: spanIn) + shifts.gather(rows: spanOut)
        let spanOrigins = spanIn.map { src[Int($0)] }
        var ds = try positions.gather(rows: spanOut.map { dst[Int($0)] }) + spanShift
            - positions.gather(rows: spanOrigins)                                          // [S, 3]
        if let strain { ds = try strain.applied(to: ds, origins: spanOrigins) }
        let s = try ds.norm(axis: 1, keepingDimensions: true)                              // [S, 1]
        let w = try (ds / s).gather(rows: graph.tripletSpan)                               // [T, 3]
        var tripletCut = try cosineCutoff(s, 2 * rc).gather(rows: graph.tripletSpan)       // [T, 1]
        if c.tripletBondCutoff {
            tripletCut = try tripletCut * edgeCut.gather(rows: tin) * edgeCut.gather(rows: tout)
        }

        // Initial features.
        var ns = try p("conv_layers.n_embedding.weight").gather(rows: atomicNumbers.map { Int32($0) })  // [N, F]
        var nv = Tensor<T>.zeros([n, 3, f])
        var es = try dense(try gaussians(r, centres: twoBodyCentres, gamma: c.twoBodyGamma), "conv_layers.e_embedding") * edgeCut
        var ev = try (u * edgeCut * T(rc)).unsqueezed(2)                                  // [E, 3, 1]
        var ts = try dense(try gaussians(s, centres: threeBodyCentres, gamma: c.threeBodyGamma), "conv_layers.t_embedding")
            .gather(rows: graph.tripletSpan) * tripletCut
        // One direction for every channel until the first update makes the channels differ
        // (edge and triplet vectors alike).
        var tv = try (w * tripletCut).unsqueezed(2)                                       // [T, 3, 1]
        let scaledUnit = try (u * T(rc)).unsqueezed(2), unitTriplet = try w.unsqueezed(2)

        var inDegree = [Int](repeating: 0, count: n)
        for j in dst { inDegree[Int(j)] += 1 }
        let inverseDivisor: [T] = (0..<n).map { i in
            switch c.aggregation {
            case .sum: return 1
            case .mean: return T(1 / Double(max(inDegree[i], 1)))
            case .normalizedSum: return T(1 / c.averageNeighborCount)
            }
        }
        let aggregationScale = try Tensor<T>(shape: [n, 1], scalars: inverseDivisor)
        let aggregationScale3 = try aggregationScale.unsqueezed(2)

        for l in 0..<c.interactionCount {
            let tb = "conv_layers.threebody_conv.\(l)."
            let hs = try dense(es, tb + "ns_in.0").silu()
            // A channel map of one shared direction is that direction times the weight's row sums.
            let hv = l == 0
                ? try ev * p(tb + "nv_in.weight").sum(axis: 1)
                : try dense(ev, tb + "nv_in", bias: false)
            let m = try pairDense(hs, first: tin, second: tout, tb + "edge_neighbors") * dense(ts, tb + "triplet_proj")
            let dts = try gateMLP(m, tb + "triplet_gate") * tripletCut
            // The three weights of the vector message, each scaled by the cutoff.
            let abc = try splitDense(dts, tb + "triplet_vec", parts: 3, keeping: 0..<3).map { try ($0 * tripletCut).unsqueezed(1) }
            let dtv = try Tensor.weightedSum([tv, hv.gather(rows: tin), unitTriplet], weights: abc)
            let sumS = try dts.scatterAdd(rows: tout, count: ne)
            let sumV = try dtv.scatterAdd(rows: tout, count: ne)
            let outS = try mlp(try concat([sumS, hv.norm(axis: 1)], axis: 1), tb + "out_ns")
            es = try (outS + es).layerNorm(weight: try p(tb + "norm_mess.weight"), bias: try p(tb + "norm_mess.bias"))
            ev = try vectorNorm(try dense(sumV, tb + "out_nv", bias: false) + ev, tb + "norm_nv")
            // The last layer's edge and triplet updates would feed nothing.
            let isLast = l == c.interactionCount - 1
            if !isLast {
                ts = try dts + ts
                tv = try dtv + tv
            }

            let bb = "conv_layers.twobody_conv.\(l)."
            let m2 = try pairDense(ns, first: src, second: dst, bb + "node_neighbors") * dense(es, bb + "edge_proj")
            let des = try gateMLP(m2, bb + "ns_mess") * edgeCut
            // The node vectors start at zero, so their term (the first weight) is left out of the first layer.
            let edgeWeights = try splitDense(des, bb + "edge_vec", parts: 3, keeping: l == 0 ? 1..<3 : 0..<3)
                .map { try ($0 * edgeCut).unsqueezed(1) }
            let dev = l == 0
                ? try Tensor.weightedSum([ev, scaledUnit], weights: edgeWeights)
                : try Tensor.weightedSum([nv.gather(rows: src), ev, scaledUnit], weights: edgeWeights)
            let aggS = try des.scatterAdd(rows: dst, count: n) * aggregationScale
            let aggV = try dev.scatterAdd(rows: dst, count: n) * aggregationScale3
            let o = try dense(aggV, bb + "nv_out", bias: false).split(axis: 2, parts: 3)
            let gate = try dense(try concat([aggS, o[2].norm(axis: 1)], axis: 1), bb + "nv_channel")
            let nvu = try o[0] * gate.unsqueezed(1) + o[1]
            let pp = try dense(nvu, bb + "nv_proj", bias: false).split(axis: 2, parts: 2)
            let q = try dense(aggS, bb + "ns_proj.0").silu().split(axis: 1, parts: 2)
            let nsu = try (pp[0] * pp[1]).sum(axis: 1) * q[0] + q[1]
            ns = try (nsu + ns).layerNorm(weight: try p(bb + "norm_mess.weight"), bias: try p(bb + "norm_mess.bias"))
            nv = try vectorNorm(nvu + nv, bb + "norm_nv")
            if !isLast {
                es = try des + es
                ev = try dev + ev
            }
        }

        var scalars = ns, vectors = nv
        for block in 0..<2 {
            let name = "readout.out.\(block)."
            let uv = try dense(vectors, name + "linear_v", bias: false).split(axis: 2, parts: 2)
            let h = try mlp(try concat([scalars, uv[1].norm(axis: 1)], axis: 1), name + "mix").split(axis: 1, parts: 2)
            scalars = block == 0 ? h[0].silu() : h[0]
            vectors = try uv[0] * h[1].unsqueezed(1)
        }
        let reference = atomicNumbers.reduce(0.0) { $0 + c.elementEnergy($1) }
        let energy = (scalars * T(c.scaleStd) + T(c.scaleMean)).sum() + T(tensorDouble: reference)
        return Output(energy: energy, atomScalars: scalars, atomVectors: vectors)
    }
}
