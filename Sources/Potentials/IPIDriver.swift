import Foundation
import Geometry
#if canImport(Glibc)
import Glibc
#endif

/// The client end of the i-PI protocol: serves a ``Potential`` to an i-PI server (i-PI for
/// path-integral or replica dynamics, ASE's `SocketIOCalculator`, another `eninet-md` with
/// `potential.type = "ipi"`), as i-PI's own drivers serve theirs.
///
/// The server sends positions and a cell; the elements are the client's own (`atomicNumbers`,
/// from its structure file), in the server's order. A zero cell is a molecule; any other cell
/// is periodic along the axes `periodicity` names (every axis when the structure had no cell,
/// as a server that sends a box means one). Energy, forces and virial go back in atomic units.
public final class IPIDriver {
    public let address: SocketAddress
    private let potential: any Potential
    private let atomicNumbers: [Int]
    private let periodicity: Periodicity
    private let structureHasCell: Bool
    private let warn: (String) -> Void
    private var warnedOfTheCell = false
    private let stopRequested: @Sendable () -> Bool

    /// - Parameters:
    ///   - periodicity: the axes along which a cell from the server is periodic; `.none`
    ///     ignores the server's cell (a molecule in a box).
    ///   - structureHasCell: whether the structure said which axes are periodic; when not, the
    ///     first cell from the server is reported through `warn`.
    public init(address: SocketAddress, potential: any Potential, atomicNumbers: [Int], periodicity: Periodicity = .all,
                structureHasCell: Bool = true, warn: @escaping (String) -> Void = { _ in },
                stopRequested: @escaping @Sendable () -> Bool = { false }) {
        self.address = address
        self.potential = potential
        self.atomicNumbers = atomicNumbers
        self.periodicity = periodicity
        self.structureHasCell = structureHasCell
        self.warn = warn
        self.stopRequested = stopRequested
    }

    /// How a conversation ended.
    public struct Ending: Equatable, Sendable {
        public let answered: Int
        /// False when the server closed the connection instead: ASE's server ends that way, and
        /// so does one that failed.
        public let serverSentExit: Bool
    }

    /// Connects (trying again for up to `connectTimeout` seconds, so that the server may start
    /// later) and answers until the server sends `EXIT` or closes the connection.
    public func run(connectTimeout: Double = 60) throws -> Ending {
        try address.validate()
        let server = try connect(within: connectTimeout)
        defer { close(server.descriptor) }
        var state = "READY"
        var answer: [UInt8] = []
        var answered = 0
        while true {
            // Between evaluations the server may take as long as it likes (other beads, other clients).
            guard let order = try server.header(until: nil, endIsAllowed: true, waitingFor: "the server's next request") else {
                // ASE's server ends by closing, without EXIT (as its client takes a close for one);
                // so does a server that failed, which the caller's report tells apart.
                return Ending(answered: answered, serverSentExit: false)
            }
            switch order {
            case "STATUS":
                try server.sendAll(IPIWire.header(state), until: nil)
            case "INIT":
                _ = try server.int32(until: nil)
                let length = try server.int32(until: nil)
                guard length >= 0, length < 1 << 20 else { throw server.failure("sent INIT with a string of \(length) bytes") }
                _ = try server.bytes(Int(length), until: nil)
                state = "READY"
            case "POSDATA":
                answer = try evaluate(positionsFrom: server)
                state = "HAVEDATA"
            case "GETFORCE":
                guard state == "HAVEDATA" else { throw server.failure("asked for forces before it sent positions") }
                try server.sendAll(answer, until: nil)
                answered += 1
                state = "READY"
            case "EXIT":
                return Ending(answered: answered, serverSentExit: true)
            default:
                throw server.failure("sent \(IPIConnection.readable(order)), which is no i-PI order")
            }
        }
    }

    /// Reads a POSDATA message's body and returns the whole FORCEREADY message.
    private func evaluate(positionsFrom server: IPIConnection) throws -> [UInt8] {
        let bohr = IPIWire.bohrInAngstrom, hartree = IPIWire.hartreeInEV
        let h = try server.doubles(9, until: nil, "cell").map { $0 * bohr }
        _ = try server.doubles(9, until: nil, "inverse cell")
        let count = Int(try server.int32(until: nil))
        guard count == atomicNumbers.count else {
            throw server.failure("sent \(count) atoms; the structure has \(atomicNumbers.count)")
        }
        let positions = try server.vectors(count, until: nil, "position", times: bohr)
        let cell: Cell?
        if h.allSatisfy({ $0 == 0 }) || periodicity == .none {
            cell = nil
        } else {
            do { cell = try Cell(matrix: IPIWire.fromColumnMajor(h), pbc: periodicity) } catch {
                throw server.failure("sent a cell that cannot be: \(error)")
            }
        }
        if cell != nil && !warnedOfTheCell && !structureHasCell {
            warnedOfTheCell = true
            warn("the server sends a cell and the structure has none: computed as periodic along a, b and c (give --molecule for a molecule in a box)")
        }
        let result: ForceResult
        do {
            result = try potential.compute(Configuration(atomicNumbers: atomicNumbers, positions: positions, cell: cell))
        } catch let error as EvaluationStopped {
            throw error
        } catch {
            throw server.failure("the configuration it sent cannot be evaluated: \(error)")
        }
        var message = IPIWire.header("FORCEREADY")
        message += IPIWire.bytes(of: result.energy / hartree)
        message += IPIWire.bytes(of: Int32(count))
        message += IPIWire.bytes(of: result.forces, times: bohr / hartree)
        message += IPIWire.bytes(of: IPIWire.rowMajor(result.virial).map { $0 / hartree })
        message += IPIWire.bytes(of: Int32(0))
        return message
    }

    /// `connect` that waits no longer than `deadline` and hears a stop request (through
    /// ``IPIConnection/wait``): a blocking one waited minutes for a host that drops packets,
    /// deaf to SIGINT.
    private func connectWithoutBlocking(_ descriptor: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t,
                                        until deadline: Date, seconds: Double) throws -> Int32 {
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        if Glibc.connect(descriptor, address, length) == 0 { return 0 }
        guard errno == EINPROGRESS else { return -1 }
        try IPIConnection.wait(descriptor, for: Int16(POLLOUT), until: deadline, allowed: seconds, peer: "ipi server at \(self.address)",
                               waitingFor: "connection", stopRequested: stopRequested)
        var failure: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &failure, &size) == 0 else { return -1 }
        errno = failure
        return failure == 0 ? 0 : -1
    }

    private func connect(within seconds: Double) throws -> IPIConnection {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            do {
                let descriptor = try IPIWire.openSocket(for: address) {
                    try connectWithoutBlocking($0, $1, $2, until: deadline, seconds: seconds)
                }
                return IPIConnection(descriptor: descriptor, peer: "ipi server at \(address)", timeout: nil, stopRequested: stopRequested)
            } catch let error as IPIWire.CallFailure {
                if stopRequested() { throw EvaluationStopped("ipi: stopped on request while connecting to \(address)") }
                guard Date() < deadline else {
                    throw IPIError("ipi: cannot connect to \(address) within \(seconds) s: \(error.reason)")
                }
                usleep(50_000)
            }
        }
    }
}
