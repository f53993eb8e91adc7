import Foundation
import Geometry
#if canImport(Glibc)
import Glibc
#endif

/// Where the two ends of an i-PI connection meet (``SocketPotential``, ``IPIDriver``).
public enum SocketAddress: Equatable, Sendable, CustomStringConvertible {
    /// A Unix-domain socket `/tmp/ipi_NAME`, the path i-PI, ASE's `SocketClient`, Quantum
    /// ESPRESSO (`--ipi NAME:UNIX`) and CP2K build from the name alone.
    case unix(name: String)
    /// A TCP port: on one local address (`localhost`, a numeric IPv4 address, or `*` for all)
    /// for a server; at `localhost` or a numeric IPv4 address for a client.
    case tcp(host: String, port: Int)

    static func unixPath(_ name: String) -> String { "/tmp/ipi_" + name }

    static func ipv4(_ host: String) -> in_addr? {
        var address = in_addr()
        return inet_pton(AF_INET, host, &address) == 1 ? address : nil
    }

    /// Refuses what a socket cannot be: a name that `sun_path` (108 bytes) cannot hold or
    /// that holds a `/` or NUL, a port outside 1–65535, a host that is no IPv4 address.
    func validate() throws {
        switch self {
        case .unix(let name):
            guard !name.isEmpty, !name.contains("/"), !name.contains("\0"), Self.unixPath(name).utf8.count < 108 else {
                throw IPIError("ipi: '\(name)' cannot name a socket /tmp/ipi_NAME (at most 98 bytes, no '/')")
            }
        case .tcp(let host, let port):
            guard (1...65535).contains(port) else { throw IPIError("ipi: port \(port) is outside 1-65535") }
            guard host == "*" || host == "localhost" || Self.ipv4(host) != nil else {
                throw IPIError("ipi: host '\(host)' is not localhost, * or a numeric IPv4 address")
            }
        }
    }

    public var description: String {
        switch self {
        case .unix(let name): return "unix:\(name) (\(Self.unixPath(name)))"
        case .tcp(let host, let port): return "\(host):\(port)"
        }
    }
}

/// A failure of an i-PI connection or of the other end's answer; the message names the address.
public struct IPIError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// What both ends of the i-PI protocol share: atomic units, the 12-byte headers, the cell's
/// layout, and a connection that reads and writes whole messages.
enum IPIWire {
    static let bohrInAngstrom = 0.529177210903  // CODATA 2018
    static let hartreeInEV = 27.211386245988     // CODATA 2018

    static func header(_ word: String) -> [UInt8] {
        Array(word.utf8) + [UInt8](repeating: 0x20, count: max(0, 12 - word.utf8.count))
    }

