import Foundation
import ENINet

/// One value of a training configuration, as a TOML reader hands it over.
public enum SettingValue: Equatable, Sendable {
    case string(String)
    case integer(Int)
    case float(Double)
    case boolean(Bool)
}

/// Everything `eninet-md train` needs, with the defaults documented in `Docs/training.md`.
///
/// Keys are dotted (`optimizer.learning_rate`); every value is checked, and a mistake is
/// reported with its key (and line, when the reader knows it).
public struct TrainingSettings: Equatable, Sendable {
    // [data]
    public var dataFile = ""
    public var splitFile: String? = nil
    /// Frames appended to the training split only (for example configurations found by running
    /// the model and labelled afterwards), never to validation or test.
    public var extraTrainingFile: String? = nil
    public var trainSize: Double = 0.8
    public var validationSize: Double = 0.1
    public var testSize: Double? = nil
    public var splitSeed: UInt64 = 1
    public var batchSize = 8
    // [model]
    public var target: ENINetConfiguration.Target = .energy
    public var featureCount = 32
    public var tripletFeatureCount = 4
    public var radialBasisCount = 16
    public var cutoff = 5.0
    public var interactionCount = 2
    public var smooth = true
    /// The smooth variant's ε in `sqrt(mean |v|² + ε)`, when the configuration gives one. With
    /// `model.initial` it replaces the initial model's ε (it changes no weight's shape).
    public var vectorNormEpsilon: Double? = nil
    /// Large enough that an atom whose every neighbour is near the cutoff keeps gentle forces:
    /// at 1e-8 (the default before 2026-12-07) the shipped ethanol model pushed a lone H with
    /// 703 eV/Å at 7e-4 Å inside the cutoff (`Docs/model-files.md`).
    public static let defaultVectorNormEpsilon = 1e-2
    public var precision: ENINetPrecision = .float
    public var modelSeed: UInt64 = 1
    public var initialModel: String? = nil
    // [targets]
    public var scale: TargetStatistics.Scale = .forceRMS
    // [loss]
    public var weights = LossWeights()
    // [optimizer]
    public var learningRate = 1e-3
    public var weightDecay = 0.0
    public var warmupSteps = 100
    public var plateauFactor = 0.5
    public var plateauPatience = 10
    public var minimumLearningRate = 1e-6
    public var emaDecay = 0.99
    public var gradientClip = 10.0
    public var earlyStoppingPatience = 40
    public var maxEpochs = 1000
    public var timeLimitMinutes: Double? = nil
    public var shuffleSeed: UInt64 = 1
    // [output]
    public var outputDirectory = "training"
    public var modelName = "model.safetensors"
    public var checkpointName = "checkpoint.safetensors"
    public var logName = "log.jsonl"

    public init() {}

    /// Every key the reader accepts, with its default, for documentation and error messages.
    public static let keys: [String] = [
        "data.file", "data.split_file", "data.extra_training_file", "data.train", "data.validation", "data.test", "data.seed", "data.batch_size",
        "model.target", "model.features", "model.triplet_features", "model.rbf", "model.cutoff", "model.interactions",
        "model.variant", "model.vector_norm_epsilon", "model.precision", "model.seed", "model.initial",
        "targets.scale",
        "loss.energy_weight", "loss.force_weight", "loss.dipole_weight", "loss.stress_weight", "loss.energy_per_atom",
        "optimizer.learning_rate", "optimizer.weight_decay", "optimizer.warmup_steps", "optimizer.plateau_factor",
        "optimizer.plateau_patience", "optimizer.min_learning_rate", "optimizer.ema_decay", "optimizer.gradient_clip",
        "optimizer.early_stopping_patience", "optimizer.max_epochs", "optimizer.time_limit_minutes", "optimizer.seed",
        "output.directory", "output.model", "output.checkpoint", "output.log",
    ]

