import Foundation
import Geometry

/// Everything that fixes what an ENINet model computes besides its weights: sizes, cutoff,
/// basis widths, energy scaling and the options that distinguish the reference network from
/// the project's smooth variant.
///
/// The options live in the model file so that a file keeps meaning what it meant when it was
/// written: reference weights say `aggregation = mean`, `vectorNorm = maxMin`,
/// `maxNeighbors = 32`, `lineGraphRule = atomIndex`, `tripletBondCutoff = false`.
public struct ENINetConfiguration: Equatable, Sendable {
    /// How an atom combines the messages of its incoming edges.
    public enum Aggregation: String, Sendable {
        /// Plain sum (reference "sum").
        case sum
        /// Sum divided by the atom's in-degree (reference "mean"): jumps when a neighbour crosses the cutoff.
        case mean
        /// Sum divided by a constant, `averageNeighborCount` (smooth).
        case normalizedSum = "normalized_sum"
    }

    /// The normalisation of vector channels after each block.
    public enum VectorNorm: String, Sendable {
        /// The reference's "max_min" CoorsNorm: channel norms rescaled to [0, 1] by their row's min and max.
        case maxMin = "max_min"
        /// Smooth: every channel divided by the RMS of the row's channel norms, `sqrt(mean_c |v_c|² + ε)`.
        case rms
    }

    /// Which pairs of consecutive bonds form no triplet.
    public enum LineGraphRule: String, Sendable {
        /// Drop only the exact reversal `a → b → a` with `S1 + S2 = 0` (periodic cell = supercell).
        case geometric
        /// Drop every `a → b → a'` with the same atom index, whatever the images (DGL, reference).
        case atomIndex = "atom_index"
    }

    /// What the readout's per-atom scalar and vector are turned into.
    public enum Target: String, Sendable {
        case energy, dipole, polarizability
    }

    /// Rows of the atom embedding table (atomic numbers 0 ..< elementCount).
    public var elementCount: Int
    /// Node and edge channels `F` (`g_feat_dim`).
    public var featureCount: Int
    /// Triplet channels `Ft` (`lg_feat_dim`).
    public var tripletFeatureCount: Int
    /// Radial basis size `K`.
    public var radialBasisCount: Int
    /// Cutoff radius `rc` (Å).
    public var cutoff: Double
    /// Interaction layers `L`.
    public var interactionCount: Int
    /// `gamma` of the two-body and three-body Gaussian bases: the reference keeps the float32
    /// value of `(K − 1) / R`, which differs from the Double quotient by up to 8e-8.
    public var twoBodyGamma: Double
    public var threeBodyGamma: Double
    /// Per-atom energy statistics: `E = Σ_i (std·q_i + mean + e_{Z_i})`.
    public var scaleMean: Double
    public var scaleStd: Double
    /// Reference energy of each element (eV, by atomic number), fitted by least squares on the
    /// training data; elements not listed add nothing. Empty for reference models and for data
    /// of one composition, where `Σ_i e_{Z_i}` is a constant that `scaleMean` absorbs.
    public var elementEnergies: [Int: Double]

    public var aggregation: Aggregation
    /// The divisor of `normalizedSum`.
    public var averageNeighborCount: Double
    public var vectorNorm: VectorNorm
    /// The ε inside the square root of the `rms` vector norm.
    public var vectorNormEpsilon: Double
    /// Keep only this many nearest neighbours per atom (reference: 32), or all when nil.
    public var maxNeighbors: Int?
    public var lineGraphRule: LineGraphRule
    /// Multiply every triplet message and feature by `fc_rc(r_e1)·fc_rc(r_e2)` (smooth variant).
    public var tripletBondCutoff: Bool
    public var target: Target
    /// The elements (atomic numbers, ascending) the model was trained on. A structure with
    /// another element is refused: its row of the embedding table was never trained, and the
    /// energy would be a random number. Empty when the file does not say (reference exports,
    /// files written before `species` existed): then every element of the table is accepted.
    public var species: [Int]
    /// Where the model came from, for people: the training data, its split and frame counts, the
    /// model it was fine-tuned from (`train` writes it). Nothing reads it.
    public var provenance: [String: String]

