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
    private let stopRequested: @Sendable () -> Bool

    public init(address: SocketAddress, potential: any Potential, atomicNumbers: [Int], periodicity: Periodicity = .all,
                stopRequested: @escaping @Sendable () -> Bool = { false }) {
        self.address = address
        self.potential = potential
        self.atomicNumbers = atomicNumbers
        self.periodicity = periodicity
        self.stopRequested = stopRequested
    }

    /// Connects (trying again for up to `connectTimeout` seconds, so that the server may start
    /// later) and answers until the server sends `EXIT` or closes the connection. Returns the
    /// number of evaluations answered.
    public func run(connectTimeout: Double = 60) throws -> Int {
        try address.validate()
        let server = try connect(within: connectTimeout)
        defer { close(server.descriptor) }
        var state = "READY"
        var answer: [UInt8] = []
        var answered = 0
        while true {
            // Between evaluations the server may take as long as it likes (other beads, other clients).
            guard let order = try server.header(until: nil, endIsAllowed: true) else { return answered }
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
                return answered
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
        if h.allSatisfy({ $0 == 0 }) {
            cell = nil
        } else {
            do { cell = try Cell(matrix: IPIWire.fromColumnMajor(h), pbc: periodicity) } catch {
                throw server.failure("sent a cell that cannot be: \(error)")
            }
        }
        let result = try potential.compute(Configuration(atomicNumbers: atomicNumbers, positions: positions, cell: cell))
        var message = IPIWire.header("FORCEREADY")
        message += IPIWire.bytes(of: result.energy / hartree)
        message += IPIWire.bytes(of: Int32(count))
        message += IPIWire.bytes(of: result.forces.flatMap { [$0.x, $0.y, $0.z] }.map { $0 * bohr / hartree })
        let (v0, v1, v2) = result.virial.rows
        message += IPIWire.bytes(of: [v0.x, v0.y, v0.z, v1.x, v1.y, v1.z, v2.x, v2.y, v2.z].map { $0 / hartree })  // row by row, as i-PI reads it
        message += IPIWire.bytes(of: Int32(0))
        return message
    }

    private func connect(within seconds: Double) throws -> IPIConnection {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            do {
                let descriptor = try IPIWire.openSocket(for: address) { Glibc.connect($0, $1, $2) }
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
