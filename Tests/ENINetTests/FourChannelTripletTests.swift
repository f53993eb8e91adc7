import XCTest
@testable import ENINet
import Geometry
import Dynamics
import Tensors

/// The fused four-channel triplet kernel against the layer-by-layer path it replaces: the same
/// energy, forces, virial and edge and span gradients, for both sets of options. The kernel
/// runs in Float only; Double takes the layer-by-layer path, whose forces the finite-difference
/// tests check.
final class FourChannelTripletTests: XCTestCase {
    /// Asserts that `actual` agrees with `expected`: the energy, forces and edge and span
    /// gradients to `tolerance` relative to the largest of each, the virial to `virialTolerance`
    /// times the largest force.
    private func assertAgrees(_ actual: (output: ENINetOutput, edgeGradient: [Vec3], spanGradient: [Vec3]),
                              with expected: (output: ENINetOutput, edgeGradient: [Vec3], spanGradient: [Vec3]),
                              tolerance: Double, virialTolerance: Double, _ label: String,
                              file: StaticString = #filePath, line: UInt = #line) throws {
        func flat(_ v: [Vec3]) -> [Double] { v.flatMap { [$0.x, $0.y, $0.z] } }
        XCTAssertEqual(actual.output.energy, expected.output.energy, accuracy: tolerance * abs(expected.output.energy), label,
                       file: file, line: line)
        let fa = flat(actual.output.forces), fe = flat(expected.output.forces)
        let scale = try XCTUnwrap(fe.map(abs).max(), file: file, line: line)
        XCTAssertGreaterThan(scale, 0, label, file: file, line: line)
        XCTAssertLessThan(zip(fa, fe).map { abs($0 - $1) }.max() ?? .infinity, tolerance * scale, label, file: file, line: line)
        for (a, e) in [(actual.edgeGradient, expected.edgeGradient), (actual.spanGradient, expected.spanGradient)] {
            let ga = flat(a), ge = flat(e)
            XCTAssertEqual(ga.count, ge.count, label, file: file, line: line)
            XCTAssertGreaterThan(ga.count, 0, label, file: file, line: line)
            XCTAssertLessThan(zip(ga, ge).map { abs($0 - $1) }.max() ?? .infinity, tolerance * (ge.map(abs).max() ?? 1), label,
                              file: file, line: line)
        }
        for i in 0..<3 { for j in 0..<3 {
            XCTAssertEqual(actual.output.virial[i][j], expected.output.virial[i][j], accuracy: virialTolerance * scale, label,
                           file: file, line: line)
        } }
    }

    private func compare<T: ENINetFloat>(_: T.Type, tolerance: Double) throws {
        let m = try PhysicsTests.ethanol(), p = try PhysicsTests.periodic()
        let cases: [(String, [Int], [Vec3], Cell?)] = [("ethanol", m.numbers, m.positions, nil),
                                                       ("periodic", p.numbers, p.positions, p.cell)]
        for smooth in [false, true] {
            let model = try PhysicsTests.model(smooth: smooth)
            let fused = try HandScheduledNetwork<T>(file: model.file)
            let layered = try HandScheduledNetwork<T>(file: model.file, fuseFourChannelTriplets: false)
            XCTAssertTrue(fused.threeBody.allSatisfy { $0.fourChannel != nil }, "the reference layout takes the fused kernel")
            XCTAssertTrue(layered.threeBody.allSatisfy { $0.fourChannel == nil })
            for (name, z, r, cell) in cases {
                let graph = try model.graph(positions: r, cell: cell, neighborList: model.makeNeighborList(skin: 0))
                XCTAssertGreaterThan(graph.tripletCount, 0)
                let a = try fused.evaluate(atomicNumbers: z, positions: r, graph: graph, forces: true)
                let b = try layered.evaluate(atomicNumbers: z, positions: r, graph: graph, forces: true)
                try assertAgrees(a, with: b, tolerance: tolerance, virialTolerance: 10 * tolerance, "\(name) smooth \(smooth) \(T.self)")
            }
        }
    }

    func testFusedKernelAgreesWithTheLayeredPathInFloat() throws { try compare(Float.self, tolerance: 2e-5) }

    func testDoubleTakesTheLayeredPath() throws {
        let network = try HandScheduledNetwork<Double>(file: try PhysicsTests.model(smooth: true).file)
        XCTAssertFalse(network.threeBody.isEmpty)
        XCTAssertTrue(network.threeBody.allSatisfy { $0.fourChannel == nil })
    }