    public init(elementCount: Int = 95, featureCount: Int, tripletFeatureCount: Int, radialBasisCount: Int,
                cutoff: Double, interactionCount: Int, twoBodyGamma: Double? = nil, threeBodyGamma: Double? = nil,
                scaleMean: Double = 0, scaleStd: Double = 1, elementEnergies: [Int: Double] = [:],
                aggregation: Aggregation = .normalizedSum, averageNeighborCount: Double = 1,
                vectorNorm: VectorNorm = .rms, vectorNormEpsilon: Double = 1e-8,
                maxNeighbors: Int? = nil, lineGraphRule: LineGraphRule = .geometric,
                tripletBondCutoff: Bool = true, target: Target = .energy,
                species: [Int] = [], provenance: [String: String] = [:]) {
        self.elementCount = elementCount
        self.featureCount = featureCount
        self.tripletFeatureCount = tripletFeatureCount
        self.radialBasisCount = radialBasisCount
        self.cutoff = cutoff
        self.interactionCount = interactionCount
        // The reference stores gamma as float32 ((K-1)/R); reproduce that by default.
        self.twoBodyGamma = twoBodyGamma ?? Double(Float(Double(radialBasisCount - 1) / cutoff))
        self.threeBodyGamma = threeBodyGamma ?? Double(Float(Double(radialBasisCount - 1) / (2 * cutoff)))
        self.scaleMean = scaleMean
        self.scaleStd = scaleStd
        self.elementEnergies = elementEnergies
        self.aggregation = aggregation
        self.averageNeighborCount = averageNeighborCount
        self.vectorNorm = vectorNorm
        self.vectorNormEpsilon = vectorNormEpsilon
        self.maxNeighbors = maxNeighbors
        self.lineGraphRule = lineGraphRule
        self.tripletBondCutoff = tripletBondCutoff
        self.target = target
        self.species = species
        self.provenance = provenance
    }

    /// The units of every model file's numbers: energies in eV, lengths in Å (so forces in
    /// eV/Å, stresses in eV/Å³, dipoles in e·Å). A file that names others is refused.
    public static let units = ["energy": "eV", "length": "angstrom"]

    /// Whether `atomicNumber` is one of ``species`` (always, when none are recorded).
    public func knows(atomicNumber z: Int) -> Bool { species.isEmpty || species.contains(z) }

    /// Throws, naming the first atom whose element is outside ``species``.
    public func checkKnows(atomicNumbers: [Int]) throws {
        for (i, z) in atomicNumbers.enumerated() where !knows(atomicNumber: z) { throw unknownElementError(atom: i, atomicNumber: z) }
    }

    /// The error for atom `i`, of an element outside ``species``.
    func unknownElementError(atom i: Int, atomicNumber z: Int) -> ModelFileError {
        let name = Elements.symbol(of: z).map { "\($0) (atomic number \(z))" } ?? "atomic number \(z)"
        let known = species.map { Elements.symbol(of: $0) ?? "Z=\($0)" }.joined(separator: ", ")
        return ModelFileError("atom \(i) is \(name), an element the model was not trained on (its species: \(known))")
    }

    /// Whether `other` is the same network with the same options: the provenance aside, the
    /// species too when either does not record them, and ε where both use the max-min norm,
    /// which does not read it.
    public func describesTheSameNetwork(as other: ENINetConfiguration) -> Bool {
        var a = self, b = other
        a.provenance = [:]; b.provenance = [:]
        if a.species.isEmpty || b.species.isEmpty { a.species = []; b.species = [] }
        if a.vectorNorm == .maxMin && b.vectorNorm == .maxMin { a.vectorNormEpsilon = 0; b.vectorNormEpsilon = 0 }
        return a == b
    }

    /// The key under which a safetensors file's `__metadata__` holds the configuration JSON.
    public static let metadataKey = "eninet_config"

