import Foundation
import ENINet
import Geometry
import Tensors

/// What one epoch did (also written as a JSON line to the log).
public struct EpochReport: Sendable {
    public var epoch: Int
    public var step: Int
    public var trainLoss: Double
    public var validationLoss: Double
    public var validation: ErrorMetrics
    public var learningRate: Double
    public var samplesPerSecond: Double
    public var etaSeconds: Double
    /// Wall time since the training began, summed over resumed runs.
    public var elapsedSeconds: Double
    public var isBest: Bool

    /// The human-readable progress line.
    public var line: String {
        var s = String(format: "epoch %4d  step %6d  loss %.4e  val %.4e", epoch, step, trainLoss, validationLoss)
        if let a = validation.energyMAEmeVPerAtom, let b = validation.energyRMSEmeVPerAtom { s += String(format: "  E MAE %.3f RMSE %.3f meV/atom", a, b) }
        if let a = validation.forceMAEmeVPerA, let b = validation.forceRMSEmeVPerA { s += String(format: "  F MAE %.2f RMSE %.2f meV/Å", a, b) }
        if let d = validation.dipoleMAE { s += String(format: "  μ MAE %.4f eÅ", d) }
        if let a = validation.stressMAEmeVPerA3 { s += String(format: "  σ MAE %.3f meV/Å³", a) }
        s += String(format: "  lr %.2e  %.1f samples/s  %.0f s  ETA %.0f s", learningRate, samplesPerSecond, elapsedSeconds, etaSeconds)
        return s + (isBest ? "  *" : "")
    }

    public var json: String {
        var o: [String: Any] = ["epoch": epoch, "step": step, "train_loss": trainLoss, "validation_loss": validationLoss,
                                "learning_rate": learningRate, "samples_per_s": samplesPerSecond, "eta_s": etaSeconds, "elapsed_s": elapsedSeconds, "best": isBest]
        for (k, v) in validation.jsonObject { o["validation_" + k] = v }
        return JSONLine.string(o)
    }
}

/// Fits an ENINet model to labelled frames: AdamW with warm-up and reduce-on-plateau, gradient
/// clipping, an exponential moving average of the weights (used for validation and saving),
/// early stopping, and a checkpoint after every epoch from which `resume` continues exactly.
///
/// ```swift
/// let trainer = try Trainer<Float>(settings: settings, frames: try ExtendedXYZDataset.read(path: settings.dataFile))
/// let summary = try trainer.run(resume: false) { print($0.line) }
/// ```
public final class Trainer<T: ENINetFloat> {
    public let settings: TrainingSettings
    public let model: ENINetDifferentiableModel<T>
    public let statistics: TargetStatistics
    public let split: DatasetSplit
    public let optimizer: Adam<T>
    public private(set) var schedule: LearningRateSchedule
    public private(set) var average: ExponentialMovingAverage
    public private(set) var generator: SplitMix64
    public private(set) var epoch = 0
    public private(set) var step = 0
    public private(set) var bestValidationLoss = Double.infinity
    /// Whether the log holds this run's lines (a resumed run's, or a fresh run's after its first epoch).
    private var logStarted = false
    public private(set) var epochsSinceBest = 0
    /// Training wall time of the runs before this one (restored from the checkpoint).
    public private(set) var elapsedBeforeRun = 0.0
    private var runStarted = Date()
    private let prepared: [Int: PreparedFrame]
    private let gradient: BatchGradient<T>