    static func bytes<T>(of value: T) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }
    static func bytes(of values: [Double]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }
    /// Positions or forces as the wire holds them: x, y, z of each in turn, times `scale`.
    static func bytes(of vectors: [Vec3], times scale: Double) -> [UInt8] {
        bytes(of: vectors.flatMap { [$0.x * scale, $0.y * scale, $0.z * scale] })
    }

    /// A virial row by row, as i-PI reads it and its Fortran drivers write it (ASE's client
    /// writes the transpose; a virial is symmetric for any energy that turns with the system).
    static func rowMajor(_ m: Mat3) -> [Double] {
        let (a, b, c) = m.rows
        return [a.x, a.y, a.z, b.x, b.y, b.z, c.x, c.y, c.z]
    }

    static func fromRowMajor(_ values: [Double]) -> Mat3 {
        Mat3(Vec3(values[0], values[1], values[2]), Vec3(values[3], values[4], values[5]), Vec3(values[6], values[7], values[8]))
    }

    /// The cell `h` (lattice vectors as columns) and its inverse, row by row, in Å and 1/Å;
    /// zeros for no cell, as ASE's server sends for a molecule.
    static func cellMatrices(_ cell: Cell?) -> (h: [Double], inverse: [Double]) {
        guard let cell else { return ([Double](repeating: 0, count: 9), [Double](repeating: 0, count: 9)) }
        // `matrix` holds the vectors as rows: h is its transpose, and h⁻¹ the transpose of its inverse.
        return (columnMajor(cell.matrix), columnMajor(cell.inverse))
    }

    /// `m` column by column (`h` from a matrix whose rows are the lattice vectors).
    static func columnMajor(_ m: Mat3) -> [Double] { rowMajor(m.transposed) }

    /// The matrix whose columns are `values` in threes (the inverse of ``columnMajor(_:)``).
    static func fromColumnMajor(_ values: [Double]) -> Mat3 { fromRowMajor(values).transposed }

    struct CallFailure: Error { let reason: String }

    /// A stream socket for `address` on which `call` (bind or connect) returned 0; closed when
    /// it did not, or threw.
    static func openSocket(for address: SocketAddress, _ call: (Int32, UnsafePointer<sockaddr>, socklen_t) throws -> Int32) throws -> Int32 {
        func attempt<Address>(_ family: Int32, _ socketAddress: Address) throws -> Int32 {
            // Close-on-exec: an external program of a sum would otherwise inherit the socket and,
            // left running in the background, hold the port after the run.
            let descriptor = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard descriptor >= 0 else { throw CallFailure(reason: String(cString: strerror(errno))) }
            if family == AF_INET {
                // A port a finished run used stays in TIME_WAIT for a minute; a new run may take it.
                var yes: Int32 = 1
                setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
            }
            var copy = socketAddress
            let status: Int32
            do {
                status = try withUnsafePointer(to: &copy) {
                    try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try call(descriptor, $0, socklen_t(MemoryLayout<Address>.size)) }
                }
            } catch {
                close(descriptor)
                throw error
            }
            guard status == 0 else {
                let reason = String(cString: strerror(errno))
                close(descriptor)
                throw CallFailure(reason: reason)
            }
            return descriptor
        }
        switch address {
        case .unix(let name):
            var unix = sockaddr_un()
            unix.sun_family = sa_family_t(AF_UNIX)
            let path = SocketAddress.unixPath(name)
            withUnsafeMutableBytes(of: &unix.sun_path) { raw in
                for (i, byte) in path.utf8.prefix(raw.count - 1).enumerated() { raw[i] = byte }
            }
            return try attempt(AF_UNIX, unix)
        case .tcp(let host, let port):
            var inet = sockaddr_in()
            inet.sin_family = sa_family_t(AF_INET)
            inet.sin_port = in_port_t(UInt16(port).bigEndian)
            switch host {
            case "*": inet.sin_addr.s_addr = INADDR_ANY
            case "localhost": inet.sin_addr.s_addr = UInt32(INADDR_LOOPBACK).bigEndian
            default:
                guard let numeric = SocketAddress.ipv4(host) else { throw CallFailure(reason: "'\(host)' is no IPv4 address") }
                inet.sin_addr = numeric
            }
            return try attempt(AF_INET, inet)
        }
    }
}

/// One open i-PI connection: whole messages in and out, a stop request seen within 50 ms
/// while waiting, and errors that name the other end (`peer`).
struct IPIConnection {
    let descriptor: Int32
    /// "ipi client at unix:…" or "ipi server at …", the start of every error.
    let peer: String
    /// Seconds allowed for each exchange (for messages; the caller sets the deadlines).
    let timeout: Double?
    let stopRequested: @Sendable () -> Bool

    func failure(_ what: String) -> IPIError { IPIError("\(peer): \(what)") }

    /// A header from ``header(until:endIsAllowed:waitingFor:)`` quoted for a message (its bytes
    /// in hex when they were not printable).
    static func readable(_ header: String) -> String {
        header.hasPrefix("<bytes ") ? header : "'\(header)'"
    }

    /// Sends without blocking past `deadline` or a stop request: a peer that stops reading
    /// fills the socket's buffer, and a large frame would wait on it for ever.
    func sendAll(_ bytes: [UInt8], until deadline: Date?) throws {
        var sent = 0
        while sent < bytes.count {
            // MSG_NOSIGNAL: a peer that has gone is an error here, not a SIGPIPE that ends eninet-md.
            let n = bytes.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return send(descriptor, base + sent, raw.count - sent, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                try Self.wait(descriptor, for: Int16(POLLOUT), until: deadline, allowed: timeout, peer: peer,
                              waitingFor: "room to send", stopRequested: stopRequested)
                continue
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let gone = errno == EPIPE || errno == ECONNRESET
                throw failure(gone ? "disconnected" : "the connection broke while sending (\(String(cString: strerror(errno))))")
            }
            sent += n
        }
    }

