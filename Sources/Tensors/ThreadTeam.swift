import CBLAS
import Foundation

/// Worker threads that stay awake between parallel loops, so that handing a loop's chunks to
/// them costs well under a microsecond instead of a wake-up from sleep.
///
/// `DispatchQueue.concurrentPerform` wakes its pool's threads for each loop; on the 2-core Zen 3
/// host a loop of 10 µs split in two took 17 µs that way (a standalone program: 3.5 µs of
/// hand-off for even an empty loop), so that most of ENINet's loops ran slower on two threads
/// than on one. Here the workers spin on a ticket for ``spinDuration`` after their last loop
/// and only then sleep on a condition variable; the same 10 µs loop took 5 µs on two threads.
///
/// A loop's iterations are claimed one at a time from a single word that holds the loop's
/// generation, its iteration count and the next index, so a worker that wakes late can never
/// claim an iteration of a later loop by mistake, and a thread that the system deschedules
/// holds back only the iterations it has claimed. The caller runs iterations too and returns
/// when every one has finished. A loop started while another is running (a nested loop, or a
/// second calling thread) runs on its caller alone.
final class ThreadTeam: @unchecked Sendable {
    /// How long an idle worker keeps spinning before it sleeps: longer than the serial stretch
    /// between two loops of an ENINet evaluation, short enough that an idle program soon stops
    /// using the cores.
    static let spinDuration: Double = 200e-6

    /// Threads besides the caller's.
    let workerCount: Int

    // Atomic words, each on its own cache line (offsets in words).
    private let words: UnsafeMutablePointer<Int>
    private static let ticketWord = 0, doneWord = 8, sleepersWord = 16, busyWord = 24, exitWord = 32, jobWord = 40
    private static let wordCount = 48
    // ticket = generation << 40 | iterations << 20 | next index. Generations count modulo 2²³,
    // below the sign bit: a long MD run starts more loops than that (a hundred per step).
    private static let indexBits = 20, generationShift = 40
    private static let indexMask = (1 << indexBits) - 1
    static let generationMask = (1 << 23) - 1
    /// The most iterations one loop can have.
    static let maximumIterations = indexMask

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    typealias Body = (Int) -> Void