    /// Prepares the split, fits the target statistics on the training frames and creates the
    /// network (freshly initialised from `settings.modelSeed`, or loaded from `settings.initialModel`).
    ///
    /// `frames` is the dataset the split indexes, followed by the `extraTrainingFrames` frames of
    /// `settings.extraTrainingFile`, which join the training split only.
    public init(settings: TrainingSettings, frames: [TrainingFrame], extraTrainingFrames: Int = 0) throws {
        self.settings = settings
        guard extraTrainingFrames >= 0, extraTrainingFrames < frames.count else {
            throw TrainingError("\(settings.dataFile): \(extraTrainingFrames) extra training frames of \(frames.count) in all")
        }
        let datasetCount = frames.count - extraTrainingFrames
        var split: DatasetSplit
        if let path = settings.splitFile {
            split = try DatasetSplit.read(path: path, frameCount: datasetCount)
        } else {
            split = try DatasetSplit.random(frameCount: datasetCount, train: settings.trainSize, validation: settings.validationSize,
                                            test: settings.testSize, seed: settings.splitSeed)
        }
        split.train += Array(datasetCount..<frames.count)
        self.split = split
        func frameName(_ i: Int) -> String {
            i < datasetCount ? "\(settings.dataFile): frame \(i)" : "\(settings.extraTrainingFile ?? "extra training data"): frame \(i - datasetCount)"
        }
        guard !split.train.isEmpty else { throw TrainingError("\(settings.dataFile): the split has no training frames") }
        if settings.weights.dipole > 0 {
            for i in split.train + split.validation + split.test where frames[i].dipole == nil {
                throw TrainingError("\(frameName(i)): no dipole, but loss.dipole_weight is \(settings.weights.dipole)")
            }
        }
        // Frames without a stress add nothing to its term (a dataset may mix molecules and
        // crystals), but a stress weight that no training frame can use means a wrong file.
        if settings.weights.stress > 0 && !split.train.contains(where: { frames[$0].labelledStress != nil }) {
            throw TrainingError("\(settings.dataFile): loss.stress_weight is \(settings.weights.stress), but no training frame has a stress (stress=\"...\" or virial=\"...\" in the comment line of a frame periodic along every axis)")
        }
        do {
            statistics = try TargetStatistics.fit(frames: split.train.map { frames[$0] }, cutoff: settings.cutoff, scale: settings.scale)
        } catch {
            // Frame indices are those of the data file (or, for extra training frames, of theirs).
            throw TrainingError("\(settings.dataFile)\(extraTrainingFrames > 0 ? " or \(settings.extraTrainingFile ?? "")" : ""): \(error)")
        }
        let trainedElements = Set(split.train.flatMap { frames[$0].atomicNumbers })
        let provenance = Self.provenance(settings: settings, split: split, datasetFrames: datasetCount,
                                         extraFrames: extraTrainingFrames)
        if let initial = settings.initialModel {
            var file = try ENINetModelFile(contentsOf: initial)
            // The loss follows model.target; fine-tuning a dipole model on energies (or the
            // reverse) would train its readout for the other quantity.
            guard file.configuration.target == settings.target else {
                throw TrainingError("\(initial): model.initial is a \(file.configuration.target.rawValue) model, but model.target is \(settings.target.rawValue)")
            }
            // A model that records its species knows them and the new data's; one that does not
            // (a reference export) keeps not saying.
            if !file.configuration.species.isEmpty {
                file.configuration.species = trainedElements.union(file.configuration.species).sorted()
            }
            if let epsilon = settings.vectorNormEpsilon {
                guard file.configuration.vectorNorm == .rms else {
                    throw TrainingError("\(initial): model.vector_norm_epsilon is given, but model.initial uses the reference max-min vector norm, which has no epsilon")
                }
                file.configuration.vectorNormEpsilon = epsilon
            }
            file.configuration.provenance = provenance
            model = try ENINetDifferentiableModel<T>(file: file)
        } else {
            var configuration = settings.modelConfiguration(statistics: statistics)
            // Caught here, the frame and atom can be named ("new model: invalid model configuration" said neither).
            for i in split.train {
                if let atom = frames[i].atomicNumbers.firstIndex(where: { $0 >= configuration.elementCount }) {
                    let z = frames[i].atomicNumbers[atom]
                    throw TrainingError("\(frameName(i)): atom \(atom) is \(Elements.symbol(of: z) ?? "Z = \(z)") (atomic number \(z)), beyond the network's table of elements 0..<\(configuration.elementCount)")
                }
            }
            configuration.species = trainedElements.sorted()
            configuration.provenance = provenance
            var g = SplitMix64(seed: settings.modelSeed)
            model = try ENINetDifferentiableModel<T>(configuration: configuration, using: &g)
        }
        // Found here rather than when the first validation or the final test evaluation meets
        // them: validation frames were scored with an untrained embedding row, choosing the best
        // model on it, and a test frame failed only after the whole training.
        for (part, frameIndices) in [("validation", split.validation), ("test", split.test)] {
            for i in frameIndices {
                do { try model.configuration.checkKnows(atomicNumbers: frames[i].atomicNumbers) } catch {
                    throw TrainingError("\(frameName(i)), a \(part) frame: \(error)")
                }
            }
        }
        var cache: [Int: PreparedFrame] = [:]
        for i in split.train + split.validation where cache[i] == nil {
            do { cache[i] = try PreparedFrame(frames[i], configuration: model.configuration) } catch {
                throw TrainingError("\(frameName(i)): \(error)")
            }
        }
        prepared = cache
        gradient = BatchGradient(model: model, workers: TensorThreads.count)
        optimizer = Adam<T>.adamW(parameters: model.parameters.tensors, learningRate: settings.learningRate, weightDecay: settings.weightDecay)
        schedule = LearningRateSchedule(base: settings.learningRate, warmupSteps: settings.warmupSteps, factor: settings.plateauFactor,
                                        patience: settings.plateauPatience, minimum: settings.minimumLearningRate)
        average = ExponentialMovingAverage(decay: settings.emaDecay, parameters: model.parameters.tensors)
        generator = SplitMix64(seed: settings.shuffleSeed)
    }

