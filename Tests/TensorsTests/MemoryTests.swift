import Foundation
import XCTest
@testable import Tensors

/// Graphs free themselves: no retain cycles, and repeated steps reuse pooled memory.
final class MemoryTests: XCTestCase {
    typealias T = Tensor<Double>

    func testGraphIsFreedWithItsResult() throws {
        weak var intermediate: T?
        weak var gradient: T?
        let x = try T(shape: [3], scalars: [1, 2, 3], requiresGrad: true)
        do {
            let h = x.silu()
            intermediate = h
            let y = try (h * h).sum()
            let g = try grad(of: y, wrt: [x], createGraph: true)[0]
            gradient = g
            _ = try grad(of: g.sum(), wrt: [x])
            XCTAssertNotNil(intermediate)
        }
        XCTAssertNil(intermediate)
        XCTAssertNil(gradient)
    }

    /// A long chain is released without deep recursion. (Tensors above 1 KiB take pool memory,
    /// so the pool's count of bytes in use sees any tensor left alive.)
    func testLongChainIsReleased() throws {
        let before = BufferPool.shared.bytesInUse
        do {
            let x = T(repeating: 1, shape: [256], requiresGrad: true)
            var y = x
            for _ in 0..<100_000 { y = y * 1.0000001 }
            XCTAssertEqual(y.item, 1 * pow(1.0000001, 100_000), accuracy: 1e-9)
            XCTAssertGreaterThan(BufferPool.shared.bytesInUse, before + 100_000 * 2048)
        }
        XCTAssertEqual(BufferPool.shared.bytesInUse, before)
        BufferPool.shared.drain()
        XCTAssertEqual(BufferPool.shared.bytesPooled, 0)
    }

    /// 10,000 forward/backward passes with a second-order term leave the live tensor memory
    /// where it started and the resident set flat.
    func testRepeatedStepsDoNotLeak() throws {
        var rng = SplitMix64(seed: 4)
        // Every tensor here is larger than 1 KiB, so all of them live in pool memory.
        let x = T.randomUniform([64, 32], in: -1...1, using: &rng, requiresGrad: true)
        let w = T.randomUniform([48, 32], in: -0.2...0.2, using: &rng, requiresGrad: true)
        let b = T.randomUniform([48], in: -0.2...0.2, using: &rng, requiresGrad: true)
        func step() throws {
            let h = try linear(x, weight: w, bias: b).silu()
            let e = try (h * h).sum()
            let g = try grad(of: e, wrt: [x], createGraph: true)[0]
            let gw = try grad(of: g.square().sum(), wrt: [w, b])
            XCTAssertEqual(gw[0].shape, [48, 32])
        }
        try step()
        let liveBefore = BufferPool.shared.bytesInUse
        for _ in 0..<1000 { try step() }
        let residentEarly = residentBytes()
        for _ in 0..<9000 { try step() }
        let residentLate = residentBytes()
        XCTAssertEqual(BufferPool.shared.bytesInUse, liveBefore)
        if let early = residentEarly, let late = residentLate {
            print("resident memory after 1,000 steps \(early / 1024) KiB, after 10,000 \(late / 1024) KiB")
            XCTAssertLessThan(late - early, 4 << 20)
        }
    }

    /// The same for the message-passing network (small tensors, allocated inline): the resident
    /// set stays flat.
    func testMessagePassingStepsDoNotLeak() throws {
        let (coordinates, graph) = MessagePassingTests.randomSystem(atoms: 5, cutoff: 3, seed: 11)
        let p = try MessagePassingTests.makeParameters(seed: 3)
        let positions = try T(shape: [15], scalars: coordinates, requiresGrad: true)
        func step() throws {
            let e = try MessagePassingTests.energy(positions, graph, p)
            let f = try grad(of: e, wrt: [positions], createGraph: true)[0]
            _ = try grad(of: f.square().sum(), wrt: p.tensors)
        }
        for _ in 0..<500 { try step() }
        let early = residentBytes()
        for _ in 0..<2000 { try step() }
        if let early, let late = residentBytes() {
            XCTAssertLessThan(late - early, 2 << 20)
        }
    }
}

/// Resident set size from /proc (Linux); nil elsewhere.
func residentBytes() -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}
