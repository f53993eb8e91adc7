import XCTest
import Geometry
@testable import Analysis

final class MSDTests: XCTestCase {
    /// A Gaussian random walk with steps of variance 2DΔt per component, folded into a
    /// periodic box: unwrapping restores the walk and the MSD slope gives D.
    func testRandomWalkDiffusionCoefficientThroughPeriodicBoundaries() throws {
        var rng = SeededGenerator(seed: 42)
        let atoms = 400, frames = 2000, dt = 10.0
        let diffusion = 0.002            // Å²/fs (a liquid-like 2e-5 cm²/s is 0.0002)
        let sigma = (2 * diffusion * dt).squareRoot()
        let box = 12.0
        let cell = try Cell.orthorhombic(Vec3(box, box, box))
        var walk = [Double](repeating: 0, count: frames * atoms * 3)
        for c in 0..<(atoms * 3) { walk[c] = Double.random(in: 0..<box, using: &rng) }
        for t in 1..<frames {
            for c in 0..<(atoms * 3) { walk[t * atoms * 3 + c] = walk[(t - 1) * atoms * 3 + c] + sigma * rng.gaussian() }
        }
        var wrapped = walk
        for t in 0..<frames {
            for i in 0..<atoms {
                let o = 3 * (t * atoms + i)
                let r = cell.wrap(Vec3(walk[o], walk[o + 1], walk[o + 2]))
                wrapped[o] = r.x
                wrapped[o + 1] = r.y
                wrapped[o + 2] = r.z
            }
        }
        // The walk leaves the box many times (√(6·D·T) ≈ 15 Å > 12 Å).
        let unwrapped = try Unwrapping.unwrap(wrapped, atomCount: atoms, cells: [cell])
        for i in stride(from: 0, to: walk.count, by: 997) { XCTAssertEqual(unwrapped[i], walk[i], accuracy: 1e-9) }
        XCTAssertGreaterThan(zip(wrapped, walk).filter { abs($0 - $1) > 1 }.count, walk.count / 10)

        let symbols = (0..<atoms).map { $0 % 4 == 0 ? "O" : "H" }
        let r = try MeanSquaredDisplacement.compute(unwrappedPositions: unwrapped, atomCount: atoms, frameSpacing: dt,
                                                    symbols: symbols, options: .init(maxLag: 400, blocks: 4))
        let total = r.diffusion[0]
        XCTAssertEqual(total.name, "total")
        XCTAssertEqual(total.coefficient, diffusion, accuracy: 0.03 * diffusion)
        XCTAssertNotNil(total.standardError)
        // MSD at lag m equals the brute-force average for a few lags.
        for m in [1, 37, 400] {
            var s = 0.0
            for t in 0..<(frames - m) {
                for c in 0..<(atoms * 3) {
                    let d = walk[(t + m) * atoms * 3 + c] - walk[t * atoms * 3 + c]
                    s += d * d
                }
            }
            let brute = s / Double((frames - m) * atoms)
            XCTAssertEqual(r.curves[0].values[m], brute, accuracy: 1e-9 * brute, "lag \(m)")
        }
        // Spacings from single-precision times put the lags just past round numbers: the fit
        // range 800–3200 fs, which the default (20–80 % of the largest lag) meets to 1e-5 fs,
        // dropped its last lag and gave another D.
        let single = 10.000000149011612
        let byDefault = try MeanSquaredDisplacement.compute(unwrappedPositions: unwrapped, atomCount: atoms, frameSpacing: single,
                                                            symbols: symbols, options: .init(maxLag: 400))
        let explicit = try MeanSquaredDisplacement.compute(unwrappedPositions: unwrapped, atomCount: atoms, frameSpacing: single,
                                                           symbols: symbols, options: .init(maxLag: 400, fitRange: 800...3200))
        XCTAssertEqual(byDefault.diffusion[0].coefficient, explicit.diffusion[0].coefficient)
        print("random walk: D = \(total.coefficient) ± \(total.standardError ?? .nan) Å²/fs (true \(diffusion)); O \(r.diffusion[1].coefficient), H \(r.diffusion[2].coefficient)")
    }