    /// `firstGeneration`: where the loops' count starts (tests start it just below the wrap).
    init(workers: Int, firstGeneration: Int = 0) {
        workerCount = Swift.max(0, workers)
        words = UnsafeMutablePointer<Int>.allocate(capacity: Self.wordCount)
        words.initialize(repeating: 0, count: Self.wordCount)
        let first = firstGeneration & Self.generationMask
        words[Self.ticketWord] = first << Self.generationShift
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        pthread_cond_init(condition, nil)
        for _ in 0..<workerCount {
            // The workers keep the team alive until ``stop()``.
            let thread = Thread { [self] in workerLoop(firstGeneration: first) }
            // ENINet's kernels keep blocks of several kilobytes on the stack.
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    // Runs once ``stop()`` has ended the workers, which hold the team until they exit, and the
    // team is no longer the shared one: a program that changes its thread count often (the
    // benchmarks, the tests) would otherwise keep every replaced team's words and locks.
    deinit {
        pthread_cond_destroy(condition)
        condition.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        words.deallocate()
    }

    @inline(__always) private func load(_ word: Int) -> Int { tensors_atomic_load(words + word) }
    @inline(__always) private func store(_ word: Int, _ value: Int) { tensors_atomic_store(words + word, value) }
    @inline(__always) private func add(_ word: Int, _ value: Int) -> Int { tensors_atomic_add(words + word, value) }

    /// Ends the workers once they see it (their threads exit), after a loop that is running has
    /// finished. The team then runs every loop on its caller alone.
    func stop() {
        while !tensors_atomic_compare_exchange(words + Self.busyWord, 0, 1) { tensors_spin_pause() }
        store(Self.exitWord, 1)
        store(Self.ticketWord, nextGeneration() << Self.generationShift)
        pthread_mutex_lock(mutex)
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    /// `body(i)` for every `i` in `0 ..< iterations`, on the caller and the workers; returns when
    /// all have run. Serially on the caller when the team is busy with another loop.
    func perform(iterations: Int, _ body: Body) {
        guard iterations > 1, workerCount > 0, iterations <= Self.maximumIterations,
              tensors_atomic_compare_exchange(words + Self.busyWord, 0, 1) else {
            for i in 0..<Swift.max(0, iterations) { body(i) }
            return
        }
        withoutActuallyEscaping(body) { escapable in
            var job: Body = escapable
            withUnsafeMutablePointer(to: &job) { jobPointer in
                store(Self.jobWord, Int(bitPattern: UnsafeMutableRawPointer(jobPointer)))
                store(Self.doneWord, 0)
                let generation = nextGeneration()
                store(Self.ticketWord, generation << Self.generationShift | iterations << Self.indexBits)
                if load(Self.sleepersWord) > 0 {
                    pthread_mutex_lock(mutex)
                    pthread_cond_broadcast(condition)
                    pthread_mutex_unlock(mutex)
                }
                claimIterations(generation: generation)
                while load(Self.doneWord) < iterations { tensors_spin_pause() }
                // No worker touches the job once every iteration is done: a late one finds none left.
                store(Self.jobWord, 0)
            }
        }
        store(Self.busyWord, 0)
    }

    /// The generation after the current ticket's (only the thread holding the team changes it).
    private func nextGeneration() -> Int { ((load(Self.ticketWord) >> Self.generationShift) + 1) & Self.generationMask }

    /// Runs iterations of loop `generation` until none is left to claim.
    private func claimIterations(generation: Int) {
        while true {
            let ticket = load(Self.ticketWord)
            let index = ticket & Self.indexMask, count = (ticket >> Self.indexBits) & Self.indexMask
            guard ticket >> Self.generationShift == generation, index < count else { return }
            guard tensors_atomic_compare_exchange(words + Self.ticketWord, ticket, ticket + 1) else { continue }
            // The caller cannot finish this loop, nor publish another job, before this iteration is done.
            Self.run(job: load(Self.jobWord), index)
            _ = add(Self.doneWord, 1)
        }
    }

    /// Calls the job out of line, so that every retain of its closure is balanced before the
    /// iteration is counted as done (`withoutActuallyEscaping` checks that nothing still holds it).
    @inline(never)
    private static func run(job: Int, _ index: Int) {
        guard let pointer = UnsafeMutableRawPointer(bitPattern: job) else { return }
        pointer.assumingMemoryBound(to: Body.self).pointee(index)
    }

    private func workerLoop(firstGeneration: Int) {
        // The team's first generation, not the ticket's value when this thread starts: a thread
        // that starts late would otherwise skip the loops published before it ran.
        var generation = firstGeneration
        while load(Self.exitWord) == 0 {
            generation = waitForLoop(after: generation)
            if load(Self.exitWord) != 0 { return }
            claimIterations(generation: generation)
        }
    }

    /// The generation of the next loop after `generation`: spins, then sleeps.
    private func waitForLoop(after generation: Int) -> Int {
        var start = -1.0, spins = 0
        while true {
            let current = load(Self.ticketWord) >> Self.generationShift
            if current != generation { return current }
            tensors_spin_pause()
            spins += 1
            if spins & 255 != 0 { continue }
            let now = Self.seconds()
            if start < 0 { start = now } else if now - start > Self.spinDuration { break }
        }
        pthread_mutex_lock(mutex)
        _ = add(Self.sleepersWord, 1)
        var current = load(Self.ticketWord) >> Self.generationShift
        while current == generation {
            pthread_cond_wait(condition, mutex)
            current = load(Self.ticketWord) >> Self.generationShift
        }
        _ = add(Self.sleepersWord, -1)
        pthread_mutex_unlock(mutex)
        return current
    }

    private static func seconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    // MARK: The team of the tensor threads

    nonisolated(unsafe) private static var current: ThreadTeam?
    private static let replacing: UnsafeMutablePointer<pthread_mutex_t> = {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(m, nil)
        return m
    }()

    /// The team of ``TensorThreads/count`` threads in all, made anew when that count changes.
    static var tensorThreads: ThreadTeam { shared(threads: ParallelLoop.threadCount) }

    /// The team for `threads` threads in all (`threads − 1` workers), replacing one of another size.
    static func shared(threads: Int) -> ThreadTeam {
        pthread_mutex_lock(replacing)
        defer { pthread_mutex_unlock(replacing) }
        if let team = current, team.workerCount == threads - 1 { return team }
        current?.stop()
        let team = ThreadTeam(workers: threads - 1)
        current = team
        return team
    }
}
