import CBLAS
import Foundation
import XCTest
@testable import Tensors

/// The thread team that the tensor loops share out their chunks with: every iteration of every
/// loop runs exactly once, including loops started while the workers sleep, loops nested in a
/// loop, loops from two threads at once, and loops after the team is replaced.
final class ThreadTeamTests: XCTestCase {
    /// Runs `loops` loops of varying length and checks that each iteration ran once, by adding
    /// its index + 1 to its own slot (no two iterations share a slot).
    private func checkLoops(_ team: ThreadTeam, loops: Int, pauseEvery: Int = 0, file: StaticString = #filePath, line: UInt = #line) {
        let slots = UnsafeMutablePointer<Int>.allocate(capacity: 64)
        defer { slots.deallocate() }
        for loop in 0..<loops {
            let iterations = 2 + loop % 40
            slots.initialize(repeating: 0, count: 64)
            team.perform(iterations: iterations) { i in slots[i] += i + 1 }
            for i in 0..<64 where slots[i] != (i < iterations ? i + 1 : 0) {
                XCTFail("loop \(loop) (\(iterations) iterations): slot \(i) holds \(slots[i])", file: file, line: line)
                return
            }
            if pauseEvery > 0, loop % pauseEvery == pauseEvery - 1 { usleep(UInt32(ThreadTeam.spinDuration * 3e6)) }
        }
    }

    func testEveryIterationRunsOnce() {
        let team = ThreadTeam(workers: 1)
        defer { team.stop() }
        checkLoops(team, loops: 20_000)
    }

    /// The loops' generation count wraps below the sign bit of the ticket (a long MD run starts
    /// more loops than the count holds), and loops across the wrap still run every iteration.
    func testGenerationsWrap() {
        let team = ThreadTeam(workers: 1, firstGeneration: ThreadTeam.generationMask - 30)
        defer { team.stop() }
        for loop in 0..<60 where !ranOnTwoThreads(team) {
            XCTFail("loop \(loop) from the first: the caller and the worker did not both take part")
            return
        }
        checkLoops(team, loops: 200)
        checkLoops(team, loops: 20, pauseEvery: 2)
    }

    func testMoreWorkersThanCores() {
        let team = ThreadTeam(workers: 3)
        defer { team.stop() }
        checkLoops(team, loops: 2_000)
    }

    /// Loops that start after the workers have gone to sleep wake them (or run without them).
    func testLoopsAfterTheWorkersSleep() {
        let team = ThreadTeam(workers: 1)
        defer { team.stop() }
        checkLoops(team, loops: 40, pauseEvery: 2)
    }

    /// Whether a loop of two iterations that wait for each other (for up to five seconds) ran
    /// them at once, on two threads.
    private func ranOnTwoThreads(_ team: ThreadTeam) -> Bool {
        let flags = UnsafeMutablePointer<Int>.allocate(capacity: 2)
        defer { flags.deallocate() }
        flags.initialize(repeating: 0, count: 2)
        let deadline = Date().addingTimeInterval(5)
        var sawOther = [false, false]
        sawOther.withUnsafeMutableBufferPointer { saw in
            team.perform(iterations: 2) { i in
                tensors_atomic_store(flags + i, 1)
                while tensors_atomic_load(flags + (1 - i)) == 0 && Date() < deadline { tensors_spin_pause() }
                saw[i] = tensors_atomic_load(flags + (1 - i)) == 1
            }
        }
        return sawOther == [true, true]
    }

    /// The workers do take part. Each team runs its loop at once after it is made, so that a
    /// worker whose thread starts after the loop is published must still take part.
    func testWorkersShareTheLoop() {
        for attempt in 0..<20 {
            let team = ThreadTeam(workers: 1)
            defer { team.stop() }
            if !ranOnTwoThreads(team) {
                XCTFail("team \(attempt): the two iterations did not run at once")
                return
            }
        }
    }

