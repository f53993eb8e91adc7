import Foundation
import XCTest
import Geometry
import Trajectory

/// Checks every shipped energy model for MD gets (`EthanolModelTests`, `AspirinModelTests`).
enum ShippedModelChecks {
    /// The 500 K runs over the full 100 ps instead of the suite's shorter ones.
    static let fullValidation = ProcessInfo.processInfo.environment["ENINETMD_FULL_VALIDATION"] == "1"

    /// The `[dynamics]` keys of the stability runs: Langevin at 500 K, 0.5 fs, friction 10/ps, seed 11.
    static func langevinAt500K(picoseconds: Int) -> String {
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

    /// One H atom moved away from the molecule along −z from its lowest atom (an H), so that
    /// its nearest neighbour is at d: from 3 to 4.9 Å in 0.01 Å steps, then across the cutoff
    /// (5 Å) in 1e-4 Å steps. At most 2 eV/Å on it, at most 1e-3 eV/Å of change of any force
    /// per 1e-4 Å step, and no force beyond the cutoff (`EthanolModelTests` says why).
    static func assertGentleForcesOnALoneHydrogen(model: URL, molecule path: URL, label: String, scratch dir: URL,
                                                  file: StaticString = #filePath, line: UInt = #line) throws {
        let molecule = try XCTUnwrap(try StructureFile.read(path: path.path).first)
        let anchor = try XCTUnwrap(molecule.positions.indices.min { molecule.positions[$0].z < molecule.positions[$1].z })
        XCTAssertEqual(molecule.atomicNumbers[anchor], 1, "the lowest atom should be an H", file: file, line: line)
        let coarse: [Double] = (0..<190).map { 3.0 + 0.01 * Double($0) }
        let fine: [Double] = (0...1002).map { 4.9 + 1e-4 * Double($0) }
        let distances = coarse + fine
        let frames = distances.map { d -> Structure in
            var frame = molecule
            frame.symbols.append("H")
            frame.atomicNumbers.append(1)
            frame.positions.append(molecule.positions[anchor] - Vec3(0, 0, d))
            return frame
        }
        for d in [3.0, 4.9999] {
            let lone = molecule.positions[anchor] - Vec3(0, 0, d)
            XCTAssertEqual(molecule.positions.map { norm($0 - lone) }.min() ?? 0, d, accuracy: 1e-9, "nearest neighbour at d", file: file, line: line)
        }
        let scan = dir.appendingPathComponent("scan.xyz")
        try StructureFile.write(frames, to: scan.path)
        var energies: [Double] = [], forces: [[Vec3]] = []
        for json in try CLI.evaluatedFrames(["--model", model.path, "--structure", scan.path], timeout: 300, file: file, line: line) {
            energies.append(try XCTUnwrap(json["energy"] as? Double))
            let f = try XCTUnwrap(json["forces"] as? [[Double]])
            forces.append(f.map { Vec3($0[0], $0[1], $0[2]) })
        }
        XCTAssertEqual(energies.count, distances.count, file: file, line: line)
        guard energies.count == distances.count else { return }
        let lone = molecule.positions.count
        let largest = forces.map { norm($0[lone]) }.enumerated().max { $0.element < $1.element }
        var steepest = 0.0, steepestAt = 0.0
        for k in coarse.count..<(distances.count - 1) {
            let change = zip(forces[k], forces[k + 1]).map { norm($1 - $0) }.max() ?? 0
            if change > steepest { (steepest, steepestAt) = (change, distances[k]) }
        }
        let beyond = distances.indices.filter { distances[$0] > 5.0 + 1e-9 }
        print("\(label) + lone H: largest force on it \(largest?.element ?? .nan) eV/Å at d = \(distances[largest?.offset ?? 0]) Å; largest change of any force between 1e-4 Å steps \(steepest) eV/Å (at \(steepestAt) Å); energy falls \(energies[0] - energies[distances.count - 1]) eV from 3 Å to beyond the cutoff")
        XCTAssertLessThan(largest?.element ?? .infinity, 2, "force on the lone H (eV/Å)", file: file, line: line)
        XCTAssertLessThan(steepest, 1e-3, "change of a force between 1e-4 Å steps (eV/Å), i.e. a slope of at most 10 eV/Å²", file: file, line: line)
        XCTAssertFalse(beyond.isEmpty, file: file, line: line)
        for k in beyond { XCTAssertEqual(norm(forces[k][lone]), 0, "no force beyond the cutoff, d = \(distances[k])", file: file, line: line) }
    }
}

/// The stability test of Fu et al. (2022), "Forces are not enough": a bond is a pair of atoms
/// closer than 1.65 Å on average over the reference data, and a simulation is unstable once a
/// bond leaves that mean by more than 0.5 Å.
struct BondStability {
    /// The bonds and their mean lengths over the reference frames.
    let bonds: [(pair: (Int, Int), mean: Double)]

    init(reference dataset: URL) throws {
        let frames = try StructureFile.read(path: dataset.path)
        let n = frames.first?.positions.count ?? 0
        var pairs: [(Int, Int)] = []
        for i in 0..<n { for j in (i + 1)..<n { pairs.append((i, j)) } }
        var sums = [Double](repeating: 0, count: pairs.count)
        for frame in frames {
            for (k, (i, j)) in pairs.enumerated() { sums[k] += norm(frame.positions[j] - frame.positions[i]) }
        }
        let count = Double(max(frames.count, 1))
        var found: [(pair: (Int, Int), mean: Double)] = []
        for (pair, sum) in zip(pairs, sums) where sum / count < 1.65 { found.append((pair, sum / count)) }
        bonds = found
    }

    /// The largest departure of a bond from its mean over every frame of `trajectory`.
    func largestDeviation(in trajectory: AmberTrajectoryReader) throws -> (deviation: Double, bond: (Int, Int), frame: Int) {
        var worst = (deviation: 0.0, bond: (0, 0), frame: 0)
        for index in 0..<trajectory.frameCount {
            let positions = try trajectory.frame(index).positions
            for (pair, mean) in bonds {
                let deviation = abs(norm(positions[pair.1] - positions[pair.0]) - mean)
                if deviation > worst.deviation { worst = (deviation, pair, index) }
            }
        }
        return worst
    }
}
