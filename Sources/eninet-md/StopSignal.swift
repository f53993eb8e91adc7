import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The first stop signal received, 0 before any: written only by the handler.
/// A plain handler, not a dispatch source: libdispatch registers its source asynchronously,
/// and with the signal already set to be ignored, a SIGTERM in between was dropped (a run in
/// the test suite went on for 12 minutes after it).
nonisolated(unsafe) private var receivedStopSignal: sig_atomic_t = 0

/// Turns SIGINT and SIGTERM into a flag that the run loop polls once per step, and an external
/// program's wait every 50 ms, so a run stops at the end of a step with its trajectory and
/// restart written, instead of dying mid-write.
enum StopSignal {
    static var signal: Int32? {
        let received = receivedStopSignal
        return received == 0 ? nil : Int32(received)
    }

    static var requested: Bool { signal != nil }

    static func install() {
        for sig in [SIGINT, SIGTERM] {
            Glibc.signal(sig) { caught in
                if receivedStopSignal == 0 { receivedStopSignal = sig_atomic_t(caught) }
            }
        }
    }

    static func uninstall() {
        Glibc.signal(SIGINT, SIG_DFL)
        Glibc.signal(SIGTERM, SIG_DFL)
    }

    static func name(_ sig: Int32) -> String { sig == SIGINT ? "SIGINT" : (sig == SIGTERM ? "SIGTERM" : "signal \(sig)") }

    /// What stopped the run, for its message: the signal's name, or "request" before any.
    static var cause: String { signal.map(name) ?? "request" }
}