    /// Evaluates the periodic test system, for both variants, with a network on one chunk and a
    /// network that `split` sets up to split work over chunks (given the model's file and graph),
    /// and asserts the same energy, forces, edge gradients and virial to round-off (the sums'
    /// order changes): `tolerance` relative, the virial to ten times it.
    private func assertSplitAgreesWithOneChunk<T: ENINetFloat>(
        _: T.Type, tolerance: Double,
        whole: (HandScheduledNetwork<T>) -> Void,
        split: (HandScheduledNetwork<T>, ENINetModelFile, ENINetGraph, Int) -> Void
    ) throws {
        let p = try PhysicsTests.periodic()
        for smooth in [false, true] {
            let model = try PhysicsTests.model(smooth: smooth)
            let graph = try model.graph(positions: p.positions, cell: p.cell, neighborList: model.makeNeighborList(skin: 0))
            let one = try HandScheduledNetwork<T>(file: model.file)
            whole(one)
            let many = try HandScheduledNetwork<T>(file: model.file)
            split(many, model.file, graph, p.numbers.count)
            let a = try one.evaluate(atomicNumbers: p.numbers, positions: p.positions, graph: graph, forces: true)
            let b = try many.evaluate(atomicNumbers: p.numbers, positions: p.positions, graph: graph, forces: true)
            try assertAgrees(b, with: a, tolerance: tolerance, virialTolerance: 10 * tolerance, "smooth \(smooth) \(T.self)")
        }
    }

    /// Triplets split over threads, every chunk after the first summing its edge terms into
    /// buffers of its own, give what one pass gives, to round-off (the sums' order changes).
    func testSplitTripletPassAgreesWithOnePass() throws {
        try assertSplitAgreesWithOneChunk(Float.self, tolerance: 1e-5, whole: { $0.tripletThreads = 1 }, split: { network, _, graph, _ in
            network.tripletThreads = 3
            network.minimumTripletBlocksPerThread = 1
            XCTAssertEqual(TripletChunks(triplets: graph.tripletCount, edges: graph.edgeCount, threads: 3, minimumBlocks: 1).count, 3)
        })
    }

    /// The loops over edges that add to per-atom rows, split over three threads (each chunk
    /// after the first summing into rows of its own), give what one thread gives, to round-off,
    /// for both variants (the reference's mean aggregation divides those sums afterwards).
    func testEdgeLoopsSplitOverThreadsAgreeWithOneThread() throws {
        try assertSplitAgreesWithOneChunk(Double.self, tolerance: 1e-12, whole: { $0.edgeThreads = 1 }, split: { network, file, graph, atoms in
            network.edgeThreads = 3
            network.minimumEdgeWorkPerThread = 1
            // The smallest of the loops: four operations per edge and channel, two [N, F] sums.
            let f = file.configuration.featureCount
            XCTAssertEqual(network.edgeChunkCount(edges: graph.edgeCount, work: 4 * graph.edgeCount * f, width: 2 * atoms * f), 3)
        })
    }

    /// An evaluation on two threads, through the thread count every loop reads (the triplet
    /// chunks, the edge loops, the row-by-row loops over edges and atoms), gives what one thread
    /// gives (energy, forces, edge gradients, virial), to round-off, for both variants, in Double
    /// and in Float (where the triplets take the fused pass). 216 atoms with 64 channels, so
    /// that even the smallest loop over atoms, six operations per atom and channel, is split.
    func testTwoThreadsAgreeWithOneThread() throws {
        let saved = (loops: TensorThreads.count, blas: TensorThreads.blasCount)
        defer { TensorThreads.set(blas: saved.blas, loops: saved.loops) }
        var numbers: [Int] = [], positions: [Vec3] = []
        for k in 0..<216 {
            let cell = Vec3(Double(k % 6), Double(k / 6 % 6), Double(k / 36))
            let jitter = Vec3(sin(1.7 * Double(k)), sin(2.3 * Double(k) + 1), sin(3.1 * Double(k) + 2))
            positions.append(2 * cell + Vec3(repeating: 1) + 0.25 * jitter)
            numbers.append([1, 6, 8][k % 3])
        }
        let box = try Cell.orthorhombic(Vec3(repeating: 12))
        for smooth in [true, false] {
            var c = ENINetConfiguration(featureCount: 64, tripletFeatureCount: 4, radialBasisCount: 8, cutoff: 2.6,
                                        interactionCount: 2, averageNeighborCount: 8)
            if !smooth {
                c.aggregation = .mean
                c.vectorNorm = .maxMin
                c.tripletBondCutoff = false
            }
            func network<G: RandomNumberGenerator>(_ generator: inout G) throws -> ENINetModel {
                try ENINetModel(file: try ENINetDifferentiableModel<Double>(configuration: c, using: &generator).modelFile(dtype: .float64),
                                precision: .double)
            }
            func check<T: ENINetFloat>(_: T.Type, _ model: ENINetModel, tolerance: Double) throws {
                let graph = try model.graph(positions: positions, cell: box, neighborList: model.makeNeighborList(skin: 0))
                let network = try HandScheduledNetwork<T>(file: model.file)
                XCTAssertEqual(network.threeBody.allSatisfy { $0.fourChannel != nil }, T.self == Float.self)
                XCTAssertEqual(TripletChunks(triplets: graph.tripletCount, edges: graph.edgeCount, threads: 2,
                                             minimumBlocks: network.minimumTripletBlocksPerThread).count, 2)
                TensorThreads.set(1)
                let a = try network.evaluate(atomicNumbers: numbers, positions: positions, graph: graph, forces: true)
                TensorThreads.set(2)
                let b = try network.evaluate(atomicNumbers: numbers, positions: positions, graph: graph, forces: true)
                try assertAgrees(b, with: a, tolerance: tolerance, virialTolerance: 100 * tolerance, "smooth \(smooth) \(T.self)")
            }
            // Any weights must agree in Double. In Float the round-off depends on the weights
            // (with some, the span gradients differed by 3e-5 of their largest), so the weights
            // are fixed there (Dynamics' seeded stream): with these, at most 3.4e-6 (span gradients)
            // and 1.7e-6 (forces).
            var anyWeights = SystemRandomNumberGenerator()
            var fixedWeights = RandomStream(seed: smooth ? 1 : 2)
            try check(Double.self, try network(&anyWeights), tolerance: 1e-12)
            try check(Float.self, try network(&fixedWeights), tolerance: 1e-5)
        }
    }

