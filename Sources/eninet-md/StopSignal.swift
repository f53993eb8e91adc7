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

    /// Gives SIGINT and SIGTERM back their default action (ending the process), for work after
    /// the part that must not be cut short: `train`'s final test evaluation writes nothing, and
    /// ignoring Ctrl-C there made it run on to the end.
    func uninstall() {
        for source in sources { source.cancel() }
        sources = []
        Glibc.signal(SIGINT, SIG_DFL)
        Glibc.signal(SIGTERM, SIG_DFL)
    }

    static func name(_ sig: Int32) -> String { sig == SIGINT ? "SIGINT" : (sig == SIGTERM ? "SIGTERM" : "signal \(sig)") }
}