    /// The project's own JSON layout (written into model files).
    public func jsonObject() -> [String: Any] {
        var o: [String: Any] = [
            "format": "eninet-md/1",
            "n_elements": elementCount, "g_feat_dim": featureCount, "lg_feat_dim": tripletFeatureCount,
            "n_rbf": radialBasisCount, "cutoff": cutoff, "n_interactions": interactionCount,
            "rbf_gamma": ["twobody": twoBodyGamma, "threebody": threeBodyGamma],
            "scaler": ["mean": scaleMean, "std": scaleStd],
            "aggregation": aggregation.rawValue, "average_neighbor_count": averageNeighborCount,
            "vector_norm": vectorNorm.rawValue, "vector_norm_epsilon": vectorNormEpsilon,
            "line_graph_rule": lineGraphRule.rawValue, "triplet_bond_cutoff": tripletBondCutoff,
            "target": target.rawValue,
        ]
        o["max_neighbors"] = maxNeighbors.map { $0 as Any } ?? NSNull()
        o["units"] = Self.units
        if !species.isEmpty { o["species"] = species.map { Elements.symbol(of: $0) ?? String($0) } }
        if !provenance.isEmpty { o["provenance"] = provenance }
        if !elementEnergies.isEmpty {
            o["element_energies"] = Dictionary(uniqueKeysWithValues: elementEnergies.map { (String($0.key), $0.value) })
        }
        return o
    }

