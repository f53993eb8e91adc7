import Foundation
import Geometry
import Trajectory

/// The stability test of Fu et al. (2022), "Forces are not enough": a bond is a pair of atoms
/// closer than 1.65 Å on average over the reference data, and a simulation is unstable once a
/// bond leaves that mean by more than 0.5 Å.
struct BondStability {
    let atomCount: Int
    /// Mean distance of every ordered pair over the reference frames, `[i * atomCount + j]`.
    let meanDistance: [Double]
    let bonds: [(Int, Int)]

    init(reference dataset: URL) throws {
        let frames = try StructureFile.read(path: dataset.path)
        let n = frames.first?.positions.count ?? 0
        var mean = [Double](repeating: 0, count: n * n)
        for frame in frames {
            for i in 0..<n { for j in 0..<n { mean[i * n + j] += norm(frame.positions[j] - frame.positions[i]) } }
        }
        atomCount = n
        meanDistance = mean.map { $0 / Double(max(frames.count, 1)) }
        bonds = (0..<n).flatMap { i in ((i + 1)..<n).map { (i, $0) } }.filter { mean[$0.0 * n + $0.1] / Double(max(frames.count, 1)) < 1.65 }
    }

    /// The `[dynamics]` keys of the test: Langevin at 500 K, 0.5 fs, friction 10/ps, seed 11.
    static func dynamics(picoseconds: Int) -> String {
        """
        integrator = "langevin"
        timestep_fs = 0.5
        steps = \(picoseconds * 2000)
        temperature_K = 500
        friction_per_ps = 10
        initial_temperature_K = 500
        seed = 11
        """
    }

    /// The largest departure of a bond from its mean over every frame of `trajectory`.
    func largestDeviation(in trajectory: AmberTrajectoryReader) throws -> (deviation: Double, bond: (Int, Int), frame: Int) {
        var worst = (deviation: 0.0, bond: (0, 0), frame: 0)
        for index in 0..<trajectory.frameCount {
            let positions = try trajectory.frame(index).positions
            for (i, j) in bonds {
                let deviation = abs(norm(positions[j] - positions[i]) - meanDistance[i * atomCount + j])
                if deviation > worst.deviation { worst = (deviation, (i, j), index) }
            }
        }
        return worst
    }
}
