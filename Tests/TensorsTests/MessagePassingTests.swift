import Foundation
import XCTest
@testable import Tensors

/// A small equivariant message-passing network on a random graph, trained on forces: the
/// gradient of Σ(−∂E/∂x − F_ref)² with respect to the weights is a gradient of a gradient.
final class MessagePassingTests: XCTestCase {
    typealias T = Tensor<Double>

    struct Graph {
        let atoms: Int
        let source: [Int32]
        let destination: [Int32]
    }

    static func randomSystem(atoms: Int, cutoff: Double, seed: UInt64) -> ([Double], Graph) {
        var rng = SplitMix64(seed: seed)
        var positions: [Double] = []
        for _ in 0..<(3 * atoms) { positions.append(Double.random(in: 0...2.5, using: &rng)) }
        var src: [Int32] = [], dst: [Int32] = []
        for i in 0..<atoms {
            for j in 0..<atoms where i != j {
                var d2 = 0.0
                for k in 0..<3 { let d = positions[3 * j + k] - positions[3 * i + k]; d2 += d * d }
                if d2 < cutoff * cutoff { src.append(Int32(i)); dst.append(Int32(j)) }
            }
        }
        return (positions, Graph(atoms: atoms, source: src, destination: dst))
    }

    static let cutoff = 3.0
    static let channels = 4
    static let basis = 3

    static func makeParameters(seed: UInt64) throws -> ParameterSet<Double> {
        var rng = SplitMix64(seed: seed)
        let p = ParameterSet<Double>()
        let f = channels, k = basis
        func add(_ name: String, _ shape: [Int]) throws {
            try p.add(name, T.randomNormal(shape, standardDeviation: 0.5, using: &rng))
        }
        try add("embedding", [1, f])
        try add("message.weight", [f, f + k]); try add("message.bias", [f])
        try add("vector.weight", [f, f])
        try add("mix.weight", [f, f])
        try add("norm.weight", [f]); try add("norm.bias", [f])
        try add("readout.weight", [1, 2 * f]); try add("readout.bias", [1])
        return p
    }

    /// Energy of the configuration: one interaction layer with scalar and vector channels.
    static func energy(_ positions: T, _ graph: Graph, _ p: ParameterSet<Double>) throws -> T {
        let n = graph.atoms
        let x = try positions.reshaped([n, 3])
        let d = try x.gather(rows: graph.destination) - x.gather(rows: graph.source)   // [E, 3]
        let r = try d.norm(axis: 1, keepingDimensions: true)                           // [E, 1]
        let unit = try d / r
        let centres = try T(shape: [basis], scalars: (0..<basis).map { cutoff * Double($0) / Double(basis - 1) })
        let spacing = cutoff / Double(basis - 1)
        let rbf = try ((r - centres).square() * (-1 / spacing)).exp()                   // [E, K]
        let fc = ((r * (Double.pi / cutoff)).cos() + 1) * 0.5                        // [E, 1]

        let h = try p.tensor("embedding").expanded(to: [n, channels])
        let hs = try h.gather(rows: graph.source)
        let m = try linear(concat([hs, rbf], axis: 1), weight: p.tensor("message.weight"),
                           bias: p.tensor("message.bias")).silu() * fc                  // [E, F]
        let vm = try linear(m, weight: p.tensor("vector.weight"))                       // [E, F]
        let v = try unit.unsqueezed(2) * vm.unsqueezed(1)                               // [E, 3, F]
        let hNew = try h + m.scatterAdd(rows: graph.destination, count: n)
        let vNew = try linear(v.scatterAdd(rows: graph.destination, count: n), weight: p.tensor("mix.weight"))
        let features = try concat([hNew.layerNorm(weight: p.tensor("norm.weight"), bias: p.tensor("norm.bias")),
                                   vNew.norm(axis: 1)], axis: 1)
        let atomic = try linear(features, weight: p.tensor("readout.weight"), bias: p.tensor("readout.bias"))
        return atomic.sum()
    }