    /// What the model files of this training record as their provenance: file names (a path
    /// belongs to one machine), frame counts and the split.
    static func provenance(settings: TrainingSettings, split: DatasetSplit, datasetFrames: Int, extraFrames: Int) -> [String: String] {
        func name(_ path: String) -> String { URL(fileURLWithPath: path).lastPathComponent }
        var p = ["program": "eninet-md train", "data": name(settings.dataFile), "data_frames": String(datasetFrames),
                 "training_frames": String(split.train.count), "validation_frames": String(split.validation.count),
                 "test_frames": String(split.test.count),
                 "split": settings.splitFile.map(name) ?? "random, seed \(settings.splitSeed)"]
        if let extra = settings.extraTrainingFile {
            p["extra_training_data"] = name(extra)
            p["extra_training_frames"] = String(extraFrames)
        }
        if let initial = settings.initialModel { p["initial_model"] = name(initial) }
        return p
    }

    /// One optimiser step on `frames` (indices into the dataset): loss, double backward, clipping,
    /// AdamW, moving average. Returns the batch loss.
    ///
    /// The batch's structures are shared among the tensor threads (``BatchGradient``).
    @discardableResult
    public func trainingStep(frames indices: [Int]) throws -> BatchLoss<T> {
        let (loss, gradients) = try gradient.evaluate(try preparedFrames(indices), weights: settings.weights)
        let clipped = settings.gradientClip > 0 ? clipGradientNorm(gradients, maxNorm: settings.gradientClip).gradients : gradients
        optimizer.learningRate = schedule.rate(step: step)
        try optimizer.step(gradients: clipped)
        average.update(model.parameters.tensors)
        step += 1
        return loss
    }

    /// The batch of dataset frames `indices`.
    public func batch(_ indices: [Int]) throws -> TrainingBatch {
        try TrainingBatch(try preparedFrames(indices))
    }

    private func preparedFrames(_ indices: [Int]) throws -> [PreparedFrame] {
        try indices.map { i in
            guard let frame = prepared[i] else { throw TrainingError("frame \(i) is not a training or validation frame") }
            return frame
        }
    }

    /// Loss and errors over `indices` with the averaged weights.
    public func validate(_ indices: [Int]) throws -> (loss: Double, metrics: ErrorMetrics) {
        var metrics = ErrorMetrics()
        var total = 0.0
        try average.withAveragedWeights(model.parameters.tensors) {
            for start in stride(from: 0, to: indices.count, by: settings.batchSize) {
                let chunk = Array(indices[start..<min(start + settings.batchSize, indices.count)])
                let frames = try preparedFrames(chunk)
                let loss = try gradient.loss(frames, weights: settings.weights)
                total += loss.total.item.tensorDouble * Double(chunk.count)
                var atom = 0
                for (k, frame) in frames.map(\.frame).enumerated() {
                    let n = frame.atomCount
                    let f = loss.predictedForces.isEmpty ? nil : Array(loss.predictedForces[atom..<(atom + n)])
                    metrics.add(atomicNumbers: frame.atomicNumbers, energy: settings.target == .dipole ? nil : loss.predictedEnergies[k],
                                reference: frame.energy, forces: settings.target == .dipole ? nil : f, referenceForces: frame.forces,
                                dipole: loss.predictedDipoles.isEmpty ? nil : loss.predictedDipoles[k], referenceDipole: frame.dipole,
                                stress: loss.predictedStresses.isEmpty ? nil : loss.predictedStresses[k], referenceStress: frame.stress)
                    atom += n
                }
            }
        }
        return (total / Double(max(indices.count, 1)), metrics)
    }