    /// The configuration as a compact JSON string with sorted keys.
    public func jsonString() throws -> String {
        let data = try JSONSerialization.data(withJSONObject: jsonObject(), options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    /// Parses either the project's layout or the reference layout (`hyper_parameters`,
    /// `scaler`, `rbf` as in `shared/eninet-reference/*.json`). `source` names the file in errors.
    public init(jsonString: String, source: String) throws {
        let value: JSONValue
        do {
            // JSONDecoder parses numbers correctly rounded; JSONSerialization on Linux does not.
            value = try JSONDecoder().decode(JSONValue.self, from: Data(jsonString.utf8))
        } catch {
            throw ModelFileError("\(source): model configuration is not valid JSON (\(error))")
        }
        guard case .object(let dict) = value else {
            throw ModelFileError("\(source): model configuration is not a JSON object")
        }
        if case .object(let hyper)? = dict["hyper_parameters"] {
            try self.init(referenceLayout: dict, hyper: hyper, source: source)
        } else {
            try self.init(projectLayout: dict, source: source)
        }
    }

    /// The keys of the project's layout (what ``jsonObject()`` writes).
    static let projectKeys: Set<String> = [
        "format", "n_elements", "g_feat_dim", "lg_feat_dim", "n_rbf", "cutoff", "n_interactions", "rbf_gamma", "scaler",
        "aggregation", "average_neighbor_count", "vector_norm", "vector_norm_epsilon", "line_graph_rule",
        "triplet_bond_cutoff", "target", "max_neighbors", "units", "species", "provenance", "element_energies",
    ]

    private init(projectLayout o: [String: JSONValue], source: String) throws {
        // Every key is read or refused: a misspelt "element_energie" gave energies 4 eV off, and
        // "specie" turned the element check off, with no word.
        for key in o.keys.sorted() where !Self.projectKeys.contains(key) {
            let near = Self.projectKeys.first { $0.hasPrefix(key) || key.hasPrefix($0) }
            throw ModelFileError("\(source): unknown key '\(key)' in the model configuration" + (near.map { " (did you mean '\($0)'?)" } ?? ""))
        }
        switch o["format"] {
        case nil, .string("eninet-md/1")?: break
        case .string(let format)?:
            throw ModelFileError("\(source): model configuration format '\(format)' is not one this program reads (eninet-md/1)")
        default: throw ModelFileError("\(source): key 'format' must be a string")
        }
        if case .array(let list)? = o["species"], list.isEmpty {
            throw ModelFileError("\(source): key 'species' is empty; leave it out to accept every element of the table")
        }
        let r = JSONReader(o, source: source, path: "")
        let gamma = try r.object("rbf_gamma")
        let scaler = try r.object("scaler")
        let maxNeighbors: Int? = r.has("max_neighbors") ? try r.int("max_neighbors") : nil
        var elementEnergies: [Int: Double] = [:]
        if r.has("element_energies") {
            let table = try r.object("element_energies")
            for key in table.keys {
                guard let z = Int(key), z >= 0 else { throw ModelFileError("\(source): element_energies key '\(key)' is not an atomic number") }
                elementEnergies[z] = try table.double(key)
            }
        }
        if r.has("units") {
            let units = try r.object("units")
            for key in units.keys.sorted() {
                let name = try units.string(key)
                let accepted: Set<String>
                switch key {
                case "energy": accepted = ["ev"]
                case "length": accepted = ["angstrom", "ang", "a", "å"]
                default: throw ModelFileError("\(source): key 'units.\(key)' is not known (units has 'energy' and 'length')")
                }
                guard accepted.contains(name.lowercased()) else {
                    throw ModelFileError("\(source): key 'units.\(key)' is '\(name)', but eninet-md models are in eV and Å (convert the file's scaler and element energies)")
                }
            }
        }
        var species: [Int] = []
        if r.has("species") {
            let names = try r.strings("species")
            for (k, name) in names.enumerated() {
                guard let z = Elements.atomicNumber(of: name) else {
                    throw ModelFileError("\(source): key 'species[\(k)]' is '\(name)', not an element symbol")
                }
                guard !species.contains(z) else { throw ModelFileError("\(source): key 'species[\(k)]': \(name) is listed twice") }
                species.append(z)
            }
        }
        var provenance: [String: String] = [:]
        if r.has("provenance") {
            let table = try r.object("provenance")
            for key in table.keys { provenance[key] = try table.string(key) }
        }
        self.init(elementCount: try r.int("n_elements"), featureCount: try r.int("g_feat_dim"),
                  tripletFeatureCount: try r.int("lg_feat_dim"), radialBasisCount: try r.int("n_rbf"),
                  cutoff: try r.double("cutoff"), interactionCount: try r.int("n_interactions"),
                  twoBodyGamma: try gamma.double("twobody"), threeBodyGamma: try gamma.double("threebody"),
                  scaleMean: try scaler.double("mean"), scaleStd: try scaler.double("std"),
                  elementEnergies: elementEnergies, aggregation: try r.enumeration("aggregation"),
                  averageNeighborCount: try r.double("average_neighbor_count"),
                  vectorNorm: try r.enumeration("vector_norm"),
                  vectorNormEpsilon: try r.double("vector_norm_epsilon"),
                  maxNeighbors: maxNeighbors, lineGraphRule: try r.enumeration("line_graph_rule"),
                  tripletBondCutoff: try r.bool("triplet_bond_cutoff"),
                  target: o["target"] == nil ? .energy : try r.enumeration("target"),
                  species: species.sorted(), provenance: provenance)
        try validate(source: source)
    }

    private init(referenceLayout o: [String: JSONValue], hyper: [String: JSONValue], source: String) throws {
        let h = JSONReader(hyper, source: source, path: "hyper_parameters.")
        let r = JSONReader(o, source: source, path: "")
        let scaler = try r.object("scaler")
        let mean = scaler.has("mean_float32") ? Double(Float(try scaler.double("mean_float32"))) : try scaler.double("mean")
        let std = scaler.has("std_float32") ? Double(Float(try scaler.double("std_float32"))) : try scaler.double("std")
        let rbf = try r.object("rbf")
        let two = try rbf.object("twobody"), three = try rbf.object("threebody")
        // Options of the reference code that this engine implements one way only: another value
        // would load and give numbers of a different network.
        if h.has("activation"), try h.string("activation").lowercased() != "silu" {
            throw ModelFileError("\(source): hyper_parameters.activation is '\(try h.string("activation"))'; eninet-md implements 'silu' only")
        }
        if h.has("use_linegraph"), try !h.bool("use_linegraph") {
            throw ModelFileError("\(source): hyper_parameters.use_linegraph is false; eninet-md implements the network with its three-body (line-graph) blocks only")
        }
        if h.has("readout"), try h.string("readout") != "EquivariantScalarReadout" {
            throw ModelFileError("\(source): hyper_parameters.readout is '\(try h.string("readout"))'; eninet-md implements 'EquivariantScalarReadout' only")
        }
        let aggregationName = try h.string("g_aggregation")
        let aggregation: Aggregation
        switch aggregationName {
        case "sum", "add": aggregation = .sum
        case "mean": aggregation = .mean
        default: throw ModelFileError("\(source): hyper_parameters.g_aggregation '\(aggregationName)' is neither 'sum' nor 'mean'")
        }
        let cap: Int? = h.has("max_neighbors") ? try h.int("max_neighbors") : (r.has("max_neighbors") ? try r.int("max_neighbors") : 32)
        let cutoff = try h.double("cutoff")
        let n = try h.int("n_rbf")
        guard try two.int("n") == n, try three.int("n") == n else {
            throw ModelFileError("\(source): rbf.twobody.n and rbf.threebody.n must equal hyper_parameters.n_rbf (\(n))")
        }
        self.init(elementCount: try h.int("n_elements"), featureCount: try h.int("g_feat_dim"),
                  tripletFeatureCount: try h.int("lg_feat_dim"), radialBasisCount: n, cutoff: cutoff,
                  interactionCount: try h.int("n_interactions"),
                  twoBodyGamma: Double(Float(try two.double("gamma_float32"))),
                  threeBodyGamma: Double(Float(try three.double("gamma_float32"))),
                  scaleMean: mean, scaleStd: std, aggregation: aggregation, averageNeighborCount: 1,
                  vectorNorm: .maxMin, vectorNormEpsilon: 0, maxNeighbors: cap, lineGraphRule: .atomIndex,
                  tripletBondCutoff: false, target: .energy)
        try validate(source: source)
    }

    /// `e_Z` of one atom (0 for elements without a reference energy).
    @inlinable public func elementEnergy(_ atomicNumber: Int) -> Double { elementEnergies[atomicNumber] ?? 0 }

    /// The reference network's options with the sizes of `self`.
    public var withReferenceOptions: ENINetConfiguration {
        var c = self
        c.aggregation = .mean
        c.vectorNorm = .maxMin
        c.maxNeighbors = 32
        c.lineGraphRule = .atomIndex
        c.tripletBondCutoff = false
        return c
    }

    /// Throws when sizes or options are out of range.
    public func validate(source: String) throws {
        func bad(_ what: String) -> ModelFileError { ModelFileError("\(source): invalid model configuration: \(what)") }
        guard elementCount >= 1 else { throw bad("n_elements = \(elementCount)") }
        guard featureCount >= 2, featureCount % 2 == 0 else { throw bad("g_feat_dim = \(featureCount) must be even and at least 2") }
        guard tripletFeatureCount >= 1 else { throw bad("lg_feat_dim = \(tripletFeatureCount)") }
        guard radialBasisCount >= 2 else { throw bad("n_rbf = \(radialBasisCount)") }
        guard cutoff > 0, cutoff.isFinite else { throw bad("cutoff = \(cutoff)") }
        // The three-body basis spans [0, 2 rc] in the network's precision: beyond Float's range
        // its centres became NaN and every frame failed (cutoff = 1e300 loaded).
        guard Float(2 * cutoff).isFinite else {
            throw bad("cutoff = \(cutoff) (twice it must be a finite single-precision number, below \(Float.greatestFiniteMagnitude / 2))")
        }
        // Without an interaction every atom's energy depends on its element alone: all forces zero.
        guard interactionCount >= 1 else { throw bad("n_interactions = \(interactionCount) (at least 1)") }
        guard twoBodyGamma > 0, threeBodyGamma > 0, twoBodyGamma.isFinite, threeBodyGamma.isFinite else {
            throw bad("rbf gamma must be positive and finite")
        }
        // The RMS norm divides by sqrt(mean square + ε): a negative ε can make that the square
        // root of a negative number, and zero divides by zero where the vectors cancel by
        // symmetry (every atom of a perfect lattice: forces of 1e15 eV/Å). The max/min norm
        // does not read ε (the reference layout sets 0).
        guard vectorNormEpsilon.isFinite, vectorNormEpsilon >= 0 else {
            throw bad("vector_norm_epsilon = \(vectorNormEpsilon) (must be finite and at least 0)")
        }
        guard vectorNorm != .rms || vectorNormEpsilon > 0 else {
            throw bad("vector_norm_epsilon = 0 with vector_norm = \"rms\" divides by zero where the vectors cancel by symmetry (a perfect lattice); give a positive value such as 1e-2")
        }
        guard scaleStd.isFinite, scaleMean.isFinite else { throw bad("scaler mean/std must be finite") }
        // A standard deviation of 0 makes every force 0; a negative one turns every force round.
        guard scaleStd > 0 else { throw bad("scaler std = \(scaleStd) (must be positive)") }
        for (z, e) in elementEnergies where !(z >= 0 && z < elementCount && e.isFinite) {
            throw bad("element_energies[\(z)] = \(e) (atomic number below n_elements, finite energy)")
        }
        guard averageNeighborCount > 0 else { throw bad("average_neighbor_count = \(averageNeighborCount)") }
        for z in species where !(z >= 0 && z < elementCount) {
            throw bad("species: \(Elements.symbol(of: z) ?? "atomic number \(z)") (atomic number \(z)) has no row in the embedding table (n_elements = \(elementCount))")
        }
        guard Set(species).count == species.count else { throw bad("species lists an element twice") }
        if let m = maxNeighbors, m < 1 { throw bad("max_neighbors = \(m)") }
    }
}

/// A parsed JSON value.
enum JSONValue: Decodable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }
}

