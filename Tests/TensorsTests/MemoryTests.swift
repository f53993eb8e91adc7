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

    /// A long chain is released without deep recursion.
    func testLongChainIsReleased() throws {
        let before = BufferPool.shared.bytesInUse
        do {
            let x = try T(shape: [4], scalars: [1, 2, 3, 4], requiresGrad: true)
            var y = x
            for _ in 0..<200_000 { y = y * 1.0000001 }
            XCTAssertEqual(y.item, 1 * pow(1.0000001, 200_000), accuracy: 1e-9)
        }
        XCTAssertEqual(BufferPool.shared.bytesInUse, before)
    }

    /// 10,000 forward/backward passes (with a second-order term) leave the live tensor memory
    /// where it started and the resident set flat.
    func testRepeatedStepsDoNotLeak() throws {
        let (coordinates, graph) = MessagePassingTests.randomSystem(atoms: 5, cutoff: 3, seed: 11)
        let p = try MessagePassingTests.makeParameters(seed: 3)
        let positions = try T(shape: [15], scalars: coordinates, requiresGrad: true)
        func step() throws {
            let e = try MessagePassingTests.energy(positions, graph, p)
            let f = try grad(of: e, wrt: [positions], createGraph: true)[0]
            _ = try grad(of: f.square().sum(), wrt: p.tensors)
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
}

/// Resident set size from /proc (Linux); nil elsewhere.
func residentBytes() -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}