    /// Settings from dotted keys. Relative paths are taken relative to `baseDirectory`;
    /// `lines` (optional) gives the line of each key for messages.
    public init(values: [String: SettingValue], source: String, baseDirectory: String, lines: [String: Int] = [:]) throws {
        func at(_ key: String) -> String { lines[key].map { "\(source):\($0)" } ?? source }
        for key in values.keys.sorted() where !Self.keys.contains(key) {
            let near = Self.keys.first { $0.split(separator: ".").last == key.split(separator: ".").last }
            throw TrainingError("\(at(key)): unknown key '\(key)'" + (near.map { " (did you mean '\($0)'?)" } ?? ""))
        }
        func number(_ key: String, _ range: ClosedRange<Double>) throws -> Double? {
            guard let v = values[key] else { return nil }
            let x: Double
            switch v {
            case .integer(let i): x = Double(i)
            case .float(let d): x = d
            default: throw TrainingError("\(at(key)): '\(key)' must be a number")
            }
            guard x.isFinite, range.contains(x) else { throw TrainingError("\(at(key)): '\(key)' = \(x) is outside \(range)") }
            return x
        }
        func integer(_ key: String, _ range: ClosedRange<Int>) throws -> Int? {
            guard let v = values[key] else { return nil }
            guard case .integer(let i) = v else { throw TrainingError("\(at(key)): '\(key)' must be an integer") }
            guard range.contains(i) else { throw TrainingError("\(at(key)): '\(key)' = \(i) is outside \(range)") }
            return i
        }
        func string(_ key: String) throws -> String? {
            guard let v = values[key] else { return nil }
            guard case .string(let s) = v, !s.isEmpty else { throw TrainingError("\(at(key)): '\(key)' must be a non-empty string") }
            // The file system cuts a path at a NUL, where the checks between outputs and inputs do not.
            guard !s.unicodeScalars.contains("\0") else { throw TrainingError("\(at(key)): '\(key)' contains a NUL character (\\u0000)") }
            return s
        }
        func boolean(_ key: String) throws -> Bool? {
            guard let v = values[key] else { return nil }
            guard case .boolean(let b) = v else { throw TrainingError("\(at(key)): '\(key)' must be true or false") }
            return b
        }
        func choice<E: RawRepresentable>(_ key: String, _ options: [E]) throws -> E? where E.RawValue == String {
            guard let s = try string(key) else { return nil }
            guard let e = options.first(where: { $0.rawValue == s }) else {
                throw TrainingError("\(at(key)): '\(key)' = '\(s)' is not one of \(options.map { $0.rawValue }.joined(separator: ", "))")
            }
            return e
        }
        func path(_ p: String) -> String {
            p.hasPrefix("/") ? p : URL(fileURLWithPath: baseDirectory).appendingPathComponent(p).standardized.path
        }
        guard let file = try string("data.file") else { throw TrainingError("\(source): missing key 'data.file' (the extended-XYZ dataset)") }
        dataFile = path(file)
        splitFile = try string("data.split_file").map(path)
        extraTrainingFile = try string("data.extra_training_file").map(path)
        if let extra = extraTrainingFile, Self.canonical(extra) == Self.canonical(dataFile) {
            throw TrainingError("\(at("data.extra_training_file")): 'data.extra_training_file' is data.file itself; its validation and test frames would be trained on")
        }
        if splitFile != nil, let key = ["data.train", "data.validation", "data.test"].first(where: { values[$0] != nil }) {
            throw TrainingError("\(at(key)): '\(key)' and 'data.split_file' both set the split; give one of them")
        }
        if let x = try number("data.train", 0...1e9) { trainSize = x }
        if let x = try number("data.validation", 0...1e9) { validationSize = x }
        testSize = try number("data.test", 0...1e9)
        for key in ["data.train", "data.validation", "data.test"] {
            if let x = try number(key, 0...1e9), x >= 1, x != x.rounded() {
                throw TrainingError("\(at(key)): '\(key)' = \(x) must be a whole count or a fraction below 1")
            }
        }
        if let x = try integer("data.seed", 0...Int.max) { splitSeed = UInt64(x) }
        if let x = try integer("data.batch_size", 1...100_000) { batchSize = x }
        if let x = try choice("model.target", [ENINetConfiguration.Target.energy, .dipole]) { target = x }
        if let x = try integer("model.features", 2...4096) {
            guard x % 2 == 0 else { throw TrainingError("\(at("model.features")): 'model.features' = \(x) must be even") }
            featureCount = x
        }
        if let x = try integer("model.triplet_features", 1...4096) { tripletFeatureCount = x }
        if let x = try integer("model.rbf", 2...1024) { radialBasisCount = x }
        if let x = try number("model.cutoff", 0.5...50) { cutoff = x }
        if let x = try integer("model.interactions", 1...32) { interactionCount = x }
        if let s = try string("model.variant") {
            guard s == "smooth" || s == "reference" else {
                throw TrainingError("\(at("model.variant")): 'model.variant' = '\(s)' is not one of smooth, reference")
            }
            smooth = s == "smooth"
        }
        if let x = try number("model.vector_norm_epsilon", 1e-30...1) {
            guard smooth else {
                throw TrainingError("\(at("model.vector_norm_epsilon")): 'model.vector_norm_epsilon' belongs to the smooth variant; the reference variant's max-min norm has none")
            }
            vectorNormEpsilon = x
        }
        if let x = try choice("model.precision", [ENINetPrecision.float, .double]) { precision = x }
        if let x = try integer("model.seed", 0...Int.max) { modelSeed = UInt64(x) }
        initialModel = try string("model.initial").map(path)
        if let x = try choice("targets.scale", TargetStatistics.Scale.allCases) { scale = x }
        if target == .dipole { weights = LossWeights(energy: 0, forces: 0, dipole: 1) }
        if let x = try number("loss.energy_weight", 0...1e12) { weights.energy = x }
        if let x = try number("loss.force_weight", 0...1e12) { weights.forces = x }
        if let x = try number("loss.dipole_weight", 0...1e12) { weights.dipole = x }
        if let x = try number("loss.stress_weight", 0...1e12) {
            guard target == .energy || x == 0 else {
                throw TrainingError("\(at("loss.stress_weight")): 'loss.stress_weight' must be 0 for a dipole model (model.target = \"dipole\"), whose output is no energy")
            }
            weights.stress = x
        }
        if let x = try boolean("loss.energy_per_atom") { weights.energyPerAtom = x }
        if target == .dipole, let key = ["loss.energy_weight", "loss.force_weight"].first(where: { (try? number($0, 0...1e12)) ?? 0 > 0 }) {
            throw TrainingError("\(at(key)): '\(key)' must be 0 for a dipole model (model.target = \"dipole\"), whose output is no energy")
        }
        guard weights.energy + weights.forces + weights.dipole + weights.stress > 0 else {
            throw TrainingError("\(source): every loss weight is zero (loss.energy_weight, loss.force_weight, loss.dipole_weight, loss.stress_weight)")
        }
        if let x = try number("optimizer.learning_rate", 1e-12...10) { learningRate = x }
        if let x = try number("optimizer.weight_decay", 0...10) { weightDecay = x }
        if let x = try integer("optimizer.warmup_steps", 0...100_000_000) { warmupSteps = x }
        if let x = try number("optimizer.plateau_factor", 1e-6...1) { plateauFactor = x }
        if let x = try integer("optimizer.plateau_patience", 0...1_000_000) { plateauPatience = x }
        if let x = try number("optimizer.min_learning_rate", 0...10) {
            // The schedule never goes below the minimum, so a minimum above the rate raised the
            // rate from the first step.
            guard x <= learningRate else {
                throw TrainingError("\(at("optimizer.min_learning_rate")): 'optimizer.min_learning_rate' = \(x) is above 'optimizer.learning_rate' = \(learningRate)")
            }
            minimumLearningRate = x
        } else {
            // The default's ratio to the default rate, so that a low rate is still reduced.
            minimumLearningRate = min(minimumLearningRate, learningRate * 1e-3)
        }
        if let x = try number("optimizer.ema_decay", 0...0.999999999) { emaDecay = x }
        if let x = try number("optimizer.gradient_clip", 0...1e12) { gradientClip = x }
        if let x = try integer("optimizer.early_stopping_patience", 1...1_000_000) { earlyStoppingPatience = x }
        if let x = try integer("optimizer.max_epochs", 1...100_000_000) { maxEpochs = x }
        timeLimitMinutes = try number("optimizer.time_limit_minutes", 0...1e9)
        if let x = try integer("optimizer.seed", 0...Int.max) { shuffleSeed = UInt64(x) }
        outputDirectory = path(try string("output.directory") ?? "training")
        if let s = try string("output.model") { modelName = s }
        if let s = try string("output.checkpoint") { checkpointName = s }
        if let s = try string("output.log") { logName = s }
        // The three outputs are written at different moments; two names for one file would
        // leave the last writer's content (a checkpoint as the model, log lines after the tensors).
        // Nor may an output name an input: `log = "data.extxyz"` truncated the data to JSON lines.
        let outputs = [("output.model", modelPath), ("output.checkpoint", checkpointPath), ("output.log", logPath)]
        let inputs = [("the configuration", source), ("data.file", dataFile), ("data.split_file", splitFile),
                      ("data.extra_training_file", extraTrainingFile), ("model.initial", initialModel)]
            .compactMap { role, path in path.map { (role, Self.canonical($0)) } }
        for (k, (key, file)) in outputs.enumerated() {
            let name = URL(fileURLWithPath: file).lastPathComponent
            guard !file.hasSuffix("/"), name != ".", name != ".." else {
                throw TrainingError("\(at(key)): '\(key)' must name a file, not a directory ('\(file)')")
            }
            let canonical = Self.canonical(file)
            if let other = outputs[..<k].first(where: { Self.canonical($0.1) == canonical }) {
                throw TrainingError("\(at(key)): '\(key)' and '\(other.0)' name the same file, \(canonical)")
            }
            if let input = inputs.first(where: { $0.1 == canonical }) {
                throw TrainingError("\(at(key)): '\(key)' would overwrite \(input.0), \(canonical)")
            }
        }
    }

