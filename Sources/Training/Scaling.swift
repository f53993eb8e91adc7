import Foundation
import ENINet
import Geometry

/// The statistics of a training set that fix a model's output scale before training.
public struct TargetStatistics: Equatable, Sendable {
    /// Least-squares reference energy of each element (eV), `E ≈ Σ_i e_{Z_i}`.
    public var elementEnergies: [Int: Double]
    /// `mean` of the model's scaler: per-atom energy offset (after the element energies for data
    /// of mixed composition; including them for data of one composition).
    public var mean: Double
    /// `std` of the model's scaler.
    public var std: Double
    /// Mean in-degree of an atom within the cutoff (divisor of `normalized_sum`).
    public var averageNeighborCount: Double
    /// Whether every frame has the same composition, so the element energies fold exactly into `mean`.
    public var constantComposition: Bool

    /// How the scaler's `std` is chosen.
    public enum Scale: String, Sendable, CaseIterable {
        /// Root mean square of the force components (the scale of an MD force field).
        case forceRMS = "force_rms"
        /// Standard deviation of the per-atom energy left after the element energies.
        case energyStd = "energy_std"
    }

    /// Fits element energies by least squares (normal equations, a 1e-8 ridge for elements
    /// that always appear together), then the scaler.
    ///
    /// For data of mixed composition the model stores the element energies
    /// (`ENINetConfiguration.elementEnergies`) and `mean` is the average per-atom residual. For a
    /// dataset of one composition the element energies are not determined individually (only
    /// their sum is) and `Σ_i e_{Z_i}` is the same for every frame, so it folds into `mean`.
    public static func fit(frames: [TrainingFrame], cutoff: Double, scale: Scale) throws -> TargetStatistics {
        guard !frames.isEmpty else { throw TrainingError("no training frames to fit the energy scale on") }
        let elements = Array(Set(frames.flatMap { $0.atomicNumbers })).sorted()
        let column = Dictionary(uniqueKeysWithValues: elements.enumerated().map { ($1, $0) })
        let m = elements.count
        var ata = [Double](repeating: 0, count: m * m), atb = [Double](repeating: 0, count: m)
        var compositions = Set<[Int]>()
        for f in frames {
            var counts = [Double](repeating: 0, count: m)
            for z in f.atomicNumbers { counts[column[z] ?? 0] += 1 }
            compositions.insert(counts.map { Int($0) })
            for a in 0..<m {
                atb[a] += counts[a] * f.energy
                for b in 0..<m { ata[a * m + b] += counts[a] * counts[b] }
            }
        }
        // Elements that always appear in the same ratio make the system singular: then a tiny
        // ridge picks the smallest-norm solution (their sum is all the data fixes).
        let e: [Double]
        if let exact = try? solve(ata, atb, m) { e = exact } else {
            let ridge = 1e-8 * (ata.enumerated().filter { $0.offset % (m + 1) == 0 }.map { $0.element }.max() ?? 1)
            for a in 0..<m { ata[a * m + a] += ridge }
            e = try solve(ata, atb, m)
        }
        let elementEnergies = Dictionary(uniqueKeysWithValues: zip(elements, e))
        let constant = compositions.count == 1
        var residualPerAtom: [Double] = []
        for f in frames {
            let reference = f.atomicNumbers.reduce(0) { $0 + (elementEnergies[$1] ?? 0) }
            residualPerAtom.append((f.energy - reference) / Double(f.atomCount))
        }
        let mean: Double
        if constant, let f = frames.first {
            let reference = f.atomicNumbers.reduce(0) { $0 + (elementEnergies[$1] ?? 0) } / Double(f.atomCount)
            mean = reference + residualPerAtom.reduce(0, +) / Double(frames.count)
        } else {
            mean = residualPerAtom.reduce(0, +) / Double(frames.count)
        }
        var std: Double
        switch scale {
        case .forceRMS:
            var sum = 0.0, count = 0
            for f in frames { for v in f.forces { sum += (v * v).sum(); count += 3 } }
            std = (sum / Double(max(count, 1))).squareRoot()
        case .energyStd:
            let mu = residualPerAtom.reduce(0, +) / Double(residualPerAtom.count)
            std = (residualPerAtom.reduce(0) { $0 + ($1 - mu) * ($1 - mu) } / Double(residualPerAtom.count)).squareRoot()
        }
        if !(std > 1e-9) || !std.isFinite { std = 1 }
        var degreeSum = 0, atoms = 0
        for f in frames {
            let list = NeighborList(cutoff: cutoff, skin: 0, kind: .full)
            do { _ = try list.update(positions: f.positions, cell: f.cell) } catch {
                throw TrainingError("frame \(f.index): \(error)")
            }
            for i in 0..<f.atomCount {
                for k in Int(list.start[i])..<Int(list.start[i + 1]) {
                    let d = f.positions[Int(list.neighbor[k])] + list.shiftVectors[Int(list.shiftIndex[k])] - f.positions[i]
                    if (d * d).sum() < cutoff * cutoff { degreeSum += 1 }
                }
            }
            atoms += f.atomCount
        }
        let average = max(Double(degreeSum) / Double(max(atoms, 1)), 1)
        return TargetStatistics(elementEnergies: elementEnergies, mean: mean, std: std, averageNeighborCount: average,
                                constantComposition: constant)
    }

    /// Gaussian elimination with partial pivoting on a small dense system.
    static func solve(_ a: [Double], _ b: [Double], _ m: Int) throws -> [Double] {
        var a = a, b = b
        let largest = a.map { abs($0) }.max() ?? 0
        for col in 0..<m {
            var pivot = col
            for r in col..<m where abs(a[r * m + col]) > abs(a[pivot * m + col]) { pivot = r }
            guard abs(a[pivot * m + col]) > 1e-10 * largest else { throw TrainingError("element energy fit: singular system") }
            if pivot != col {
                for c in 0..<m { a.swapAt(col * m + c, pivot * m + c) }
                b.swapAt(col, pivot)
            }
            for r in (col + 1)..<m {
                let factor = a[r * m + col] / a[col * m + col]
                for c in col..<m { a[r * m + c] -= factor * a[col * m + c] }
                b[r] -= factor * b[col]
            }
        }
        var x = [Double](repeating: 0, count: m)
        for r in stride(from: m - 1, through: 0, by: -1) {
            var s = b[r]
            for c in (r + 1)..<m { s -= a[r * m + c] * x[c] }
            x[r] = s / a[r * m + r]
        }
        return x
    }
}
