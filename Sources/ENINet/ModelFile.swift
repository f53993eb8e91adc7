import Foundation

/// An ENINet model file: weights in safetensors under the reference parameter names, plus the
/// configuration, either as JSON in the file's `__metadata__` under `eninet_config` or, for
/// files exported from the reference code, in a JSON file of the same name beside it.
public struct ENINetModelFile: Sendable {
    public var configuration: ENINetConfiguration
    public var weights: SafeTensorsFile

    public init(configuration: ENINetConfiguration, weights: SafeTensorsFile) {
        self.configuration = configuration
        self.weights = weights
    }

    /// Reads `path`, finds its configuration and checks every expected tensor's shape.
    public init(contentsOf path: String) throws {
        let weights = try SafeTensorsFile(contentsOf: path)
        let configuration: ENINetConfiguration
        if let json = weights.metadata[ENINetConfiguration.metadataKey] {
            configuration = try ENINetConfiguration(jsonString: json, source: "\(path) (__metadata__.\(ENINetConfiguration.metadataKey))")
        } else {
            let url = URL(fileURLWithPath: path)
            let sidecar = url.deletingPathExtension().appendingPathExtension("json").path
            guard FileManager.default.fileExists(atPath: sidecar) else {
                throw ModelFileError("\(path): no '\(ENINetConfiguration.metadataKey)' in the file's __metadata__ and no configuration file \(sidecar)")
            }
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: sidecar)) } catch {
                throw ModelFileError("\(sidecar): cannot read (\(error.localizedDescription))")
            }
            configuration = try ENINetConfiguration(jsonString: String(decoding: data, as: UTF8.self), source: sidecar)
        }
        try self.init(configuration: configuration, weights: weights, checked: true)
    }

    private init(configuration: ENINetConfiguration, weights: SafeTensorsFile, checked: Bool) throws {
        self.configuration = configuration
        self.weights = weights
        try checkShapes()
    }

    /// Throws, naming the file and tensor, when a tensor the configuration needs is missing or
    /// has another shape.
    public func checkShapes() throws {
        // Part by part, layer by layer: a header that claimed 10⁹ layers made listing every
        // expected tensor first take minutes and gigabytes; now it fails at the first missing layer.
        var expected = Set<String>()
        func check(_ shapes: [(String, [Int])]) throws {
            try self.check(shapes)
            expected.formUnion(shapes.map(\.0))
        }
        try check(ENINetParameterLayout.embeddingShapes(configuration))
        for layer in 0..<configuration.interactionCount {
            try check(ENINetParameterLayout.layerShapes(configuration, layer: layer))
        }
        try check(ENINetParameterLayout.readoutShapes(configuration))
        // The network's tensors that the configuration leaves out: `n_interactions = 1` on a
        // two-layer file dropped the second layer without a word. Other names (a checkpoint's
        // optimiser moments) are not the network's.
        if let unused = weights.names.first(where: { ($0.hasPrefix("conv_layers.") || $0.hasPrefix("readout.")) && !expected.contains($0) }) {
            throw ModelFileError("\(weights.path): tensor '\(unused)' is not part of the network its configuration describes "
                + "(n_interactions = \(configuration.interactionCount), g_feat_dim = \(configuration.featureCount))")
        }
    }

    private func check(_ expected: [(String, [Int])]) throws {
        for (name, shape) in expected {
            let t = try weights.tensor(name)
            guard t.shape == shape else {
                throw ModelFileError("\(weights.path): tensor '\(name)' has shape \(t.shape), but the configuration needs \(shape)")
            }
            guard t.dtype.isFloatingPoint else {
                throw ModelFileError("\(weights.path): tensor '\(name)' has type \(t.dtype.rawValue), expected a floating-point type")
            }
        }
    }

    /// Writes weights and configuration (in `__metadata__`) to one file, atomically.
    public func write(to path: String) throws {
        var file = weights
        file.metadata[ENINetConfiguration.metadataKey] = try configuration.jsonString()
        try file.write(to: path)
    }
}

/// The reference network's parameter names and shapes for a configuration.
public enum ENINetParameterLayout {
    /// Every tensor a model with `c` needs (parameters and the buffers the reference stores:
    /// RBF centres and cutoff radii), with its shape.
    public static func expectedShapes(_ c: ENINetConfiguration) -> [(String, [Int])] {
        embeddingShapes(c) + (0..<c.interactionCount).flatMap { layerShapes(c, layer: $0) } + readoutShapes(c)
    }