    func testChunksCoverTheTripletsInWholeBlocks() {
        let cases = [(0, 0, 4, 1), (5, 1, 4, 1), (8, 2, 2, 1), (100, 10, 3, 1), (1000, 70, 4, 128), (43760, 3060, 2, 128),
                     (43761, 300, 7, 16), (4376, 306, 2, 128), (43760, 3060, 64, 1), (20, 0, 2, 1)]
        for (nt, ne, threads, minimum) in cases {
            let chunks = TripletChunks(triplets: nt, edges: ne, threads: threads, minimumBlocks: minimum).ranges
            let label = "\(nt) triplets, \(ne) edges, \(threads) threads, at least \(minimum) blocks"
            XCTAssertFalse(chunks.isEmpty, label)
            XCTAssertLessThanOrEqual(chunks.count, threads, label)
            XCTAssertEqual(chunks.first?.lowerBound, 0, label)
            XCTAssertEqual(chunks.last?.upperBound, nt, label)
            for (a, b) in zip(chunks, chunks.dropFirst()) { XCTAssertEqual(a.upperBound, b.lowerBound, label) }
            for chunk in chunks {
                XCTAssertEqual(chunk.lowerBound % 8, 0, label)
                if chunks.count > 1 {
                    XCTAssertGreaterThanOrEqual((chunk.count + 7) / 8, minimum, label)
                    // Blocks of eight round a range's length down by at most seven.
                    XCTAssertGreaterThanOrEqual(chunk.count + 7, ne, label)
                }
            }
        }
        func count(_ nt: Int, _ ne: Int, _ threads: Int, _ minimum: Int) -> Int {
            TripletChunks(triplets: nt, edges: ne, threads: threads, minimumBlocks: minimum).count
        }
        XCTAssertEqual(count(1000, 70, 4, 128), 1)
        XCTAssertEqual(count(43760, 3060, 2, 128), 2)
        XCTAssertEqual(count(4376, 306, 2, 128), 2)
        // Ten aspirins on 64 threads: 14 ranges of at least 3,060 triplets, not 64.
        XCTAssertEqual(count(43760, 3060, 64, 1), 14)
    }

    /// A layer whose shapes are not the four-channel ones keeps the layered path.
    func testOtherWidthsAreNotFused() throws {
        let model = try PhysicsTests.model(smooth: false)
        let layer = try XCTUnwrap(try HandScheduledNetwork<Float>(file: model.file).threeBody.first)
        let wide = LinearLayer<Float>(weight: [Float](repeating: 0.1, count: 64), bias: nil, inputs: 8, outputs: 8)
        XCTAssertNil(FourChannelTriplets(projection: wide, gate: layer.gate, tripletVector: layer.tripletVector))
        XCTAssertNotNil(FourChannelTriplets(projection: layer.tripletProjection, gate: layer.gate, tripletVector: layer.tripletVector))
    }
}
