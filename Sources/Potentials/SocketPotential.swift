import Foundation
import Geometry
#if canImport(Glibc)
import Glibc
#endif

/// A force code connected through the i-PI socket protocol, the way i-PI and ASE's
/// `SocketIOCalculator` drive Quantum ESPRESSO, CP2K, DFTB+, FHI-aims, LAMMPS (`fix ipi`) or any
/// ASE calculator behind `SocketClient`: the code starts once, connects, and answers every
/// evaluation over the socket, instead of starting for each as with ``ExternalPotential``.
///
/// `eninet-md` is the server. It listens from the moment the potential is made and waits for
/// one client at the first evaluation. Each evaluation sends the positions and the cell in
/// atomic units (Bohr; the cell as the matrix whose columns are the lattice vectors, then its
/// inverse) and reads the energy (Hartree), the forces (Hartree/Bohr) and the virial
/// (Hartree, −∂E/∂ε). The client must already know the elements, from its own input; the atom
/// count is checked. A molecule without a cell is sent a zero cell, as ASE's server sends one;
/// codes that need a box (plane waves) need the structure to carry it (`pbc="F F F"` keeps it
/// non-periodic for the engine). As with ``ExternalPotential``, the client's virial is used
/// for a cell periodic along every axis, and Σ r ⊗ F otherwise.
///
/// A client that disconnects, answers out of turn, gives a wrong atom count or non-finite
/// numbers, or takes longer than `timeout` seconds is an ``IPIError`` naming the address;
/// a stop request while waiting throws ``EvaluationStopped``. At the end the client is sent
/// `EXIT`.
public final class SocketPotential: Potential {
    public let name = "ipi"
    public let address: SocketAddress
    /// Seconds the client may take to connect, and then for each answer.
    public let timeout: Double
    private let stopRequested: @Sendable () -> Bool
    private var listener: Int32 = -1
    private var connection: IPIConnection?
    /// Evaluations answered (for tests).
    private(set) var calls = 0

    public static let bohrInAngstrom = IPIWire.bohrInAngstrom
    public static let hartreeInEV = IPIWire.hartreeInEV

    /// Binds and listens at once, so that an address in use is an error before a run starts
    /// and a client may connect as soon as it likes.
    public init(address: SocketAddress, timeout: Double = 3600,
                stopRequested: @escaping @Sendable () -> Bool = { false }) throws {
        guard timeout > 0, timeout.isFinite else { throw PotentialError("ipi: timeout \(timeout) s must be positive") }
        try address.validate()
        self.address = address
        self.timeout = timeout
        self.stopRequested = stopRequested
        listener = try Self.listen(at: address)
    }

