import Foundation
import ENINet
import Geometry

/// Mean absolute and root-mean-square errors of energies, forces, dipoles and stresses, overall
/// and (energies and forces) per element.
public struct ErrorMetrics: Sendable {
    private(set) var energyAbs = 0.0, energySquare = 0.0, frames = 0, energyFrames = 0
    private(set) var forceAbs = 0.0, forceSquare = 0.0, forceComponents = 0
    private(set) var dipoleAbs = 0.0, dipoleSquare = 0.0, dipoleComponents = 0
    private(set) var stressAbs = 0.0, stressSquare = 0.0, stressComponents = 0
    private(set) var elementForce: [Int: (abs: Double, square: Double, count: Int)] = [:]
    private(set) var elementEnergy: [Int: (abs: Double, square: Double, count: Int)] = [:]
    /// (reference, predicted) energy per atom and force components, for parity plots.
    public private(set) var energyPairs: [(Double, Double)] = []
    public private(set) var forcePairs: [(Double, Double)] = []

    public init() {}

    /// Adds one frame: energies in eV (total), forces in eV/Å, dipoles in e·Å, stresses in eV/Å³
    /// (all nine components count).
    public mutating func add(atomicNumbers: [Int], energy: Double?, reference: Double, forces: [Vec3]?, referenceForces: [Vec3],
                             dipole: Vec3?, referenceDipole: Vec3?, stress: Mat3? = nil, referenceStress: Mat3? = nil) {
        let n = Double(atomicNumbers.count)
        frames += 1
        if let energy {
            let e = (energy - reference) / n
            energyAbs += abs(e); energySquare += e * e; energyFrames += 1
            energyPairs.append((reference / n, energy / n))
            for z in Set(atomicNumbers) {
                var s = elementEnergy[z] ?? (0, 0, 0)
                s.abs += abs(e); s.square += e * e; s.count += 1
                elementEnergy[z] = s
            }
        }
        if let forces, forces.count == referenceForces.count {
            for (i, (f, r)) in zip(forces, referenceForces).enumerated() {
                var s = elementForce[atomicNumbers[i]] ?? (0, 0, 0)
                for c in 0..<3 {
                    let d = f[c] - r[c]
                    forceAbs += abs(d); forceSquare += d * d; forceComponents += 1
                    s.abs += abs(d); s.square += d * d; s.count += 1
                    forcePairs.append((r[c], f[c]))
                }
                elementForce[atomicNumbers[i]] = s
            }
        }
        if let dipole, let referenceDipole {
            for c in 0..<3 {
                let d = dipole[c] - referenceDipole[c]
                dipoleAbs += abs(d); dipoleSquare += d * d; dipoleComponents += 1
            }
        }
        if let stress, let referenceStress {
            for row in 0..<3 {
                for col in 0..<3 {
                    let d = stress[row, col] - referenceStress[row, col]
                    stressAbs += abs(d); stressSquare += d * d; stressComponents += 1
                }
            }
        }
    }

    public var frameCount: Int { frames }
    /// Energy errors per atom (nil for dipole models, which predict no energy).
    public var energyMAEmeVPerAtom: Double? { energyFrames > 0 ? 1000 * energyAbs / Double(energyFrames) : nil }
    public var energyRMSEmeVPerAtom: Double? { energyFrames > 0 ? 1000 * (energySquare / Double(energyFrames)).squareRoot() : nil }
    public var forceMAEmeVPerA: Double? { forceComponents > 0 ? 1000 * forceAbs / Double(forceComponents) : nil }
    public var forceRMSEmeVPerA: Double? { forceComponents > 0 ? 1000 * (forceSquare / Double(forceComponents)).squareRoot() : nil }
    /// Mean absolute error per dipole component (e·Å).
    public var dipoleMAE: Double? { dipoleComponents > 0 ? dipoleAbs / Double(dipoleComponents) : nil }
    public var dipoleRMSE: Double? { dipoleComponents > 0 ? (dipoleSquare / Double(dipoleComponents)).squareRoot() : nil }
    /// Errors per stress component (meV/Å³; 1 meV/Å³ is 0.1602 GPa), over the frames with a stress.
    public var stressMAEmeVPerA3: Double? { stressComponents > 0 ? 1000 * stressAbs / Double(stressComponents) : nil }
    public var stressRMSEmeVPerA3: Double? { stressComponents > 0 ? 1000 * (stressSquare / Double(stressComponents)).squareRoot() : nil }

    /// Per element: force MAE/RMSE (meV/Å) over that element's atoms, and the energy MAE/RMSE
    /// (meV/atom) over the frames that contain it.
    public var perElement: [(atomicNumber: Int, forceMAE: Double, forceRMSE: Double, energyMAE: Double, energyRMSE: Double)] {
        Set(elementEnergy.keys).union(elementForce.keys).sorted().map { z in
            let f = elementForce[z] ?? (0, 0, 0), e = elementEnergy[z] ?? (0, 0, 0)
            return (z, 1000 * f.abs / Double(max(f.count, 1)), 1000 * (f.square / Double(max(f.count, 1))).squareRoot(),
                    1000 * e.abs / Double(max(e.count, 1)), 1000 * (e.square / Double(max(e.count, 1))).squareRoot())
        }
    }

