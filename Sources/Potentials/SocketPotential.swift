import Foundation
import Geometry
#if canImport(Glibc)
import Glibc
#endif

/// Where a ``SocketPotential`` listens for its client.
public enum SocketAddress: Equatable, Sendable, CustomStringConvertible {
    /// A Unix-domain socket `/tmp/ipi_NAME`, the path i-PI, ASE's `SocketClient`, Quantum
    /// ESPRESSO (`--ipi NAME:UNIX`) and CP2K build from the name alone.
    case unix(name: String)
    /// A TCP port on one local address (`localhost`, a numeric IPv4 address, or `*` for all).
    case tcp(host: String, port: Int)

    static func unixPath(_ name: String) -> String { "/tmp/ipi_" + name }

    static func ipv4(_ host: String) -> in_addr? {
        var address = in_addr()
        return inet_pton(AF_INET, host, &address) == 1 ? address : nil
    }

    public var description: String {
        switch self {
        case .unix(let name): return "unix:\(name) (\(Self.unixPath(name)))"
        case .tcp(let host, let port): return "\(host):\(port)"
        }
    }
}

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
/// numbers, or takes longer than `timeout` seconds is a ``PotentialError`` naming the address;
/// a stop request while waiting throws ``EvaluationStopped``. At the end the client is sent
/// `EXIT`.
public final class SocketPotential: Potential {
    public let name = "ipi"
    public let address: SocketAddress
    /// Seconds the client may take to connect, and then for each answer.
    public let timeout: Double
    private let stopRequested: @Sendable () -> Bool
    private var listener: Int32 = -1
    private var connection: Int32 = -1
    /// Evaluations answered (for tests).
    private(set) var calls = 0

    public static let bohrInAngstrom = 0.529177210903  // CODATA 2018
    public static let hartreeInEV = 27.211386245988     // CODATA 2018

    /// Binds and listens at once, so that an address in use is an error before a run starts
    /// and a client may connect as soon as it likes.
    public init(address: SocketAddress, timeout: Double = 3600,
                stopRequested: @escaping @Sendable () -> Bool = { false }) throws {
        guard timeout > 0, timeout.isFinite else { throw PotentialError("ipi: timeout \(timeout) s must be positive") }
        self.address = address
        self.timeout = timeout
        self.stopRequested = stopRequested
        listener = try Self.listen(at: address)
    }

