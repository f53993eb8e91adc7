import ArgumentParser
import Deck
import ENINet
import Foundation
import Tensors
import Training

/// `eninet-md train CONFIG.toml`: fits an ENINet model to an extended-XYZ dataset
/// (keys: `Docs/training.md`).
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Train an ENINet model from a TOML config.",
        discussion: """
        Reads the dataset named by data.file, splits it, fits the energy scale, and trains with AdamW. \
        After every epoch it prints a progress line, appends a JSON line to output.log, writes \
        output.checkpoint and, when the validation loss improves, saves the averaged weights as output.model \
        (the file `run` and `evaluate` use). --resume continues from the checkpoint exactly.
        """)

    @Argument(help: "Training configuration (TOML).")
    var config: String

    @Flag(help: "Continue from the checkpoint in the output directory.")
    var resume = false

    @Flag(help: "Print only the final summary.")
    var quiet = false

    @OptionGroup var threadOptions: ThreadOptions

    func run() throws {
        threadOptions.apply()
        do {
            let settings = try Self.settings(path: config)
            let dataset = try ExtendedXYZDataset.read(path: settings.dataFile)
            let extra = try settings.extraTrainingFile.map { try ExtendedXYZDataset.read(path: $0) } ?? []
            let frames = dataset + extra
            switch settings.precision {
            case .float: try train(Trainer<Float>(settings: settings, frames: frames, extraTrainingFrames: extra.count), frames: frames, extraCount: extra.count)
            case .double: try train(Trainer<Double>(settings: settings, frames: frames, extraTrainingFrames: extra.count), frames: frames, extraCount: extra.count)
            }
        } catch let error as TrainingError {
            throw TrainFailure(message: error.description)
        } catch let error as ModelFileError {
            throw TrainFailure(message: error.description)
        }
    }

    private func train<T: ENINetFloat>(_ trainer: Trainer<T>, frames: [TrainingFrame], extraCount: Int) throws {
        let s = trainer.settings, st = trainer.statistics
        if !quiet {
            print("data: \(frames.count) frames\(extraCount == 0 ? "" : ", \(extraCount) of them from the extra training file"); train \(trainer.split.train.count), validation \(trainer.split.validation.count), test \(trainer.split.test.count)")
            print(String(format: "scaler: mean %.6f eV/atom, std %.6f (%@); average neighbours %.3f; %d parameters",
                         st.mean, st.std, s.scale.rawValue, st.averageNeighborCount, trainer.model.parameters.scalarCount))
            if TensorThreads.count > 1 {
                print("threads: \(TensorThreads.count); each batch's structures are shared among them (a given thread count reproduces its own run exactly)")
            }
        }
        if trainer.split.validation.isEmpty {
            printError("warning: no validation frames (data.validation = 0, or an empty list in data.split_file): the training frames' loss picks the best model and drives the plateau and early stopping")
        }
        StopSignal.install()
        let last: EpochReport?
        do {
            last = try trainer.run(resume: resume, stopRequested: { StopSignal.requested }) { report in if !quiet { print(report.line) } }
        } catch let stopped as TrainingStopped {
            throw TrainFailure(message: "\(StopSignal.cause): \(stopped)")
        }
        if let signal = StopSignal.signal {
            throw TrainFailure(message: "\(StopSignal.name(signal)): stopped after the training, before the test evaluation; the files are complete")
        }
        StopSignal.uninstall()
        print("best model: \(s.modelPath) (validation loss \(String(format: "%.5e", trainer.bestValidationLoss)), \(last?.epoch ?? trainer.epoch) epochs)")
        if !trainer.split.test.isEmpty, FileManager.default.fileExists(atPath: s.modelPath) {
            let model = try ENINetModel(contentsOf: s.modelPath, precision: s.precision)
            let metrics = try DatasetEvaluation.evaluate(model: model, frames: trainer.split.test.map { frames[$0] })
            print("test: " + metrics.jsonString())
        }
    }

    /// Reads a TOML file into settings: tables become dotted keys; errors name file, line and key.
    static func settings(path: String) throws -> TrainingSettings {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw TrainingError("\(path): cannot read (\(error.localizedDescription))")
        }
        let text: String
        do { text = try DeckLoader.utf8Text(data, file: path) } catch { throw TrainingError("\(error)") }
        let root: TOMLTable
        do { root = try TOMLParser.parse(text, file: path) } catch { throw TrainingError("\(error)") }
        var values: [String: SettingValue] = [:], lines: [String: Int] = [:]
        func walk(_ table: TOMLTable, prefix: String) throws {
            for key in table.keys {
                guard let node = table[key] else { continue }
                let name = prefix.isEmpty ? key : prefix + "." + key
                lines[name] = node.line
                switch node.value {
                case .table(let t): try walk(t, prefix: name)
                case .string(let s): values[name] = .string(s)
                case .integer(let i): values[name] = .integer(Int(i))
                case .float(let d): values[name] = .float(d)
                case .boolean(let b): values[name] = .boolean(b)
                case .array: throw TrainingError("\(path):\(node.line): '\(name)' must not be an array")
                }
            }
        }
        try walk(root, prefix: "")
        let base = URL(fileURLWithPath: path).deletingLastPathComponent().path
        return try TrainingSettings(values: values, source: path, baseDirectory: base, lines: lines)
    }
}

/// A failure at run time: message on stderr, exit code 1, no usage text.
struct TrainFailure: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