    deinit {
        if let connection {
            // A client that is waiting for its next order ends on EXIT; one that has gone
            // makes this send fail, which is no concern at the end.
            _ = IPIWire.header("EXIT").withUnsafeBytes {
                send(connection.descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            }
            close(connection.descriptor)
        }
        if listener >= 0 {
            close(listener)
            // Only a server that bound the file removes it: one whose init failed on an
            // existing file is deinitialised too, and removed another run's socket.
            if case .unix(let name) = address { unlink(SocketAddress.unixPath(name)) }
        }
    }

    public func compute(_ configuration: Configuration) throws -> ForceResult {
        if stopRequested() { throw EvaluationStopped("ipi: stopped on request before the client was asked") }
        let client = try connection ?? acceptClient()
        connection = client
        do {
            let result = try exchange(configuration, over: client)
            calls += 1
            return result
        } catch {
            // The conversation's state is unknown after a failure: the next evaluation (there is
            // none in a run, which ends) would wait for a new client.
            close(client.descriptor)
            connection = nil
            throw error
        }
    }

    private var peer: String { "ipi client at \(address)" }

    private func exchange(_ configuration: Configuration, over client: IPIConnection) throws -> ForceResult {
        let deadline = Date().addingTimeInterval(timeout)
        func askStatus() throws -> String {
            try client.sendAll(IPIWire.header("STATUS"), until: deadline)
            return try client.header(until: deadline) ?? ""
        }
        var status = try askStatus()
        if status == "NEEDINIT" {
            // Bead 0 and a one-byte string, as ASE sends: some codes read no empty string.
            try client.sendAll(IPIWire.header("INIT") + IPIWire.bytes(of: Int32(0)) + IPIWire.bytes(of: Int32(1)) + [0], until: deadline)
            status = try askStatus()
        }
        guard status == "READY" else { throw client.failure("answered STATUS with \(IPIConnection.readable(status)), expected READY") }

        let n = configuration.count
        let bohr = IPIWire.bohrInAngstrom, hartree = IPIWire.hartreeInEV
        let (h, inverse) = IPIWire.cellMatrices(configuration.cell)
        var frame = IPIWire.header("POSDATA")
        frame += IPIWire.bytes(of: h.map { $0 / bohr })
        frame += IPIWire.bytes(of: inverse.map { $0 * bohr })
        frame += IPIWire.bytes(of: Int32(n))
        frame += IPIWire.bytes(of: configuration.positions, times: 1 / bohr)
        try client.sendAll(frame, until: deadline)

        status = try askStatus()
        guard status == "HAVEDATA" else { throw client.failure("answered STATUS after the positions with \(IPIConnection.readable(status)), expected HAVEDATA") }
        try client.sendAll(IPIWire.header("GETFORCE"), until: deadline)
        let reply = try client.header(until: deadline) ?? ""
        guard reply == "FORCEREADY" else { throw client.failure("answered GETFORCE with \(IPIConnection.readable(reply)), expected FORCEREADY") }
        let energy = try client.doubles(1, until: deadline, "energy")[0] * hartree
        let count = try client.int32(until: deadline)
        guard count == n else { throw client.failure("sent forces for \(count) atoms; the configuration has \(n)") }
        let forces = try client.vectors(n, until: deadline, "force", times: hartree / bohr)
        let wire = try client.doubles(9, until: deadline, "virial").map { $0 * hartree }
        let extra = try client.int32(until: deadline)
        guard extra >= 0, extra < 1 << 26 else { throw client.failure("announced \(extra) bytes of extra data") }
        _ = try client.bytes(Int(extra), until: deadline)

        let virial = ForceResult.answeredVirial(for: configuration, forces: forces) { _ in IPIWire.fromRowMajor(wire) }
        return ForceResult(energy: energy, forces: forces, virial: virial)
    }

    private func acceptClient() throws -> IPIConnection {
        try IPIConnection.wait(listener, for: Int16(POLLIN), until: Date().addingTimeInterval(timeout), allowed: timeout,
                               peer: "ipi server at \(address)", waitingFor: "client to connect", stopRequested: stopRequested)
        let descriptor = accept(listener, nil, nil)
        guard descriptor >= 0 else { throw IPIError("ipi server at \(address): cannot accept the client: \(String(cString: strerror(errno)))") }
        // Not inherited by an external program of a sum (Glibc's module does not offer accept4).
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        return IPIConnection(descriptor: descriptor, peer: peer, timeout: timeout, stopRequested: stopRequested)
    }

    private static func listen(at address: SocketAddress) throws -> Int32 {
        func failure(_ what: String) -> IPIError { IPIError("ipi: cannot listen at \(address): \(what)") }
        if case .unix(let name) = address, access(SocketAddress.unixPath(name), F_OK) == 0 {
            // As i-PI does: a file there may be another run's live socket, so it is never removed.
            throw failure("\(SocketAddress.unixPath(name)) exists; another run may be using it (remove it if none is)")
        }
        let descriptor: Int32
        do { descriptor = try IPIWire.openSocket(for: address) { bind($0, $1, $2) } } catch let error as IPIWire.CallFailure {
            throw failure(error.reason)
        }
        guard Glibc.listen(descriptor, 1) == 0 else {
            let reason = String(cString: strerror(errno))
            close(descriptor)
            throw failure(reason)
        }
        return descriptor
    }
}