    deinit {
        if connection >= 0 {
            // A client that is waiting for its next order ends on EXIT; one that has gone
            // makes this send fail, which is no concern at the end.
            _ = Self.header("EXIT").withUnsafeBytes { send(connection, $0.baseAddress, 12, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
            close(connection)
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
        if connection < 0 { connection = try acceptClient() }
        do {
            let result = try exchange(configuration)
            calls += 1
            return result
        } catch {
            // The conversation's state is unknown after a failure: the next evaluation (there is
            // none in a run, which ends) would wait for a new client.
            close(connection)
            connection = -1
            throw error
        }
    }

    // MARK: The conversation

    private func exchange(_ configuration: Configuration) throws -> ForceResult {
        let deadline = Date().addingTimeInterval(timeout)
        var status = try askStatus(deadline)
        if status == "NEEDINIT" {
            // Bead 0 and a one-byte string, as ASE sends: some codes read no empty string.
            try sendAll(Self.header("INIT") + Self.bytes(of: Int32(0)) + Self.bytes(of: Int32(1)) + [0])
            status = try askStatus(deadline)
        }
        guard status == "READY" else { throw failure("answered STATUS with '\(status)', expected READY") }

        let n = configuration.count
        let bohr = Self.bohrInAngstrom
        var frame = Self.header("POSDATA")
        let (h, inverse) = Self.cellMatrices(configuration.cell)
        frame += Self.bytes(of: h.map { $0 / bohr })
        frame += Self.bytes(of: inverse.map { $0 * bohr })
        frame += Self.bytes(of: Int32(n))
        frame += Self.bytes(of: configuration.positions.flatMap { [$0.x / bohr, $0.y / bohr, $0.z / bohr] })
        try sendAll(frame)

        status = try askStatus(deadline)
        guard status == "HAVEDATA" else { throw failure("answered STATUS after the positions with '\(status)', expected HAVEDATA") }
        try sendAll(Self.header("GETFORCE"))
        let reply = try receiveHeader(deadline)
        guard reply == "FORCEREADY" else { throw failure("answered GETFORCE with '\(reply)', expected FORCEREADY") }
        let energy = try receiveDoubles(1, deadline, "energy")[0] * Self.hartreeInEV
        let count = try receiveInt32(deadline)
        guard count == n else { throw failure("sent forces for \(count) atoms; the configuration has \(n)") }
        let flat = try receiveDoubles(3 * n, deadline, "forces").map { $0 * Self.hartreeInEV / bohr }
        let forces = (0..<n).map { Vec3(flat[3 * $0], flat[3 * $0 + 1], flat[3 * $0 + 2]) }
        let wire = try receiveDoubles(9, deadline, "virial").map { $0 * Self.hartreeInEV }
        let extra = try receiveInt32(deadline)
        guard extra >= 0, extra < 1 << 26 else { throw failure("announced \(extra) bytes of extra data") }
        _ = try receive(Int(extra), deadline)

        let virial: Mat3
        if let cell = configuration.cell, cell.pbc.x && cell.pbc.y && cell.pbc.z {
            // Written column by column (Fortran's order, and the transpose of ASE's client's).
            virial = Mat3(Vec3(wire[0], wire[3], wire[6]), Vec3(wire[1], wire[4], wire[7]), Vec3(wire[2], wire[5], wire[8]))
        } else {
            virial = zip(configuration.positions, forces).reduce(Mat3.zero) { $0 + Mat3.outer($1.0, $1.1) }
        }
        return ForceResult(energy: energy, forces: forces, virial: virial)
    }

    /// The cell `h` (lattice vectors as columns) and its inverse, row by row, in Å and 1/Å.
    static func cellMatrices(_ cell: Cell?) -> (h: [Double], inverse: [Double]) {
        guard let cell else { return ([Double](repeating: 0, count: 9), [Double](repeating: 0, count: 9)) }
        // `matrix` holds the vectors as rows: h is its transpose, and h⁻¹ the transpose of its inverse.
        func transposedRows(_ m: Mat3) -> [Double] {
            let (a, b, c) = m.rows
            return [a.x, b.x, c.x, a.y, b.y, c.y, a.z, b.z, c.z]
        }
        return (transposedRows(cell.matrix), transposedRows(cell.inverse))
    }

    private func failure(_ what: String) -> PotentialError {
        PotentialError("ipi client at \(address): \(what)")
    }

    private func askStatus(_ deadline: Date) throws -> String {
        try sendAll(Self.header("STATUS"))
        return try receiveHeader(deadline)
    }

    static func header(_ word: String) -> [UInt8] {
        Array(word.utf8) + [UInt8](repeating: 0x20, count: 12 - word.utf8.count)
    }

    static func bytes<T>(of value: T) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }
    static func bytes(of values: [Double]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }

    private func receiveHeader(_ deadline: Date) throws -> String {
        let raw = try receive(12, deadline)
        return String(decoding: raw, as: UTF8.self).trimmingCharacters(in: .whitespaces)
    }

    private func receiveInt32(_ deadline: Date) throws -> Int32 {
        try receive(4, deadline).withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }
    }

    private func receiveDoubles(_ count: Int, _ deadline: Date, _ what: String) throws -> [Double] {
        let raw = try receive(8 * count, deadline)
        let values = (0..<count).map { i in raw.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8 * i, as: Double.self) } }
        guard values.allSatisfy(\.isFinite) else { throw failure("sent a non-finite \(what)") }
        return values
    }

    // MARK: Sockets

    private func sendAll(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            // MSG_NOSIGNAL: a client that has gone is an error here, not a SIGPIPE that ends eninet-md.
            let n = bytes.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return send(connection, base + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let gone = errno == EPIPE || errno == ECONNRESET
                throw failure(gone ? "disconnected before it answered" : "the connection broke while sending (\(String(cString: strerror(errno))))")
            }
            sent += n
        }
    }

    private func receive(_ count: Int, _ deadline: Date) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var received = 0
        while received < count {
            try waitUntilReadable(connection, deadline, waitingFor: "an answer")
            let n = buffer.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return recv(connection, base + received, raw.count - received, 0)
            }
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            guard n > 0 else {
                // A client that closes with the engine's last words unread resets the connection.
                let gone = n == 0 || errno == ECONNRESET
                throw failure(gone ? "disconnected before it answered" : "the connection broke (\(String(cString: strerror(errno))))")
            }
            received += n
        }
        return buffer
    }

    /// Polls in slices of 50 ms, so that a stop request is seen while a client computes.
    private func waitUntilReadable(_ descriptor: Int32, _ deadline: Date, waitingFor what: String) throws {
        while true {
            if stopRequested() { throw EvaluationStopped("ipi: stopped on request while waiting for \(what) from \(address)") }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { throw failure("no \(what) within \(timeout) s") }
            var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&entry, 1, Int32(min(left, 0.05) * 1000) + 1)
            if ready > 0 { return }
            if ready < 0 && errno != EINTR { throw failure("cannot wait for \(what): \(String(cString: strerror(errno)))") }
        }
    }

    private func acceptClient() throws -> Int32 {
        try waitUntilReadable(listener, Date().addingTimeInterval(timeout), waitingFor: "client to connect")
        let client = accept(listener, nil, nil)
        guard client >= 0 else { throw failure("cannot accept the client: \(String(cString: strerror(errno)))") }
        return client
    }

    private static func listen(at address: SocketAddress) throws -> Int32 {
        func failure(_ what: String) -> PotentialError { PotentialError("ipi: cannot listen at \(address): \(what)") }
        if case .unix(let name) = address, access(SocketAddress.unixPath(name), F_OK) == 0 {
            // As i-PI does: a file there may be another run's live socket, so it is never removed.
            throw failure("\(SocketAddress.unixPath(name)) exists; another run may be using it (remove it if none is)")
        }
        let descriptor: Int32
        do { descriptor = try openSocket(for: address) { bind($0, $1, $2) } } catch let error as SocketCallFailure {
            throw failure(error.reason)
        }
        guard Glibc.listen(descriptor, 1) == 0 else {
            let reason = String(cString: strerror(errno))
            close(descriptor)
            throw failure(reason)
        }
        return descriptor
    }

    struct SocketCallFailure: Error { let reason: String }

    /// A stream socket for `address` on which `call` (bind or connect) succeeded.
    static func openSocket(for address: SocketAddress, _ call: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32) throws -> Int32 {
        func attempt<Address>(_ family: Int32, _ socketAddress: Address) throws -> Int32 {
            let descriptor = socket(family, Int32(SOCK_STREAM.rawValue), 0)
            guard descriptor >= 0 else { throw SocketCallFailure(reason: String(cString: strerror(errno))) }
            if family == AF_INET {
                // A port a finished run used stays in TIME_WAIT for a minute; a new run may take it.
                var yes: Int32 = 1
                setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
            }
            var copy = socketAddress
            let status = withUnsafePointer(to: &copy) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(descriptor, $0, socklen_t(MemoryLayout<Address>.size)) }
            }
            guard status == 0 else {
                let reason = String(cString: strerror(errno))
                close(descriptor)
                throw SocketCallFailure(reason: reason)
            }
            return descriptor
        }
        switch address {
        case .unix(let name):
            return try attempt(AF_UNIX, unixAddress(SocketAddress.unixPath(name)))
        case .tcp(let host, let port):
            var inet = sockaddr_in()
            inet.sin_family = sa_family_t(AF_INET)
            inet.sin_port = in_port_t(UInt16(port).bigEndian)
            switch host {
            case "*": inet.sin_addr.s_addr = INADDR_ANY
            case "localhost": inet.sin_addr.s_addr = UInt32(INADDR_LOOPBACK).bigEndian
            default:
                guard let numeric = SocketAddress.ipv4(host) else { throw SocketCallFailure(reason: "'\(host)' is no IPv4 address") }
                inet.sin_addr = numeric
            }
            return try attempt(AF_INET, inet)
        }
    }

    /// A Unix-socket address for `path` (shorter than `sun_path`, checked by ``SocketAddress``).
    private static func unixAddress(_ path: String) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.prefix(raw.count - 1).enumerated() { raw[i] = byte }
        }
        return address
    }
}
