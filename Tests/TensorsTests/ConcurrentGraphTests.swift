import Foundation
import XCTest
import Tensors

/// Backward passes from several threads: the recording switch belongs to each thread, passes
/// over private graphs run together and give the numbers they give alone, and private passes
/// that share a tensor are caught instead of corrupting each other.
final class ConcurrentGraphTests: XCTestCase {
    /// A second-order gradient (a force-like inner gradient inside the loss), as a training step takes.
    private func secondOrderGradient(weight w: Tensor<Double>, input: [Double]) throws -> [Double] {
        let x = try Tensor<Double>(shape: [input.count / 4, 4], scalars: input, requiresGrad: true)
        let energy = try matmul(x, w).silu().square().sum()
        let inner = try grad(of: energy, wrt: [x], createGraph: true)[0]
        let loss = try (inner * inner).sum()
        return try grad(of: loss, wrt: [w])[0].scalars
    }

    private func inputs(_ seed: Int) -> [Double] { (0..<4 * 300).map { sin(Double($0 * (seed + 3)) * 0.37) } }
    private func weight() throws -> Tensor<Double> {
        try Tensor<Double>(shape: [4, 4], scalars: (0..<16).map { cos(Double($0) * 0.9) * 0.5 }, requiresGrad: true)
    }

    /// Two threads, each with its own weight tensor, take 200 second-order gradients each at the
    /// same time inside `withPrivateGraphs`: every result equals the one taken alone, bit for bit.
    func testPrivateGraphsOnTwoThreadsGiveTheSerialNumbers() throws {
        let expected = try (0..<2).map { try secondOrderGradient(weight: try weight(), input: inputs($0)) }
        let weights = try (0..<2).map { _ in try weight() }
        var mismatches = [Int](repeating: 0, count: 2), failures = [String?](repeating: nil, count: 2)
        mismatches.withUnsafeMutableBufferPointer { mismatches in
            failures.withUnsafeMutableBufferPointer { failures in
                DispatchQueue.concurrentPerform(iterations: 2) { t in
                    do {
                        try GradMode.withPrivateGraphs {
                            for _ in 0..<200 where try secondOrderGradient(weight: weights[t], input: inputs(t)) != expected[t] {
                                mismatches[t] += 1
                            }
                        }
                    } catch { failures[t] = "\(error)" }
                }
            }
        }
        XCTAssertEqual(failures, [nil, nil])
        XCTAssertEqual(mismatches, [0, 0])
    }

    /// Turning recording off on one thread leaves another thread recording: a backward pass
    /// without `createGraph` turns it off for its duration, and a data-parallel worker's forward
    /// pass must still record meanwhile.
    func testRecordingIsPerThread() throws {
        let off = DispatchSemaphore(value: 0), checked = DispatchSemaphore(value: 0)
        var recordedElsewhere = false, enabledElsewhere = false
        let thread = Thread {
            GradMode.withoutGradients {
                off.signal()
                checked.wait()
            }
        }
        thread.start()
        off.wait()
        let w = try weight()
        recordedElsewhere = (w * 2).requiresGrad
        enabledElsewhere = GradMode.isEnabled
        checked.signal()
        XCTAssertTrue(enabledElsewhere)
        XCTAssertTrue(recordedElsewhere, "an operation on a parameter recorded no graph while another thread had recording off")
        GradMode.withoutGradients { XCTAssertFalse(GradMode.isEnabled) }
        XCTAssertTrue(GradMode.isEnabled)
    }

    /// `Σ hook(x·w) ⊙ (x·w)`, where `hook` is the identity whose backward differentiates another
    /// graph that shares `w`, as a second thread's pass could meanwhile (recorded: the outer pass,
    /// taken without `createGraph`, has recording off there).
    private func lossWithANestedPass() throws -> (loss: Tensor<Double>, w: Tensor<Double>, x: Tensor<Double>, shared: Tensor<Double>) {
        let w = try weight()
        let x = try Tensor<Double>(shape: [2, 4], scalars: (0..<8).map(Double.init))
        let shared = try matmul(x, w)
        let hook = try Tensor<Double>.custom("hook", inputs: [shared], shape: shared.shape, values: shared.scalars) { g, _, _ in
            _ = try GradMode.with(enabled: true) { try grad(of: try matmul(x, w).sum(), wrt: [w]) }
            return [g]
        }
        return (try (hook * shared).sum(), w, x, shared)
    }