    /// Gathers and scatters take every row in range and refuse, with an error naming the
    /// operation, a negative index, the row count itself, and one beyond 2³¹ read as unsigned.
    func testIndicesOutsideTheRowsAreErrors() throws {
        let x = try T(shape: [5, 2], scalars: (0..<10).map(Double.init))
        let all: [Int32] = [4, 0, 3, 1, 2, 4, 4, 0, 1]
        XCTAssertEqual(try x.gather(rows: all).scalars[0...1], [8, 9])
        XCTAssertEqual(try x.gather(rows: []).shape, [0, 2])
        for bad: [Int32] in [[0, -1, 2], [5], [1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 5], [Int32.min], [Int32.max]] {
            XCTAssertThrowsError(try x.gather(rows: bad)) { XCTAssertTrue("\($0)".contains("gather"), "\($0)") }
            let rows = try T(shape: [bad.count, 2], scalars: [Double](repeating: 1, count: 2 * bad.count))
            XCTAssertThrowsError(try rows.scatterAdd(rows: bad, count: 5)) { XCTAssertTrue("\($0)".contains("scatterAdd"), "\($0)") }
        }
        let summed = try T(shape: [9, 2], scalars: [Double](repeating: 1, count: 18)).scatterAdd(rows: all, count: 5)
        XCTAssertEqual(summed.scalars, [2, 2, 2, 2, 1, 1, 1, 1, 3, 3])
    }

    func testForceLossGradientMatchesFiniteDifferences() throws {
        let (coordinates, graph) = Self.randomSystem(atoms: 5, cutoff: Self.cutoff, seed: 11)
        XCTAssertGreaterThan(graph.source.count, 8)
        let positions = try T(shape: [15], scalars: coordinates, requiresGrad: true)
        let p = try Self.makeParameters(seed: 3)
        var rng = SplitMix64(seed: 5)
        let reference = T.randomNormal([15], using: &rng)

        func loss(createGraph: Bool) throws -> T {
            let e = try Self.energy(positions, graph, p)
            let forces = -(try grad(of: e, wrt: [positions], createGraph: createGraph)[0])
            return try (forces - reference).square().sum()
        }
        let analytic = try grad(of: loss(createGraph: true), wrt: p.tensors)
        let numeric = try GradientCheck.numericGradient(p.tensors) { try loss(createGraph: false).item }
        var worst = 0.0
        for (a, n) in zip(analytic, numeric) {
            worst = max(worst, GradientCheck.relativeError(a.scalars, n))
        }
        XCTAssertLessThan(worst, 1e-6)
        // Forces depend on every weight except the two biases that only shift the energy.
        for (name, a) in zip(p.names, analytic) where name != "readout.bias" && name != "norm.bias" {
            XCTAssertGreaterThan(a.scalars.map(abs).max() ?? 0, 1e-8, name)
        }
        XCTAssertEqual(analytic[p.names.firstIndex(of: "readout.bias") ?? 0].scalars, [0])
        XCTAssertLessThan(analytic[p.names.firstIndex(of: "norm.bias") ?? 0].scalars.map(abs).max() ?? 1, 1e-12)
    }

    /// Forces from `grad` equal minus the finite-difference derivative of the energy.
    func testForcesMatchFiniteDifferences() throws {
        let (coordinates, graph) = Self.randomSystem(atoms: 6, cutoff: Self.cutoff, seed: 21)
        let positions = try T(shape: [18], scalars: coordinates, requiresGrad: true)
        let p = try Self.makeParameters(seed: 4)
        let g = try grad(of: Self.energy(positions, graph, p), wrt: [positions])[0]
        let numeric = try GradientCheck.numericGradient([positions]) { try Self.energy(positions, graph, p).item }
        XCTAssertLessThan(GradientCheck.relativeError(g.scalars, numeric[0]), 1e-6)
    }