    /// Two species walking with different D: each element's curve and coefficient are its own
    /// atoms' (the walk above gives O and H one D, so a swap of labels would not show there).
    func testEachElementGetsItsOwnDiffusionCoefficient() throws {
        var rng = SeededGenerator(seed: 7)
        let atoms = 600, frames = 2000, dt = 10.0
        let symbols = (0..<atoms).map { $0 % 3 == 0 ? "O" : "H" }
        let diffusion: [String: Double] = ["O": 0.0005, "H": 0.004]
        var walk = [Double](repeating: 0, count: frames * atoms * 3)
        for t in 1..<frames {
            for i in 0..<atoms {
                let sigma = (2 * (diffusion[symbols[i]] ?? 0) * dt).squareRoot()
                for x in 0..<3 { walk[(t * atoms + i) * 3 + x] = walk[((t - 1) * atoms + i) * 3 + x] + sigma * rng.gaussian() }
            }
        }
        let r = try MeanSquaredDisplacement.compute(unwrappedPositions: walk, atomCount: atoms, frameSpacing: dt,
                                                    symbols: symbols, options: .init(maxLag: 300))
        let byName = Dictionary(uniqueKeysWithValues: r.diffusion.map { ($0.name, $0.coefficient) })
        XCTAssertEqual(try XCTUnwrap(byName["O"]), 0.0005, accuracy: 0.06 * 0.0005)
        XCTAssertEqual(try XCTUnwrap(byName["H"]), 0.004, accuracy: 0.06 * 0.004)
        // The total is the atom-weighted mean: 1/3 O and 2/3 H.
        XCTAssertEqual(try XCTUnwrap(byName["total"]), (0.0005 + 2 * 0.004) / 3, accuracy: 0.05 * 0.003)
    }

    /// A uniform drift of the whole system adds (vτ)² to the MSD; removing the centre-of-mass
    /// motion takes it out again.
    func testCenterOfMassDriftRemoval() throws {
        var rng = SeededGenerator(seed: 8)
        let atoms = 300, frames = 1000, dt = 5.0, diffusion = 0.001
        let sigma = (2 * diffusion * dt).squareRoot()
        let drift = Vec3(0.01, -0.004, 0.002)   // Å/fs
        var walk = [Double](repeating: 0, count: frames * atoms * 3)
        for t in 1..<frames {
            for i in 0..<atoms {
                for k in 0..<3 {
                    let o = (t * atoms + i) * 3 + k
                    walk[o] = walk[o - atoms * 3] + sigma * rng.gaussian() + drift[k] * dt
                }
            }
        }
        let symbols = [String](repeating: "Ar", count: atoms)
        let masses = [Double](repeating: 39.948, count: atoms)
        let options = MeanSquaredDisplacement.Options(maxLag: 200)
        let drifting = try MeanSquaredDisplacement.compute(unwrappedPositions: walk, atomCount: atoms, frameSpacing: dt,
                                                           symbols: symbols, options: options)
        let cleaned = try MeanSquaredDisplacement.compute(
            unwrappedPositions: try Unwrapping.removingCenterOfMassMotion(walk, atomCount: atoms, masses: masses),
            atomCount: atoms, frameSpacing: dt, symbols: symbols, options: options)
        // At τ = 1000 fs the drift adds |v|²τ² = 116 Å² to 6Dτ = 6 Å².
        XCTAssertGreaterThan(drifting.curves[0].values[200], 100)
        XCTAssertEqual(cleaned.diffusion[0].coefficient, diffusion, accuracy: 0.05 * diffusion)
        XCTAssertEqual(cleaned.diffusion.count, 1)   // one element: no separate element entry
    }

    func testCentralDifferenceVelocitiesOfAQuadraticPath() throws {
        // r(t) = a + b t + c t²: the central difference is exact, b + 2ct.
        let dt = 0.5
        let positions = (0..<10).flatMap { t -> [Double] in
            let x = Double(t) * dt
            return [1 + 2 * x + 3 * x * x, -1 + 0.5 * x, 4 - x * x]
        }
        let v = Unwrapping.centralDifferenceVelocities(positions, atomCount: 1, frameSpacing: dt)
        XCTAssertEqual(v.count, 8 * 3)
        for t in 1..<9 {
            let x = Double(t) * dt
            XCTAssertEqual(v[3 * (t - 1)], 2 + 6 * x, accuracy: 1e-12)
            XCTAssertEqual(v[3 * (t - 1) + 1], 0.5, accuracy: 1e-12)
            XCTAssertEqual(v[3 * (t - 1) + 2], -2 * x, accuracy: 1e-12)
        }
    }
}