/// Typed access to a JSON object with errors naming the file and key.
struct JSONReader {
    let object: [String: JSONValue]
    let source: String
    let path: String

    init(_ object: [String: JSONValue], source: String, path: String) {
        self.object = object
        self.source = source
        self.path = path
    }

    var keys: [String] { Array(object.keys) }

    func has(_ key: String) -> Bool {
        if case .null? = object[key] { return false }
        return object[key] != nil
    }

    private func value(_ key: String) throws -> JSONValue {
        guard let v = object[key] else { throw ModelFileError("\(source): missing key '\(path)\(key)'") }
        if case .null = v { throw ModelFileError("\(source): key '\(path)\(key)' is null") }
        return v
    }

    func double(_ key: String) throws -> Double {
        guard case .number(let d) = try value(key) else { throw ModelFileError("\(source): key '\(path)\(key)' is not a number") }
        return d
    }

    func int(_ key: String) throws -> Int {
        let d = try double(key)
        guard d == d.rounded(), abs(d) < 1e15 else { throw ModelFileError("\(source): key '\(path)\(key)' is not an integer") }
        return Int(d)
    }

    func bool(_ key: String) throws -> Bool {
        guard case .bool(let b) = try value(key) else { throw ModelFileError("\(source): key '\(path)\(key)' is not true/false") }
        return b
    }

    func string(_ key: String) throws -> String {
        guard case .string(let s) = try value(key) else { throw ModelFileError("\(source): key '\(path)\(key)' is not a string") }
        return s
    }

    func object(_ key: String) throws -> JSONReader {
        guard case .object(let o) = try value(key) else { throw ModelFileError("\(source): key '\(path)\(key)' is not an object") }
        return JSONReader(o, source: source, path: path + key + ".")
    }

    func strings(_ key: String) throws -> [String] {
        guard case .array(let items) = try value(key) else { throw ModelFileError("\(source): key '\(path)\(key)' is not an array") }
        return try items.enumerated().map { k, item in
            guard case .string(let s) = item else { throw ModelFileError("\(source): key '\(path)\(key)[\(k)]' is not a string") }
            return s
        }
    }

    func enumeration<E: RawRepresentable>(_ key: String) throws -> E where E.RawValue == String {
        let s = try string(key)
        guard let e = E(rawValue: s) else { throw ModelFileError("\(source): key '\(path)\(key)' has unknown value '\(s)'") }
        return e
    }
}