    /// Rotating the configuration leaves the energy unchanged and rotates the forces.
    func testRotationInvariance() throws {
        let (coordinates, graph) = Self.randomSystem(atoms: 6, cutoff: Self.cutoff, seed: 31)
        let p = try Self.makeParameters(seed: 6)
        let (c, s) = (cos(0.7), sin(0.7))
        var rotated = coordinates
        for i in 0..<6 {
            let x = coordinates[3 * i], y = coordinates[3 * i + 1]
            rotated[3 * i] = c * x - s * y
            rotated[3 * i + 1] = s * x + c * y
        }
        let a = try T(shape: [18], scalars: coordinates, requiresGrad: true)
        let b = try T(shape: [18], scalars: rotated, requiresGrad: true)
        let ea = try Self.energy(a, graph, p), eb = try Self.energy(b, graph, p)
        XCTAssertEqual(ea.item, eb.item, accuracy: 1e-12 * max(1, abs(ea.item)))
        let fa = try grad(of: ea, wrt: [a])[0].scalars, fb = try grad(of: eb, wrt: [b])[0].scalars
        for i in 0..<6 {
            XCTAssertEqual(c * fa[3 * i] - s * fa[3 * i + 1], fb[3 * i], accuracy: 1e-10)
            XCTAssertEqual(s * fa[3 * i] + c * fa[3 * i + 1], fb[3 * i + 1], accuracy: 1e-10)
            XCTAssertEqual(fa[3 * i + 2], fb[3 * i + 2], accuracy: 1e-10)
        }
    }

    /// Float and Double evaluate the same network to Float precision.
    func testFloatAgreesWithDouble() throws {
        let (coordinates, graph) = Self.randomSystem(atoms: 6, cutoff: Self.cutoff, seed: 41)
        let p = try Self.makeParameters(seed: 8)
        let positions = try T(shape: [18], scalars: coordinates, requiresGrad: true)
        let e = try Self.energy(positions, graph, p)
        let g = try grad(of: e, wrt: [positions])[0]

        let pf = ParameterSet<Float>()
        for (name, t) in zip(p.names, p.tensors) { try pf.add(name, Tensor<Float>(converting: t)) }
        let xf = Tensor<Float>(converting: positions, requiresGrad: true)
        let ef = try FloatNetwork.energy(xf, graph, pf)
        let gf = try grad(of: ef, wrt: [xf])[0]
        XCTAssertEqual(Double(ef.item), e.item, accuracy: 1e-4 * max(1, abs(e.item)))
        XCTAssertLessThan(GradientCheck.relativeError(gf.scalars.map(Double.init), g.scalars), 1e-4)
    }
}

/// The same network written generically, evaluated in Float.
enum FloatNetwork {
    static func energy(_ positions: Tensor<Float>, _ graph: MessagePassingTests.Graph, _ p: ParameterSet<Float>) throws -> Tensor<Float> {
        typealias T = Tensor<Float>
        let cutoff = Float(MessagePassingTests.cutoff), basis = MessagePassingTests.basis, channels = MessagePassingTests.channels
        let n = graph.atoms
        let x = try positions.reshaped([n, 3])
        let d = try x.gather(rows: graph.destination) - x.gather(rows: graph.source)
        let r = try d.norm(axis: 1, keepingDimensions: true)
        let unit = try d / r
        let centres = try T(shape: [basis], scalars: (0..<basis).map { cutoff * Float($0) / Float(basis - 1) })
        let spacing = cutoff / Float(basis - 1)
        let rbf = try ((r - centres).square() * (-1 / spacing)).exp()
        let fc = ((r * (Float.pi / cutoff)).cos() + 1) * 0.5
        let h = try p.tensor("embedding").expanded(to: [n, channels])
        let m = try linear(concat([h.gather(rows: graph.source), rbf], axis: 1), weight: p.tensor("message.weight"),
                           bias: p.tensor("message.bias")).silu() * fc
        let v = try unit.unsqueezed(2) * linear(m, weight: p.tensor("vector.weight")).unsqueezed(1)
        let hNew = try h + m.scatterAdd(rows: graph.destination, count: n)
        let vNew = try linear(v.scatterAdd(rows: graph.destination, count: n), weight: p.tensor("mix.weight"))
        let features = try concat([hNew.layerNorm(weight: p.tensor("norm.weight"), bias: p.tensor("norm.bias")),
                                   vNew.norm(axis: 1)], axis: 1)
        return try linear(features, weight: p.tensor("readout.weight"), bias: p.tensor("readout.bias")).sum()
    }
}