    /// The embeddings, the radial bases' centres and the cutoff radii.
    static func embeddingShapes(_ c: ENINetConfiguration) -> [(String, [Int])] {
        let f = c.featureCount, ft = c.tripletFeatureCount, k = c.radialBasisCount
        var out = ShapeList()
        let p = "conv_layers."
        out.tensor(p + "n_embedding.weight", [c.elementCount, f])
        out.linear(p + "e_embedding", f, k)
        out.linear(p + "t_embedding", ft, k)
        out.tensor(p + "twobody_dist_rb.centers", [k])
        out.tensor(p + "threebody_dist_rb.centers", [k])
        out.tensor(p + "twobody_cutoff_fn.cutoff", [])
        out.tensor(p + "threebody_cutoff_fn.cutoff", [])
        return out.shapes
    }

    /// Interaction layer `i`: its three-body, then its two-body convolution.
    static func layerShapes(_ c: ENINetConfiguration, layer i: Int) -> [(String, [Int])] {
        let f = c.featureCount, ft = c.tripletFeatureCount
        var out = ShapeList()
        let t = "conv_layers.threebody_conv.\(i)."
        out.tensor(t + "cutoff_fn.cutoff", [])
        out.linear(t + "edge_neighbors", ft, 2 * ft)
        out.tensor(t + "norm_mess.weight", [f]); out.tensor(t + "norm_mess.bias", [f])
        out.tensor(t + "norm_nv.weight", [f])
        out.linear(t + "ns_in.0", ft, f)
        out.linear(t + "nv_in", ft, f, bias: false)
        out.linear(t + "out_ns.net.0", ft, 2 * ft)
        out.linear(t + "out_ns.net.2", f, ft)
        out.linear(t + "out_nv", f, ft, bias: false)
        for g in ["gates", "net"] { for l in [0, 2] { out.linear(t + "triplet_gate.\(g).\(l)", ft, ft) } }
        out.linear(t + "triplet_proj", ft, ft)
        out.linear(t + "triplet_vec", 3 * ft, ft)

        let b = "conv_layers.twobody_conv.\(i)."
        out.tensor(b + "cutoff_fn.cutoff", [])
        out.linear(b + "edge_proj", f, f)
        out.linear(b + "edge_vec", 3 * f, f)
        out.linear(b + "node_neighbors", f, 2 * f)
        out.tensor(b + "norm_mess.weight", [f]); out.tensor(b + "norm_mess.bias", [f])
        out.tensor(b + "norm_nv.weight", [f])
        for g in ["gates", "net"] { for l in [0, 2] { out.linear(b + "ns_mess.\(g).\(l)", f, f) } }
        out.linear(b + "ns_proj.0", 2 * f, f)
        out.linear(b + "nv_channel", f, 2 * f)
        out.linear(b + "nv_out", 3 * f, f, bias: false)
        out.linear(b + "nv_proj", 2 * f, f, bias: false)
        return out.shapes
    }

    /// The two readout blocks.
    static func readoutShapes(_ c: ENINetConfiguration) -> [(String, [Int])] {
        let f = c.featureCount
        var out = ShapeList()
        for (block, (fin, fout)) in [(f, f / 2), (f / 2, 1)].enumerated() {
            let r = "readout.out.\(block)."
            out.linear(r + "linear_v", 2 * fout, fin, bias: false)
            out.linear(r + "mix.net.0", fin + fout, fin + fout)
            out.linear(r + "mix.net.2", 2 * fout, fin + fout)
        }
        return out.shapes
    }

    private struct ShapeList {
        var shapes: [(String, [Int])] = []
        mutating func tensor(_ name: String, _ shape: [Int]) { shapes.append((name, shape)) }
        /// A PyTorch `Linear`: weight `[out, in]`, and bias `[out]` unless it has none.
        mutating func linear(_ name: String, _ outDim: Int, _ inDim: Int, bias: Bool = true) {
            shapes.append((name + ".weight", [outDim, inDim]))
            if bias { shapes.append((name + ".bias", [outDim])) }
        }
    }
}
