import ENINet
import Foundation
import Geometry
import Training

extension Evaluate {
    /// `evaluate --data D`: energy, force and dipole errors of the model on a labelled dataset,
    /// per element and overall; `--json` prints the overall figures as one JSON object.
    func evaluateDataset(_ network: ENINetModel, path: String) throws {
        let metrics: ErrorMetrics
        do {
            metrics = try DatasetEvaluation.evaluate(model: network, frames: try ExtendedXYZDataset.read(path: path))
        } catch let error as TrainingError {
            throw EvaluateError(description: error.description)
        } catch let error as UnscorableModelError {
            throw EvaluateError(description: "\(model): \(error); --structure prints them")
        } catch {
            throw EvaluateError(description: "\(path): \(error)")
        }
        if let parity {
            do { try metrics.paritySVG().write(toFile: parity, atomically: true, encoding: .utf8) } catch {
                throw EvaluateError(description: "\(parity): cannot write the parity plot (\(error.localizedDescription))")
            }
        }
        if json {
            print(metrics.jsonString())
            return
        }
        print("\(metrics.frameCount) frames of \(path)")
        func f(_ x: Double?) -> String { x.map { String(format: "%10.3f", $0) } ?? "         -" }
        let hasEnergy = metrics.energyMAEmeVPerAtom != nil, hasForce = metrics.forceMAEmeVPerA != nil
        // A dipole model has no energy or force errors: the table would be dashes only.
        if hasEnergy || hasForce {
            print("element    E MAE      E RMSE (meV/atom, frames containing it)   F MAE      F RMSE (meV/Å)")
            for e in metrics.perElement {
                let symbol = Elements.symbol(of: e.atomicNumber) ?? "\(e.atomicNumber)"
                print("\(symbol.padding(toLength: 8, withPad: " ", startingAt: 0)) \(f(hasEnergy ? e.energyMAE : nil)) \(f(hasEnergy ? e.energyRMSE : nil))                               \(f(hasForce ? e.forceMAE : nil)) \(f(hasForce ? e.forceRMSE : nil))")
            }
            print("overall  \(f(metrics.energyMAEmeVPerAtom)) \(f(metrics.energyRMSEmeVPerAtom))                               \(f(metrics.forceMAEmeVPerA)) \(f(metrics.forceRMSEmeVPerA))")
        }
        if let d = metrics.dipoleMAE, let r = metrics.dipoleRMSE { print(String(format: "dipole: MAE %.5f e·Å, RMSE %.5f e·Å (per component)", d, r)) }
        if let d = metrics.stressMAEmeVPerA3, let r = metrics.stressRMSEmeVPerA3 {
            print(String(format: "stress: MAE %.4f meV/Å³, RMSE %.4f meV/Å³ (per component; 1 meV/Å³ = 0.1602 GPa)", d, r))
        }
    }
}