    /// Trains until `maxEpochs`, early stopping or the time limit; after every epoch writes the
    /// checkpoint, appends to the log and, when the validation loss is the best so far, saves the
    /// averaged weights as the model file. With `resume`, first restores the checkpoint.
    ///
    /// `stopRequested` is polled between steps: when it returns true the run throws
    /// ``TrainingStopped`` at once, leaving the files of the last finished epoch (the
    /// checkpoint, the model and the log agree), from which `resume` continues.
    public func run(resume: Bool, stopRequested: () -> Bool = { false },
                    progress: (EpochReport) -> Void = { _ in }) throws -> EpochReport? {
        try prepareOutputs(resume: resume)
        let started = Date()
        runStarted = started
        var last: EpochReport? = nil
        // A run stopped by the limit and resumed is already past it: it would train one more
        // epoch each time.
        if let limit = settings.timeLimitMinutes, elapsedBeforeRun > 60 * limit { return nil }
        let monitored = split.validation.isEmpty ? split.train : split.validation
        while epoch < settings.maxEpochs && epochsSinceBest < settings.earlyStoppingPatience {
            let epochStart = Date()
            var order = split.train
            generator.shuffle(&order)
            var trainLoss = 0.0
            for start in stride(from: 0, to: order.count, by: settings.batchSize) {
                if stopRequested() { throw TrainingStopped(epoch: epoch, checkpointPath: settings.checkpointPath) }
                let chunk = Array(order[start..<min(start + settings.batchSize, order.count)])
                let loss = try trainingStep(frames: chunk)
                let value = loss.total.item.tensorDouble
                guard value.isFinite else { throw TrainingError("epoch \(epoch + 1), step \(step): the training loss is \(value) (lower optimizer.learning_rate)") }
                trainLoss += value * Double(chunk.count)
            }
            trainLoss /= Double(order.count)
            epoch += 1
            let (validationLoss, metrics) = try validate(monitored)
            guard validationLoss.isFinite else {
                throw TrainingError("epoch \(epoch): the \(split.validation.isEmpty ? "training" : "validation") frames' loss is \(validationLoss): a frame's labels lie far outside the others', or the weights diverged (lower optimizer.learning_rate)")
            }
            schedule.record(validationLoss: validationLoss)
            let isBest = validationLoss < bestValidationLoss
            if isBest {
                bestValidationLoss = validationLoss
                epochsSinceBest = 0
                try average.withAveragedWeights(model.parameters.tensors) {
                    try Self.replace(settings.modelPath) { try model.modelFile(dtype: T.self == Double.self ? .float64 : .float32).write(to: $0) }
                }
            } else {
                epochsSinceBest += 1
            }
            let seconds = Date().timeIntervalSince(epochStart)
            let elapsed = elapsedBeforeRun + Date().timeIntervalSince(started)
            var eta = seconds * Double(settings.maxEpochs - epoch)
            // The shipped ethanol run said 8,381 s at its first epoch and stopped at its 59-minute limit.
            if let limit = settings.timeLimitMinutes { eta = min(eta, max(0, 60 * limit - elapsed)) }
            let report = EpochReport(epoch: epoch, step: step, trainLoss: trainLoss, validationLoss: validationLoss, validation: metrics,
                                     learningRate: schedule.rate(step: step), samplesPerSecond: Double(order.count) / max(seconds, 1e-9),
                                     etaSeconds: eta, elapsedSeconds: elapsed, isBest: isBest)
            // The log line before the checkpoint: a run killed between the two leaves a line
            // that `resume` drops (``prepareOutputs(resume:)``) and writes again, identical.
            try appendLog(report.json)
            try writeCheckpoint(to: settings.checkpointPath)
            progress(report)
            last = report
            // The limit covers the whole training, so a resumed run stops where an uninterrupted one would have.
            if let limit = settings.timeLimitMinutes, report.elapsedSeconds > 60 * limit { break }
        }
        return last
    }