    /// A loop inside a loop's iteration runs on that iteration's thread, and completes.
    func testNestedLoopsRunInline() {
        let team = ThreadTeam(workers: 1)
        defer { team.stop() }
        let sums = UnsafeMutablePointer<Int>.allocate(capacity: 8)
        defer { sums.deallocate() }
        sums.initialize(repeating: 0, count: 8)
        team.perform(iterations: 8) { i in
            team.perform(iterations: 5) { j in sums[i] += j + 1 }
        }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: sums, count: 8)), [Int](repeating: 15, count: 8))
    }

    /// Two threads starting loops at once: one gets the team, the other runs alone, both finish.
    func testLoopsFromTwoThreads() {
        let team = ThreadTeam(workers: 1)
        defer { team.stop() }
        let done = expectation(description: "second thread")
        let other = Thread { [self] in
            checkLoops(team, loops: 5_000)
            done.fulfill()
        }
        other.start()
        checkLoops(team, loops: 5_000)
        wait(for: [done], timeout: 60)
    }

    /// Products that reach OpenBLAS (alpha ≠ 1 keeps them from the register kernels) are cut
    /// into row blocks for the team when OpenBLAS runs on one thread, as `TensorThreads.set`
    /// leaves it: every transpose case, both precisions, equal a direct sum.
    func testProductsSplitAmongTheTeam() {
        let saved = (TensorThreads.count, TensorThreads.blasCount)
        defer { TensorThreads.set(blas: saved.1, loops: saved.0) }
        TensorThreads.set(2)
        XCTAssertEqual(TensorThreads.blasCount, 1)
        XCTAssertEqual(TensorThreads.count, 2)
        let m = 100, n = 90, k = 120   // 1.08 M multiply-adds: above the split's grain
        XCTAssertGreaterThanOrEqual(m * n * k, ParallelLoop.blasGrain)
        var generator = SystemRandomNumberGenerator()
        let a = (0..<(m * k)).map { _ in Double.random(in: -1...1, using: &generator) }
        let b = (0..<(k * n)).map { _ in Double.random(in: -1...1, using: &generator) }
        let c0 = (0..<(m * n)).map { _ in Double.random(in: -1...1, using: &generator) }
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            // A is [m, k] (or [k, m] when transposed), B is [k, n] (or [n, k]).
            func aAt(_ i: Int, _ p: Int) -> Double { ta ? a[p * m + i] : a[i * k + p] }
            func bAt(_ p: Int, _ j: Int) -> Double { tb ? b[j * k + p] : b[p * n + j] }
            var expected = [Double](repeating: 0, count: m * n)
            for i in 0..<m { for j in 0..<n {
                var sum = 0.0
                for p in 0..<k { sum += aAt(i, p) * bAt(p, j) }
                expected[i * n + j] = 0.5 * sum + 0.25 * c0[i * n + j]
            } }
            let lda = ta ? m : k, ldb = tb ? k : n
            var cd = c0
            cd.withUnsafeMutableBufferPointer { c in
                Double.tensorGEMM(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda,
                                  b: b, ldb: ldb, beta: 0.25, c: c.baseAddress!, ldc: n)
            }
            let af = a.map { Float($0) }, bf = b.map { Float($0) }
            var cf = c0.map { Float($0) }
            cf.withUnsafeMutableBufferPointer { c in
                Float.tensorGEMM(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 0.5, a: af, lda: lda,
                                 b: bf, ldb: ldb, beta: 0.25, c: c.baseAddress!, ldc: n)
            }
            let doubleError = zip(cd, expected).map { abs($0 - $1) }.max() ?? 0
            let floatError = zip(cf, expected).map { abs(Double($0) - $1) }.max() ?? 0
            XCTAssertLessThan(doubleError, 1e-12, "Double, transposes \(ta), \(tb)")
            XCTAssertLessThan(floatError, 1e-4, "Float, transposes \(ta), \(tb)")
        }
    }

    /// A stopped team is freed once its workers have exited (they hold it until then), with or
    /// without workers, awake or asleep; a team that is not stopped is kept by its workers.
    func testStoppedTeamsAreFreed() {
        for (workers, sleeping) in [(0, false), (1, false), (1, true), (3, false)] {
            weak var freed: ThreadTeam?
            weak var kept: ThreadTeam?
            do {
                let team = ThreadTeam(workers: workers)
                freed = team
                checkLoops(team, loops: 50)
                if sleeping { usleep(UInt32(ThreadTeam.spinDuration * 3e6)) }
                team.stop()
                let running = ThreadTeam(workers: 1)
                kept = running
                checkLoops(running, loops: 10)
            }
            let deadline = Date().addingTimeInterval(5)
            while freed != nil, Date() < deadline { usleep(1_000) }
            XCTAssertNil(freed, "\(workers) workers\(sleeping ? ", asleep" : ""): the stopped team is still alive after 5 s")
            XCTAssertNotNil(kept, "\(workers) workers: a running team was freed while its worker runs")
            kept?.stop()
        }
    }

    /// Changing the thread count replaces the team; parallel loops still give serial results.
    func testTeamFollowsTheThreadCount() {
        let saved = (TensorThreads.count, TensorThreads.blasCount)
        defer { TensorThreads.set(blas: saved.1, loops: saved.0) }
        let count = 100_000
        var expected = [Int](repeating: 0, count: count)
        for i in 0..<count { expected[i] = i &* 7 }
        for threads in [3, 2, 1, 2] {
            TensorThreads.set(threads)
            XCTAssertEqual(ThreadTeam.tensorThreads.workerCount, threads - 1)
            var values = [Int](repeating: 0, count: count)
            values.withUnsafeMutableBufferPointer { v in
                ParallelLoop.forChunks(count, work: count * 1_000) { range in for i in range { v[i] = i &* 7 } }
            }
            XCTAssertEqual(values, expected, "\(threads) threads")
        }
    }
}
