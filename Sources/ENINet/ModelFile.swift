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
        // Layer by layer first: the list of expected tensors grows with `n_interactions`, and a
        // header that claimed 10⁹ layers made listing them all take minutes and gigabytes.
        for layer in 0..<configuration.interactionCount {
            _ = try weights.tensor("conv_layers.threebody_conv.\(layer).cutoff_fn.cutoff")
        }
        for (name, shape) in ENINetParameterLayout.expectedShapes(configuration) {
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
        let f = c.featureCount, ft = c.tripletFeatureCount, k = c.radialBasisCount
        var out: [(String, [Int])] = []
        func linear(_ name: String, _ outDim: Int, _ inDim: Int, bias: Bool = true) {
            out.append((name + ".weight", [outDim, inDim]))
            if bias { out.append((name + ".bias", [outDim])) }
        }
        let p = "conv_layers."
        out.append((p + "n_embedding.weight", [c.elementCount, f]))
        linear(p + "e_embedding", f, k)
        linear(p + "t_embedding", ft, k)
        out.append((p + "twobody_dist_rb.centers", [k]))
        out.append((p + "threebody_dist_rb.centers", [k]))
        out.append((p + "twobody_cutoff_fn.cutoff", []))
        out.append((p + "threebody_cutoff_fn.cutoff", []))
        for i in 0..<c.interactionCount {
            let t = p + "threebody_conv.\(i)."
            out.append((t + "cutoff_fn.cutoff", []))
            linear(t + "edge_neighbors", ft, 2 * ft)
            out.append((t + "norm_mess.weight", [f])); out.append((t + "norm_mess.bias", [f]))
            out.append((t + "norm_nv.weight", [f]))
            linear(t + "ns_in.0", ft, f)
            linear(t + "nv_in", ft, f, bias: false)
            linear(t + "out_ns.net.0", ft, 2 * ft)
            linear(t + "out_ns.net.2", f, ft)
            linear(t + "out_nv", f, ft, bias: false)
            for g in ["gates", "net"] { for l in [0, 2] { linear(t + "triplet_gate.\(g).\(l)", ft, ft) } }
            linear(t + "triplet_proj", ft, ft)
            linear(t + "triplet_vec", 3 * ft, ft)

            let b = p + "twobody_conv.\(i)."
            out.append((b + "cutoff_fn.cutoff", []))
            linear(b + "edge_proj", f, f)
            linear(b + "edge_vec", 3 * f, f)
            linear(b + "node_neighbors", f, 2 * f)
            out.append((b + "norm_mess.weight", [f])); out.append((b + "norm_mess.bias", [f]))
            out.append((b + "norm_nv.weight", [f]))
            for g in ["gates", "net"] { for l in [0, 2] { linear(b + "ns_mess.\(g).\(l)", f, f) } }
            linear(b + "ns_proj.0", 2 * f, f)
            linear(b + "nv_channel", f, 2 * f)
            linear(b + "nv_out", 3 * f, f, bias: false)
            linear(b + "nv_proj", 2 * f, f, bias: false)
        }
        for (block, (fin, fout)) in [(f, f / 2), (f / 2, 1)].enumerated() {
            let r = "readout.out.\(block)."
            linear(r + "linear_v", 2 * fout, fin, bias: false)
            linear(r + "mix.net.0", fin + fout, fin + fout)
            linear(r + "mix.net.2", 2 * fout, fin + fout)
        }
        return out
    }
}