    /// Two private passes that share a tensor needing a gradient: the second runs inside the
    /// first (from an operation's backward), overwriting the marks the first relies on, and the
    /// first throws, naming the cause, instead of returning a wrong gradient.
    func testPrivatePassesSharingATensorThrow() throws {
        let (loss, w, x, shared) = try lossWithANestedPass()
        XCTAssertThrowsError(try GradMode.withPrivateGraphs { try grad(of: loss, wrt: [w]) }) { error in
            XCTAssertTrue("\(error)".contains("differentiated by another backward pass"), "\(error)")
        }
        // The failed pass released its lock: an ordinary pass (which waits for every other) runs.
        let expected = try matmul(x, Tensor<Double>(repeating: 1, shape: [2, 4]), transposeA: true)
        XCTAssertEqual(try grad(of: shared.sum(), wrt: [w])[0].scalars, expected.scalars)
    }

    /// The same nesting outside `withPrivateGraphs`: the inner pass runs under the lock the outer
    /// one holds, and the outer one, whose marks it overwrote, throws instead of dropping the
    /// shared tensor's gradient. (The inner pass used to take the lock again, which the C library
    /// refuses to the thread that holds it; the refusal went unseen, the inner pass released the
    /// outer one's lock, and the outer returned a wrong gradient.)
    func testANestedPassSharingATensorThrows() throws {
        let (loss, w, _, _) = try lossWithANestedPass()
        XCTAssertThrowsError(try grad(of: loss, wrt: [w])) { error in
            XCTAssertTrue("\(error)".contains("from a backward function of this pass"), "\(error)")
        }
        try assertAnotherThreadCanDifferentiate()
    }

    /// A backward function may differentiate a graph of its own: `y = c · x`, whose backward
    /// takes `c` as the gradient of `c² / 2`, gives `∂(Σ y)/∂x = c` exactly, and leaves the lock
    /// free for other threads.
    func testANestedPassOverItsOwnGraphGivesItsGradient() throws {
        let x = try Tensor<Double>(shape: [3], scalars: [1, 2, 3], requiresGrad: true)
        let c = 1.75
        let y = try Tensor<Double>.custom("scaled", inputs: [x], shape: [3], values: x.scalars.map { c * $0 }) { g, _, _ in
            let z = try Tensor<Double>(shape: [1], scalars: [c], requiresGrad: true)
            let slope = try GradMode.with(enabled: true) { try grad(of: (try z * z).sum() * 0.5, wrt: [z])[0] }
            return [try g * slope]
        }
        XCTAssertEqual(try grad(of: y.sum(), wrt: [x])[0].scalars, [c, c, c])
        XCTAssertEqual(try grad(of: try (y * y).sum(), wrt: [x])[0].scalars, [1, 2, 3].map { 2 * c * c * $0 })
        try assertAnotherThreadCanDifferentiate()
    }

    /// A backward pass on a new thread finishes within ten seconds: the lock was released.
    private func assertAnotherThreadCanDifferentiate(file: StaticString = #filePath, line: UInt = #line) throws {
        // Written by the thread before it signals, read here after the wait.
        final class Result: @unchecked Sendable { var scalars: [Double] = [] }
        let done = DispatchSemaphore(value: 0), result = Result()
        let thread = Thread {
            if let x = try? Tensor<Double>(shape: [2], scalars: [3, 4], requiresGrad: true),
               let g = try? grad(of: (x * x).sum(), wrt: [x]) { result.scalars = g[0].scalars }
            done.signal()
        }
        thread.start()
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success, "a backward pass on another thread waited for a lock nobody holds", file: file, line: line)
        XCTAssertEqual(result.scalars, [6, 8], file: file, line: line)
    }
}
