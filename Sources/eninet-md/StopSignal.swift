import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Turns SIGINT and SIGTERM into a flag that the run loop polls once per step, so a run
/// stops at the end of a step with its trajectory and restart written, instead of dying
/// mid-write.
final class StopSignal: @unchecked Sendable {
    static let shared = StopSignal()

    private let lock = NSLock()
    private var received: Int32 = 0
    private var sources: [DispatchSourceSignal] = []

    /// The signal that asked the run to stop, or nil.
    var signal: Int32? {
        lock.lock(); defer { lock.unlock() }
        return received == 0 ? nil : received
    }

    var requested: Bool { signal != nil }

    /// Installs the handlers. A second signal of the same kind while stopping is ignored:
    /// the run is already finishing its step and writing files.
    func install() {
        guard sources.isEmpty else { return }
        for sig in [SIGINT, SIGTERM] {
            Glibc.signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in
                guard let self else { return }
                self.lock.lock()
                if self.received == 0 { self.received = sig }
                self.lock.unlock()
            }
            source.resume()
            sources.append(source)
        }
    }

    static func name(_ sig: Int32) -> String { sig == SIGINT ? "SIGINT" : (sig == SIGTERM ? "SIGTERM" : "signal \(sig)") }
}