    /// Creates the output folders and checks that every output can be written. A fresh run
    /// leaves an earlier run's files as they are until its first epoch ends (``appendLog(_:)``
    /// then starts the new log, and the checkpoint and model are replaced): stopped before, it
    /// has changed nothing, and `resume` still continues the earlier run (deleting its
    /// checkpoint at the start lost it to a forgotten `--resume` and a Ctrl-C). A resumed run
    /// restores the checkpoint and keeps the log lines up to its epoch, creating the log if it
    /// is gone.
    private func prepareOutputs(resume: Bool) throws {
        let fm = FileManager.default
        for path in [settings.modelPath, settings.checkpointPath, settings.logPath] {
            let folder = (path as NSString).deletingLastPathComponent
            do { try fm.createDirectory(atPath: folder.isEmpty ? "." : folder, withIntermediateDirectories: true) } catch {
                throw TrainingError("\(folder): cannot create the output folder (\(error.localizedDescription))")
            }
            var isFolder: ObjCBool = false
            if fm.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
                throw TrainingError("\(path): is a folder; the training writes a file there")
            }
            guard fm.isWritableFile(atPath: folder.isEmpty ? "." : folder) else {
                throw TrainingError("\(path): cannot be written (its folder is not writable)")
            }
        }
        logStarted = resume
        if resume {
            try restoreCheckpoint(from: settings.checkpointPath)
            // A line cut short by a kill is no JSON, and is dropped with the epochs past the checkpoint.
            let kept = (try? String(contentsOfFile: settings.logPath, encoding: .utf8))?
                .split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).filter { line in
                    guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                          let logged = (object["epoch"] as? NSNumber)?.intValue else { return false }
                    return logged <= epoch
                } ?? []
            let text = kept.map { $0 + "\n" }.joined()
            do { try Self.replace(settings.logPath) { try Data(text.utf8).write(to: URL(fileURLWithPath: $0)) } } catch {
                throw TrainingError("\(settings.logPath): cannot rewrite the log (\(error))")
            }
        }
    }

    private func appendLog(_ line: String) throws {
        // A fresh run's first line replaces an earlier run's log (see ``prepareOutputs(resume:)``).
        if !logStarted {
            guard FileManager.default.createFile(atPath: settings.logPath, contents: Data()) else {
                throw TrainingError("\(settings.logPath): cannot create the log")
            }
            logStarted = true
        }
        guard let handle = FileHandle(forWritingAtPath: settings.logPath) else { throw TrainingError("\(settings.logPath): cannot open the log") }
        defer { try? handle.close() }
        handle.seekToEndOfFile()
        handle.write(Data((line + "\n").utf8))
    }

    // MARK: Checkpoints

    /// Writes through `write` to a fresh name beside `path`, then renames it over `path` with
    /// rename(2), which replaces atomically (Foundation's `replaceItemAt` fails on Linux when the
    /// target exists, and would leave no file at all).
    static func replace(_ path: String, _ write: (String) throws -> Void) throws {
        let url = URL(fileURLWithPath: path)
        let fresh = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).new").path
        try? FileManager.default.removeItem(atPath: fresh)
        try write(fresh)
        guard rename(fresh, path) == 0 else {
            try? FileManager.default.removeItem(atPath: fresh)
            throw TrainingError("\(path): cannot replace the file (errno \(errno))")
        }
    }

    /// Writes weights, optimiser moments, the moving average, the schedule, counters and the
    /// shuffling generator's state to one safetensors file (float64, written atomically).
    public func writeCheckpoint(to path: String) throws {
        var file = try model.modelFile(dtype: .float64)
        var weights = file.weights
        for (k, name) in model.parameters.names.enumerated() {
            let shape = model.parameters.tensors[k].shape
            weights.add(SafeTensor(name: "adam_m." + name, shape: shape, float64: optimizer.firstMoments[k]))
            weights.add(SafeTensor(name: "adam_v." + name, shape: shape, float64: optimizer.secondMoments[k]))
            weights.add(SafeTensor(name: "ema." + name, shape: shape, float64: average.shadow[k]))
        }
        let state: [String: Any] = [
            "epoch": epoch, "step": step, "adam_steps": optimizer.stepCount, "ema_updates": average.updates,
            "generator_state": String(generator.state), "epochs_since_best": epochsSinceBest,
            "plateau_bad_epochs": schedule.epochsWithoutImprovement,
            // Bit patterns: a resumed run must compare against exactly the same numbers.
            "best_validation_loss_bits": String(bestValidationLoss.bitPattern), "lr_reduction_bits": String(schedule.reduction.bitPattern),
            "plateau_best_bits": String(schedule.bestLoss.bitPattern),
            "elapsed_s": elapsedBeforeRun + Date().timeIntervalSince(runStarted),
        ]
        let data = try JSONSerialization.data(withJSONObject: state, options: [.sortedKeys])
        weights.metadata["training_state"] = String(decoding: data, as: UTF8.self)
        file.weights = weights
        try Self.replace(path) { try file.write(to: $0) }
    }

    /// Restores everything `writeCheckpoint` stored; the network's configuration must match.
    public func restoreCheckpoint(from path: String) throws {
        let file: ENINetModelFile
        do { file = try ENINetModelFile(contentsOf: path) } catch {
            throw TrainingError("\(path): cannot resume: \(error)")
        }
        guard file.configuration.describesTheSameNetwork(as: model.configuration) else {
            var epsilonOnly = file.configuration
            epsilonOnly.vectorNormEpsilon = model.configuration.vectorNormEpsilon
            if epsilonOnly.describesTheSameNetwork(as: model.configuration) {
                // Runs started before the default moved from 1e-8 to 1e-2 and never stated it.
                throw TrainingError("\(path): cannot resume: the checkpoint's vector_norm_epsilon is \(file.configuration.vectorNormEpsilon), these settings give \(model.configuration.vectorNormEpsilon) (the default for new models is \(TrainingSettings.defaultVectorNormEpsilon) since 2026-12-07); set model.vector_norm_epsilon = \(file.configuration.vectorNormEpsilon) to continue this run")
            }
            throw TrainingError("\(path): cannot resume: the checkpoint's model configuration differs from the one these settings and data give")
        }
        guard let json = file.weights.metadata["training_state"],
              let state = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            throw TrainingError("\(path): cannot resume: no 'training_state' in the metadata")
        }
        // The checkpoint is a file a user can edit or damage: every count must be a whole number
        // a run can reach, and every loss a number or +infinity (no best yet).
        func count(_ key: String) throws -> Int {
            guard let n = state[key] as? NSNumber else { throw TrainingError("\(path): training_state.\(key) is missing") }
            let x = n.doubleValue
            guard x >= 0, x <= 1e15, x.rounded() == x else {
                throw TrainingError("\(path): cannot resume: training_state.\(key) = \(x) is not a count (a whole number from 0 to 1e15)")
            }
            return Int(x)
        }
        for (k, name) in model.parameters.names.enumerated() {
            let p = model.parameters.tensors[k]
            do {
                try p.assign(try file.weights.doubles(name, shape: p.shape).map { T(tensorDouble: $0) })
                optimizer.firstMoments[k] = try file.weights.doubles("adam_m." + name, shape: p.shape)
                optimizer.secondMoments[k] = try file.weights.doubles("adam_v." + name, shape: p.shape)
                average.shadow[k] = try file.weights.doubles("ema." + name, shape: p.shape)
            } catch { throw TrainingError("\(path): cannot resume: \(error)") }
        }
        guard let g = state["generator_state"] as? String, let gs = UInt64(g) else { throw TrainingError("\(path): training_state.generator_state is missing") }
        generator = SplitMix64(seed: gs)
        epoch = try count("epoch")
        step = try count("step")
        optimizer.stepCount = try count("adam_steps")
        average.updates = try count("ema_updates")
        func bits(_ key: String, allowing range: ClosedRange<Double>) throws -> Double {
            guard let s = state[key] as? String, let b = UInt64(s) else { throw TrainingError("\(path): training_state.\(key) is missing") }
            let x = Double(bitPattern: b)
            guard range.contains(x) else {
                throw TrainingError("\(path): cannot resume: training_state.\(key) holds \(x), outside \(range.lowerBound)...\(range.upperBound)")
            }
            return x
        }
        bestValidationLoss = try bits("best_validation_loss_bits", allowing: 0...Double.infinity)
        epochsSinceBest = try count("epochs_since_best")
        schedule.reduction = try bits("lr_reduction_bits", allowing: 0...1)
        schedule.bestLoss = try bits("plateau_best_bits", allowing: 0...Double.infinity)
        schedule.epochsWithoutImprovement = try count("plateau_bad_epochs")
        // Absent from checkpoints written before the time was recorded.
        elapsedBeforeRun = (state["elapsed_s"] as? NSNumber)?.doubleValue ?? 0
        guard elapsedBeforeRun.isFinite, elapsedBeforeRun >= 0 else {
            throw TrainingError("\(path): cannot resume: training_state.elapsed_s = \(elapsedBeforeRun) is not a time")
        }
    }
}

/// A training stopped on request (a signal) between two steps of `epoch + 1`.
public struct TrainingStopped: Error, CustomStringConvertible {
    /// The last finished epoch, the one the checkpoint holds.
    public let epoch: Int
    public let checkpointPath: String
    public var description: String {
        epoch == 0 ? "stopped during the first epoch, before any checkpoint"
                   : "stopped during epoch \(epoch + 1); \(checkpointPath) holds epoch \(epoch), from which --resume continues"
    }
}