    /// `count` bytes, waiting until `deadline` (nil: as long as it takes). Nil when the peer
    /// closed the connection before the first byte and `endIsAllowed`.
    func receive(_ count: Int, until deadline: Date?, endIsAllowed: Bool = false, waitingFor what: String = "answer") throws -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        var received = 0
        while received < count {
            try Self.wait(descriptor, for: Int16(POLLIN), until: deadline, allowed: timeout, peer: peer,
                          waitingFor: what, stopRequested: stopRequested)
            let n = buffer.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return recv(descriptor, base + received, raw.count - received, 0)
            }
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            guard n > 0 else {
                // A peer that closes with the other's last words unread resets the connection.
                let gone = n == 0 || errno == ECONNRESET
                if gone && endIsAllowed && received == 0 { return nil }
                throw failure(gone ? "disconnected" : "the connection broke (\(String(cString: strerror(errno))))")
            }
            received += n
        }
        return buffer
    }

    func bytes(_ count: Int, until deadline: Date?) throws -> [UInt8] {
        try receive(count, until: deadline) ?? []
    }

    /// The 12-byte header, spaces trimmed; `<bytes …>` in hex when it is not printable ASCII,
    /// which no valid header equals.
    func header(until deadline: Date?, endIsAllowed: Bool = false, waitingFor what: String = "answer") throws -> String? {
        guard let raw = try receive(12, until: deadline, endIsAllowed: endIsAllowed, waitingFor: what) else { return nil }
        guard raw.allSatisfy({ (0x20..<0x7F).contains($0) }) else {
            return "<bytes " + raw.map { String(format: "%02x", $0) }.joined(separator: " ") + ">"
        }
        return String(decoding: raw, as: UTF8.self).trimmingCharacters(in: .whitespaces)
    }

    func int32(until deadline: Date?) throws -> Int32 {
        try bytes(4, until: deadline).withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }
    }

    func doubles(_ count: Int, until deadline: Date?, _ what: String) throws -> [Double] {
        let raw = try bytes(8 * count, until: deadline)
        let values = raw.withUnsafeBytes { buffer in (0..<count).map { buffer.loadUnaligned(fromByteOffset: 8 * $0, as: Double.self) } }
        guard values.allSatisfy(\.isFinite) else { throw failure("sent a non-finite \(what)") }
        return values
    }

    /// `count` positions or forces, times `scale`.
    func vectors(_ count: Int, until deadline: Date?, _ what: String, times scale: Double) throws -> [Vec3] {
        let flat = try doubles(3 * count, until: deadline, what)
        return (0..<count).map { Vec3(flat[3 * $0], flat[3 * $0 + 1], flat[3 * $0 + 2]) * scale }
    }

    /// Polls in slices of 50 ms, so that a stop request is seen while the peer computes.
    /// `events` is POLLIN (also a listening socket's "a client connects") or POLLOUT.
    static func wait(_ descriptor: Int32, for events: Int16, until deadline: Date?, allowed: Double?, peer: String,
                     waitingFor what: String, stopRequested: () -> Bool) throws {
        while true {
            if stopRequested() { throw EvaluationStopped("\(peer): stopped on request while waiting for \(what)") }
            let left = deadline?.timeIntervalSinceNow ?? 1
            guard left > 0 else { throw IPIError("\(peer): no \(what) within \(allowed ?? 0) s") }
            var entry = pollfd(fd: descriptor, events: events, revents: 0)
            let ready = poll(&entry, 1, Int32(min(left, 0.05) * 1000) + 1)
            if ready > 0 { return }
            if ready < 0 && errno != EINTR {
                throw IPIError("\(peer): cannot wait for \(what): \(String(cString: strerror(errno)))")
            }
        }
    }
}