    /// The overall figures as one JSON object (the keys `eninet-md evaluate --data --json` prints).
    public var jsonObject: [String: Any] {
        var o: [String: Any] = ["frames": frames]
        if let x = energyMAEmeVPerAtom { o["energy_mae_meV_per_atom"] = x }
        if let x = energyRMSEmeVPerAtom { o["energy_rmse_meV_per_atom"] = x }
        if let x = forceMAEmeVPerA { o["force_mae_meV_per_A"] = x }
        if let x = forceRMSEmeVPerA { o["force_rmse_meV_per_A"] = x }
        if let x = dipoleMAE { o["dipole_mae_eA"] = x }
        if let x = dipoleRMSE { o["dipole_rmse_eA"] = x }
        if let x = stressMAEmeVPerA3 { o["stress_mae_meV_per_A3"] = x }
        if let x = stressRMSEmeVPerA3 { o["stress_rmse_meV_per_A3"] = x }
        return o
    }

    public func jsonString() -> String { JSONLine.string(jsonObject) }

    /// A parity plot (predicted against reference) of energies per atom and force components.
    public func paritySVG() -> String {
        func panel(_ pairs: [(Double, Double)], x0: Double, title: String) -> String {
            guard let lo0 = pairs.map({ min($0.0, $0.1) }).min(), let hi0 = pairs.map({ max($0.0, $0.1) }).max() else { return "" }
            let pad = max((hi0 - lo0) * 0.05, 1e-9)
            let lo = lo0 - pad, hi = hi0 + pad, size = 360.0
            func px(_ v: Double) -> Double { x0 + 40 + (v - lo) / (hi - lo) * size }
            func py(_ v: Double) -> Double { 30 + size - (v - lo) / (hi - lo) * size }
            var s = "<text x=\"\(x0 + 40)\" y=\"20\" font-size=\"13\">\(title)</text>\n"
            s += "<rect x=\"\(x0 + 40)\" y=\"30\" width=\"\(size)\" height=\"\(size)\" fill=\"none\" stroke=\"black\"/>\n"
            s += "<line x1=\"\(px(lo))\" y1=\"\(py(lo))\" x2=\"\(px(hi))\" y2=\"\(py(hi))\" stroke=\"gray\"/>\n"
            let stride = max(1, pairs.count / 5000)
            for k in Swift.stride(from: 0, to: pairs.count, by: stride) {
                s += String(format: "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"1.5\" fill=\"steelblue\"/>\n", px(pairs[k].0), py(pairs[k].1))
            }
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">%.4g … %.4g (x: reference, y: model)</text>\n", x0 + 40, 30 + size + 20, lo, hi)
            return s
        }
        return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"900\" height=\"440\">\n"
            + panel(energyPairs, x0: 0, title: "energy per atom (eV)")
            + panel(forcePairs, x0: 450, title: "force components (eV/Å)") + "</svg>\n"
    }
}

/// A frame the model could not evaluate; the caller names the file.
public struct FrameEvaluationError: Error, CustomStringConvertible {
    public let frame: Int
    public let reason: String
    public var description: String { "frame \(frame): \(reason)" }
}

/// A polarizability model: no labelled dataset holds its output. The caller names the model file.
public struct UnscorableModelError: Error, CustomStringConvertible {
    public var description: String { "the model predicts polarizabilities, which a dataset of energies, forces and dipoles cannot score" }
}

/// Errors of a saved model on labelled frames (what `eninet-md evaluate --data` prints).
public enum DatasetEvaluation {
    public static func evaluate(model: ENINetModel, frames: [TrainingFrame]) throws -> ErrorMetrics {
        let dipoleModel: Bool
        switch model.configuration.target {
        case .energy: dipoleModel = false
        case .dipole: dipoleModel = true
        // Scored as an energy model, it gave errors of thousands of meV and no error.
        case .polarizability: throw UnscorableModelError()
        }
        var metrics = ErrorMetrics()
        let list = model.makeNeighborList(skin: 1.0)
        for f in frames {
            if dipoleModel && f.dipole == nil {
                throw FrameEvaluationError(frame: f.index, reason: "no reference dipole (dipole=\"x y z\" in the comment line), which a dipole model is scored against")
            }
            let out: ENINetOutput
            do {
                let graph = try model.graph(positions: f.positions, cell: f.cell, neighborList: list)
                out = try model.evaluate(atomicNumbers: f.atomicNumbers, positions: f.positions, graph: graph, forces: !dipoleModel)
            } catch {
                throw FrameEvaluationError(frame: f.index, reason: "\(error)")
            }
            let mu = dipoleModel ? out.dipole(positions: f.positions, atomicNumbers: f.atomicNumbers) : nil
            // One overflow would turn every error figure into NaN with no hint of its frame.
            guard mu.map(\.isFinite) ?? (out.energy.isFinite && out.forces.allSatisfy(\.isFinite)
                                         && [out.virial.rows.0, out.virial.rows.1, out.virial.rows.2].allSatisfy(\.isFinite)) else {
                throw FrameEvaluationError(frame: f.index, reason: "the model's \(dipoleModel ? "dipole is" : "energy or forces are") not finite")
            }
            // The configurational stress, −W/V in ASE's sign, as the labels are.
            let stress = dipoleModel ? nil : f.labelledStress.map { (-1 / $0.volume) * out.virial }
            metrics.add(atomicNumbers: f.atomicNumbers, energy: dipoleModel ? nil : out.energy, reference: f.energy,
                        forces: dipoleModel ? nil : out.forces, referenceForces: f.forces,
                        dipole: mu, referenceDipole: f.dipole, stress: stress, referenceStress: f.stress)
        }
        return metrics
    }
}

/// One JSON object on one line, keys sorted. JSON has no infinity or NaN, and Foundation's
/// writer fails on them (leaving no line at all): they are written as `null`.
enum JSONLine {
    static func string(_ object: [String: Any]) -> String {
        let finite = object.mapValues { value -> Any in
            if let x = value as? Double, !x.isFinite { return NSNull() }
            return value
        }
        guard let data = try? JSONSerialization.data(withJSONObject: finite, options: [.sortedKeys]) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
