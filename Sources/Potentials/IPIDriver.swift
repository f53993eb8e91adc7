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
        let flat = try server.doubles(3 * count, until: nil, "position").map { $0 * bohr }
        let positions = (0..<count).map { Vec3(flat[3 * $0], flat[3 * $0 + 1], flat[3 * $0 + 2]) }
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
        message += IPIWire.bytes(of: result.forces.flatMap { [$0.x, $0.y, $0.z] }.map { $0 * bohr / hartree })
        let (v0, v1, v2) = result.virial.rows
        message += IPIWire.bytes(of: [v0.x, v0.y, v0.z, v1.x, v1.y, v1.z, v2.x, v2.y, v2.z].map { $0 / hartree })  // row by row, as i-PI reads it
        message += IPIWire.bytes(of: Int32(0))
        return message
    }

    /// `connect` that gives up at `deadline` or on a stop request (errno ETIMEDOUT or EINTR):
    /// a blocking one waited minutes for a host that drops packets, deaf to SIGINT.
    private func connectWithoutBlocking(_ descriptor: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t,
                                        until deadline: Date) -> Int32 {
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        if Glibc.connect(descriptor, address, length) == 0 { return 0 }
        guard errno == EINPROGRESS else { return -1 }
        while true {
            if stopRequested() { errno = EINTR; return -1 }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { errno = ETIMEDOUT; return -1 }
            var entry = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
            let ready = poll(&entry, 1, Int32(min(left, 0.05) * 1000) + 1)
            if ready < 0 && errno != EINTR { return -1 }
            guard ready > 0 else { continue }
            var failure: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &failure, &size) == 0 else { return -1 }
            if failure == 0 { return 0 }
            errno = failure
            return -1
        }
    }

    private func connect(within seconds: Double) throws -> IPIConnection {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            do {
                let descriptor = try IPIWire.openSocket(for: address) { connectWithoutBlocking($0, $1, $2, until: deadline) }
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