    /// The file a path names, symbolic links followed, for telling whether two paths are one file.
    static func canonical(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path }

    public var modelPath: String { (outputDirectory as NSString).appendingPathComponent(modelName) }
    public var checkpointPath: String { (outputDirectory as NSString).appendingPathComponent(checkpointName) }
    public var logPath: String { (outputDirectory as NSString).appendingPathComponent(logName) }

    /// The network configuration these settings describe (the scaler and neighbour count come
    /// from the data).
    public func modelConfiguration(statistics: TargetStatistics) -> ENINetConfiguration {
        var c = ENINetConfiguration(featureCount: featureCount, tripletFeatureCount: tripletFeatureCount,
                                    radialBasisCount: radialBasisCount, cutoff: cutoff, interactionCount: interactionCount,
                                    scaleMean: target == .energy ? statistics.mean : 0,
                                    scaleStd: target == .energy ? statistics.std : 1,
                                    elementEnergies: target == .energy && !statistics.constantComposition ? statistics.elementEnergies : [:],
                                    averageNeighborCount: statistics.averageNeighborCount, target: target)
        if smooth {
            c.vectorNormEpsilon = vectorNormEpsilon ?? Self.defaultVectorNormEpsilon
        } else {
            c = c.withReferenceOptions; c.aggregation = .sum
        }
        return c
    }
}
