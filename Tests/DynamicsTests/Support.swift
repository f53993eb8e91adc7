import Foundation
import XCTest
import Geometry
import Potentials
import Dynamics

/// The ASE velocity-Verlet reference (Fixtures/ar108-lj-vv.txt, made by Scripts/make_ase_fixture.py).
struct ASEFixture {
    struct Frame { var step: Int; var epot: Double; var ekin: Double; var etot: Double; var stress: [Double]; var positions: [Vec3] }
    var cell: Cell
    var sigma = 0.0, epsilon = 0.0, cutoff = 0.0, timestep = 0.0
    var masses: [Double] = []
    var positions: [Vec3] = [], velocities: [Vec3] = [], forces: [Vec3] = []
    var frames: [Frame] = []

    static func load() throws -> ASEFixture {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/ar108-lj-vv.txt")
        let text = try String(contentsOf: url, encoding: .utf8)
        var lines = text.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }[...]
        func numbers(_ fields: [String]) throws -> [Double] {
            try fields.map { guard let x = Double($0) else { throw PotentialError("fixture: bad number \($0)") }; return x }
        }
        func take(_ key: String) throws -> [Double] {
            guard let l = lines.popFirst(), l.first == key else { throw PotentialError("fixture: expected \(key)") }
            return try numbers(Array(l.dropFirst()))
        }
        func vectors(_ n: Int) throws -> [Vec3] {
            try (0..<n).map { _ in
                guard let l = lines.popFirst() else { throw PotentialError("fixture truncated") }
                let v = try numbers(l)
                return Vec3(v[0], v[1], v[2])
            }
        }
        let n = Int(try take("atoms")[0])
        let c = try take("cell")
        var f = ASEFixture(cell: try Cell(matrix: Mat3(Vec3(c[0], c[1], c[2]), Vec3(c[3], c[4], c[5]), Vec3(c[6], c[7], c[8]))))
        let lj = try take("lj")
        (f.sigma, f.epsilon, f.cutoff, f.timestep) = (lj[0], lj[1], lj[2], lj[3])
        f.masses = try take("mass")
        f.positions = try vectors(n)
        f.velocities = try vectors(n)
        f.forces = try vectors(n)
        let count = Int(try take("frames")[0])
        for _ in 0..<count {
            let h = try take("frame")
            f.frames.append(Frame(step: Int(h[0]), epot: h[1], ekin: h[2], etot: h[3], stress: Array(h[4..<10]), positions: try vectors(n)))
        }
        return f
    }

    func state() throws -> MDState {
        try MDState(positions: positions, velocities: velocities, masses: masses, cell: cell,
                    atomicNumbers: Array(repeating: 18, count: masses.count))
    }
}

/// Argon fcc crystal of `m³` cubic cells (lattice constant `a`), velocities at `temperature`.
func argonCrystal(cells m: Int, a: Double = 5.26, temperature: Double, seed: UInt64) throws -> MDState {
    let basis = [Vec3(0, 0, 0), Vec3(0.5, 0.5, 0), Vec3(0.5, 0, 0.5), Vec3(0, 0.5, 0.5)]
    var positions: [Vec3] = []
    for x in 0..<m { for y in 0..<m { for z in 0..<m { for b in basis {
        positions.append((Vec3(Double(x), Double(y), Double(z)) + b) * a)
    }}}}
    let masses = Array(repeating: 39.948, count: positions.count)
    var random = RandomStream(seed: seed)
    let v = InitialVelocities.maxwellBoltzmann(masses: masses, temperature: temperature, random: &random)
    return try MDState(positions: positions, velocities: v, masses: masses,
                       cell: try Cell.orthorhombic(Vec3(repeating: a * Double(m))), atomicNumbers: Array(repeating: 18, count: positions.count))
}

/// Mean and the standard error of the mean from block averages (blocks much longer than the
/// correlation time make the blocks independent).
func blockStatistics(_ x: [Double], blocks: Int = 50) -> (mean: Double, standardError: Double) {
    let n = x.count / blocks * blocks
    let mean = x[0..<n].reduce(0, +) / Double(n)
    let size = n / blocks
    var sq = 0.0
    for b in 0..<blocks {
        let m = x[(b * size)..<((b + 1) * size)].reduce(0, +) / Double(size)
        sq += (m - mean) * (m - mean)
    }
    return (mean, (sq / Double(blocks - 1) / Double(blocks)).squareRoot())
}

/// Variance and its standard error (block estimate of the variance of (x − mean)²).
func varianceStatistics(_ x: [Double], blocks: Int = 50) -> (variance: Double, standardError: Double) {
    let mean = x.reduce(0, +) / Double(x.count)
    let s = blockStatistics(x.map { ($0 - mean) * ($0 - mean) }, blocks: blocks)
    return (s.mean, s.standardError)
}
