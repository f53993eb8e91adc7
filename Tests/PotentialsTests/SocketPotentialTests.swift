import Foundation
import XCTest
import Geometry
@testable import Potentials
#if canImport(Glibc)
import Glibc
#endif

/// The i-PI socket potential against a client written here from the protocol's description
/// (as ASE's `SocketClient` and i-PI's Fortran driver behave): what goes out on the wire, in
/// which units and order, and every way a client can fail. `SocketPotentialASETests` talks to
/// ASE's own client when ASE is installed.
final class SocketPotentialTests: XCTestCase {
    private var argon: LennardJones!

    override func setUpWithError() throws {
        argon = try LennardJones(sigma: 3.4, epsilon: 0.0104, cutoff: 6.0, scheme: .shifted, skin: 0)
    }

    private func crystal() throws -> Configuration {
        let cell = try Cell(matrix: Mat3(Vec3(11, 0, 0), Vec3(1.5, 10.5, 0), Vec3(-0.7, 0.9, 12)), pbc: .all)
        var generator = SystemRandomNumberGenerator()
        var positions: [Vec3] = []
        for i in 0..<3 { for j in 0..<3 { for k in 0..<3 {
            let jitter = Vec3(Double.random(in: -0.2...0.2, using: &generator), Double.random(in: -0.2...0.2, using: &generator), 0.1)
            positions.append(Vec3(Double(i) * 3.7, Double(j) * 3.5, Double(k) * 4) + jitter)
        } } }
        return Configuration(atomicNumbers: Array(repeating: 18, count: positions.count), positions: positions, cell: cell)
    }

    private func uniqueName() -> String { "eninetmd-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }

    /// A server on a free TCP port below Linux's ephemeral range: a random one can be in use.
    private func tcpServer(timeout: Double) throws -> SocketPotential {
        func attempt() throws -> SocketPotential {
            try SocketPotential(address: .tcp(host: "localhost", port: Int.random(in: 20000...32000)), timeout: timeout)
        }
        for _ in 1..<10 { if let server = try? attempt() { return server } }
        return try attempt()  // its error names the cause
    }

    /// Energy, forces and virial through atomic units and back: equal but for rounding.
    private func assertAgree(_ result: ForceResult, _ expected: ForceResult, _ label: String, line: UInt = #line) {
        XCTAssertEqual(result.energy, expected.energy, accuracy: 1e-13 * abs(expected.energy), label, line: line)
        let largest = expected.forces.map { norm($0) }.max() ?? 1
        for (f, g) in zip(result.forces, expected.forces) { XCTAssertLessThan(norm(f - g), 1e-12 * largest, label, line: line) }
        for (row, expectedRow) in [(result.virial.rows.0, expected.virial.rows.0), (result.virial.rows.1, expected.virial.rows.1),
                                   (result.virial.rows.2, expected.virial.rows.2)] {
            XCTAssertLessThan(norm(row - expectedRow), 1e-12 * abs(expected.virial.rows.0.x), label, line: line)
        }
    }

    func testAnswersComeBackInElectronVoltsAndAngstromOverUnixAndTCP() throws {
        let configuration = try crystal()
        let direct = try argon.compute(configuration)
        for server in [try SocketPotential(address: .unix(name: uniqueName()), timeout: 20), try tcpServer(timeout: 20)] {
            let address = server.address
            let client = try TestIPIClient(address, needsInit: true) { positions, h in
                // The client rebuilds the cell from h's columns, as ASE's client does.
                let cell = try Cell(matrix: Mat3(Vec3(h[0], h[3], h[6]), Vec3(h[1], h[4], h[7]), Vec3(h[2], h[5], h[8])), pbc: .all)
                let result = try self.argon.compute(Configuration(atomicNumbers: configuration.atomicNumbers, positions: positions, cell: cell))
                return (result.energy, result.forces, result.virial)
            }
            var moved = configuration
            for step in 0..<3 {
                assertAgree(try server.compute(moved), step == 0 ? direct : try argon.compute(moved), "\(address)")
                moved.positions[5] += Vec3(0.05, -0.02, 0.01)
            }
            XCTAssertEqual(server.calls, 3)
            // h in Bohr, columns the lattice vectors; h · h⁻¹ = 1.
            let h = try XCTUnwrap(client.lastCellBohr), inverse = try XCTUnwrap(client.lastInverseCellPerBohr)
            let a = configuration.cell?.matrix.rows.0 ?? .zero, b = configuration.cell?.matrix.rows.1 ?? .zero
            XCTAssertEqual(h[0], 11 / 0.529177210903, accuracy: 1e-12, "Bohr, CODATA 2018")
            XCTAssertEqual(h[0] * SocketPotential.bohrInAngstrom, a.x, accuracy: 1e-12)
            XCTAssertEqual(h[1] * SocketPotential.bohrInAngstrom, b.x, accuracy: 1e-12)
            XCTAssertEqual(h[3] * SocketPotential.bohrInAngstrom, a.y, accuracy: 1e-12)
            for i in 0..<3 { for j in 0..<3 {
                let product = (0..<3).reduce(0.0) { $0 + h[3 * i + $1] * inverse[3 * $1 + j] }
                XCTAssertEqual(product, i == j ? 1 : 0, accuracy: 1e-12)
            } }
            XCTAssertEqual(client.initializations, 1, "NEEDINIT answered once, with INIT")
        }
    }

    /// The virial is read row by row (i-PI's order): an asymmetric one comes back as sent.
    func testAnAsymmetricVirialKeepsItsOrientationAndAMoleculeGetsAZeroCell() throws {
        let configuration = try crystal()
        let sent = Mat3(Vec3(1, 2, 3), Vec3(4, 5, 6), Vec3(7, 8, 9.5))
        let address = SocketAddress.unix(name: uniqueName())
        let server = try SocketPotential(address: address, timeout: 20)
        let client = try TestIPIClient(address) { positions, _ in
            (-1, [Vec3](repeating: Vec3(0.5, 0, -0.5), count: positions.count), sent)
        }
        let result = try server.compute(configuration)
        XCTAssertEqual(result.energy, -1, accuracy: 1e-15)
        for (row, expected) in [(result.virial.rows.0, sent.rows.0), (result.virial.rows.1, sent.rows.1), (result.virial.rows.2, sent.rows.2)] {
            XCTAssertLessThan(norm(row - expected), 1e-14 * 10)
        }
        var molecule = configuration
        molecule.cell = nil
        let free = try server.compute(molecule)
        XCTAssertEqual(client.lastCellBohr, [Double](repeating: 0, count: 9))
        let expected = zip(molecule.positions, free.forces).reduce(Mat3.zero) { $0 + Mat3.outer($1.0, $1.1) }
        XCTAssertEqual(free.virial, expected, "a molecule's virial is Σ r ⊗ F")
    }

    func testAWrongAtomCountANonFiniteEnergyAndADisconnectAreErrorsNamingTheAddress() throws {
        let configuration = try crystal()
        for fault in [TestIPIClient.Fault.wrongAtomCount, .nonFiniteEnergy, .disconnectOnPositions] {
            let name = uniqueName(), address = SocketAddress.unix(name: name)
            var server: SocketPotential? = try SocketPotential(address: address, timeout: 20)
            let client = try TestIPIClient(address, fault: fault) { positions, _ in (0, [Vec3](repeating: .zero, count: positions.count), .zero) }
            XCTAssertThrowsError(try server?.compute(configuration)) { error in
                let message = "\(error)"
                XCTAssertTrue(error is IPIError, message)
                XCTAssertTrue(message.hasPrefix("ipi client at \(address):"), message)
                switch fault {
                case .wrongAtomCount: XCTAssertTrue(message.contains("forces for 26 atoms; the configuration has 27"), message)
                case .nonFiniteEnergy: XCTAssertTrue(message.contains("non-finite energy"), message)
                case .disconnectOnPositions: XCTAssertTrue(message.contains(": disconnected"), message)
                case .none, .stopReadingAfterStatus: break
                }
            }
            server = nil
            XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/ipi_\(name)"), "removed after a failure")
            _ = client
        }
    }

    /// A client that stops reading: a frame larger than the socket's buffer (480 KB) waited in
    /// `send` for ever, past the timeout and deaf to SIGINT.
    func testAClientThatStopsReadingTimesOutInsteadOfBlockingTheSend() throws {
        let atoms = 20_000
        var positions: [Vec3] = []
        for i in 0..<atoms {
            let x = Double(i % 30), y = Double((i / 30) % 30), z = Double(i / 900)
            positions.append(Vec3(x, y, z) * 3.5)
        }
        let big = Configuration(atomicNumbers: [Int](repeating: 18, count: atoms), positions: positions, cell: nil)
        let address = SocketAddress.unix(name: uniqueName())
        let server = try SocketPotential(address: address, timeout: 1)
        let client = try TestIPIClient(address, fault: .stopReadingAfterStatus) { positions, _ in (0, [Vec3](repeating: .zero, count: positions.count), .zero) }
        let started = Date()
        XCTAssertThrowsError(try server.compute(big)) { error in
            XCTAssertTrue("\(error)".contains("no room to send within 1.0 s"), "\(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 3)
        _ = client
    }

    func testNoClientTimesOutAStopRequestEndsTheWaitAndTheSocketFileIsNeverTakenOver() throws {
        let configuration = try crystal()
        let name = uniqueName()
        let lonely = try SocketPotential(address: .unix(name: name), timeout: 0.3)
        let started = Date()
        XCTAssertThrowsError(try lonely.compute(configuration)) { error in
            XCTAssertTrue("\(error)".contains("no client to connect within 0.3 s"), "\(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
        // The file exists while its server lives: a second server refuses it and leaves it.
        try withExtendedLifetime(lonely) {
            XCTAssertThrowsError(try SocketPotential(address: .unix(name: name))) { error in
                XCTAssertTrue("\(error)".contains("/tmp/ipi_\(name) exists; another run may be using it"), "\(error)")
            }
            XCTAssertTrue(FileManager.default.fileExists(atPath: "/tmp/ipi_\(name)"))
        }

        final class Flag: @unchecked Sendable { var raised = false }
        let stopWaiting = Flag()
        let waiting = try SocketPotential(address: .unix(name: uniqueName()), timeout: 60, stopRequested: { stopWaiting.raised })
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.2) { stopWaiting.raised = true }
        XCTAssertThrowsError(try waiting.compute(configuration)) { error in
            XCTAssertTrue(error is EvaluationStopped && "\(error)".contains("waiting for client to connect"), "\(error)")
        }
        let stop = Flag()
        let address = SocketAddress.unix(name: uniqueName())
        let slow = try SocketPotential(address: address, timeout: 60, stopRequested: { stop.raised })
        let client = try TestIPIClient(address, delay: 5) { positions, _ in (0, [Vec3](repeating: .zero, count: positions.count), .zero) }
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { stop.raised = true }
        let asked = Date()
        XCTAssertThrowsError(try slow.compute(configuration)) { error in XCTAssertTrue(error is EvaluationStopped, "\(error)") }
        XCTAssertLessThan(Date().timeIntervalSince(asked), 2, "the stop is seen while the client computes")
        _ = client
    }

    /// This program's own client against its own server, on a triclinic cell: the driver reads
    /// the cell's columns as the lattice vectors and writes the virial row by row (checked with
    /// an asymmetric one: the pair virial of Lennard-Jones is symmetric).
    func testTheDriverServesAPotentialToTheServerOverUnixAndTCP() throws {
        let configuration = try crystal()
        for overTCP in [false, true] {
            // The only reference, so that setting it to nil ends the server (and sends EXIT).
            var server: SocketPotential? = try overTCP ? tcpServer(timeout: 20) : SocketPotential(address: .unix(name: uniqueName()), timeout: 20)
            let address = try XCTUnwrap(server).address
            let driver = IPIDriver(address: address, potential: try XCTUnwrap(argon), atomicNumbers: configuration.atomicNumbers)
            final class Outcome: @unchecked Sendable { var answered: Result<IPIDriver.Ending, Error>?; let done = DispatchSemaphore(value: 0) }
            let outcome = Outcome()
            Thread { outcome.answered = Result { try driver.run(connectTimeout: 10) }; outcome.done.signal() }.start()
            var moved = configuration
            for _ in 0..<2 {
                assertAgree(try XCTUnwrap(server).compute(moved), try argon.compute(moved), "\(address)")
                moved.positions[3] += Vec3(0.03, 0.02, -0.04)
            }
            server = nil  // EXIT
            XCTAssertEqual(outcome.done.wait(timeout: .now() + 10), .success)
            XCTAssertEqual(try outcome.answered?.get(), IPIDriver.Ending(answered: 2, serverSentExit: true))
        }
        let address = SocketAddress.unix(name: uniqueName())
        let server = try SocketPotential(address: address, timeout: 20)
        let asymmetric = Mat3(Vec3(1, 2, 3), Vec3(4, 5, 6), Vec3(7, 8, 9.5))
        let fixed = FixedAnswer(ForceResult(energy: -2, forces: [Vec3](repeating: Vec3(0.1, 0.2, 0.3), count: configuration.count), virial: asymmetric))
        let driver = IPIDriver(address: address, potential: fixed, atomicNumbers: configuration.atomicNumbers)
        Thread { _ = try? driver.run(connectTimeout: 10) }.start()
        let virial = try server.compute(configuration).virial
        for (row, expected) in [(virial.rows.0, asymmetric.rows.0), (virial.rows.1, asymmetric.rows.1), (virial.rows.2, asymmetric.rows.2)] {
            XCTAssertLessThan(norm(row - expected), 1e-13)
        }
    }

    /// A driver told the structure is a molecule ignores the server's box (ASE sends its atoms'
    /// cell whatever their pbc); one that was told nothing computes periodic images and says so.
    /// A server that closes without EXIT (ASE's ends so) ends the conversation, reported as such.
    func testTheDriverIgnoresACellOnlyWhenToldAndAServerMayCloseWithoutExit() throws {
        let box = try Cell(matrix: Mat3(Vec3(7, 0, 0), Vec3(0, 7.5, 0), Vec3(0, 0, 8)), pbc: .all)
        let positions = [Vec3(1, 1, 1), Vec3(4.4, 1.2, 1.1), Vec3(2.5, 4.3, 1.4), Vec3(2.6, 2.5, 4.6)]
        let boxed = Configuration(atomicNumbers: [18, 18, 18, 18], positions: positions, cell: box)
        var molecule = boxed
        molecule.cell = nil
        let periodicEnergy = try argon.compute(boxed).energy, moleculeEnergy = try argon.compute(molecule).energy
        XCTAssertGreaterThan(abs(periodicEnergy - moleculeEnergy), 1e-3, "the images lie within the cutoff")
        final class Warnings: @unchecked Sendable { var said: [String] = [] }
        for (periodicity, told, expected) in [(Periodicity.none, true, moleculeEnergy), (.all, false, periodicEnergy)] {
            let address = SocketAddress.unix(name: uniqueName())
            var server: SocketPotential? = try SocketPotential(address: address, timeout: 20)
            let warnings = Warnings()
            let driver = IPIDriver(address: address, potential: try XCTUnwrap(argon), atomicNumbers: boxed.atomicNumbers,
                                   periodicity: periodicity, structureHasCell: told, warn: { warnings.said.append($0) })
            let done = DispatchSemaphore(value: 0)
            Thread { _ = try? driver.run(connectTimeout: 10); done.signal() }.start()
            for _ in 0..<2 { XCTAssertEqual(try XCTUnwrap(server).compute(boxed).energy, expected, accuracy: 1e-12) }
            server = nil
            XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
            XCTAssertEqual(warnings.said.count, told ? 0 : 1, "\(warnings.said)")
        }

        let name = uniqueName()
        let listener = try IPIWire.openSocket(for: .unix(name: name)) { bind($0, $1, $2) }
        defer { close(listener); unlink("/tmp/ipi_\(name)") }
        XCTAssertEqual(listen(listener, 1), 0)
        DispatchQueue.global().async { let client = accept(listener, nil, nil); close(client) }
        let driver = IPIDriver(address: .unix(name: name), potential: try XCTUnwrap(argon), atomicNumbers: [18])
        XCTAssertEqual(try driver.run(connectTimeout: 5), IPIDriver.Ending(answered: 0, serverSentExit: false))
    }

    func testTheClientIsToldToExitAndTheSocketFileIsRemovedAtTheEnd() throws {
        let configuration = try crystal()
        let name = uniqueName()
        var server: SocketPotential? = try SocketPotential(address: .unix(name: name), timeout: 20)
        let client = try TestIPIClient(.unix(name: name)) { positions, _ in (0, [Vec3](repeating: .zero, count: positions.count), .zero) }
        _ = try server?.compute(configuration)
        server = nil
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/ipi_\(name)"))
        XCTAssertTrue(client.waitForEnd(seconds: 5))
        XCTAssertTrue(client.receivedExit)
    }
}

/// An i-PI client on a thread of the test process.
final class TestIPIClient: @unchecked Sendable {
    enum Fault { case none, wrongAtomCount, nonFiniteEnergy, disconnectOnPositions, stopReadingAfterStatus }
    typealias Answer = (_ positions: [Vec3], _ cellBohr: [Double]) throws -> (energy: Double, forces: [Vec3], virial: Mat3)

    private let descriptor: Int32
    private let lock = NSLock()
    private var _lastCell: [Double]?, _lastInverse: [Double]?, _initializations = 0, _receivedExit = false
    private let ended = DispatchSemaphore(value: 0)

    var lastCellBohr: [Double]? { lock.withLock { _lastCell } }
    var lastInverseCellPerBohr: [Double]? { lock.withLock { _lastInverse } }
    var initializations: Int { lock.withLock { _initializations } }
    var receivedExit: Bool { lock.withLock { _receivedExit } }

    init(_ address: SocketAddress, needsInit: Bool = false, fault: Fault = .none, delay: Double = 0,
         answer: @escaping Answer) throws {
        descriptor = try Self.connect(address)
        let thread = Thread { [self] in
            serve(needsInit: needsInit, fault: fault, delay: delay, answer: answer)
            close(descriptor)
            ended.signal()
        }
        thread.start()
    }

    func waitForEnd(seconds: Double) -> Bool { ended.wait(timeout: .now() + seconds) == .success }

    private static func connect(_ address: SocketAddress) throws -> Int32 {
        try IPIWire.openSocket(for: address) { Glibc.connect($0, $1, $2) }
    }

    private func read(_ count: Int) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress.map { $0 + got }, count - got, 0) }
            if n <= 0 { return nil }
            got += n
        }
        return buffer
    }

    private func doubles(_ count: Int) -> [Double]? {
        read(8 * count).map { raw in (0..<count).map { i in raw.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8 * i, as: Double.self) } } }
    }

    private func int32() -> Int32? { read(4).map { raw in raw.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) } } }

    private func write(_ bytes: [UInt8]) { bytes.withUnsafeBytes { _ = send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }

    private func serve(needsInit: Bool, fault: Fault, delay: Double, answer: Answer) {
        var state = needsInit ? "NEEDINIT" : "READY"
        var pending: (energy: Double, forces: [Vec3], virial: Mat3)?
        // CODATA 2018, written out here so that a wrong constant in the program cannot cancel.
        let bohr = 0.529177210903, hartree = 27.211386245988
        while let header = read(12) {
            switch String(decoding: header, as: UTF8.self).trimmingCharacters(in: .whitespaces) {
            case "STATUS":
                write(IPIWire.header(state))
                if fault == .stopReadingAfterStatus {
                    Thread.sleep(forTimeInterval: 10)
                    return
                }
            case "INIT":
                guard let _ = int32(), let length = int32(), read(Int(length)) != nil else { return }
                lock.withLock { _initializations += 1 }
                state = "READY"
            case "POSDATA":
                guard let h = doubles(9), let inverse = doubles(9), let n = int32(), let flat = doubles(3 * Int(n)) else { return }
                lock.withLock { _lastCell = h; _lastInverse = inverse }
                if fault == .disconnectOnPositions { return }
                if delay > 0 { Thread.sleep(forTimeInterval: delay) }
                let positions = (0..<Int(n)).map { Vec3(flat[3 * $0], flat[3 * $0 + 1], flat[3 * $0 + 2]) * bohr }
                guard let result = try? answer(positions, h.map { $0 * bohr }) else { return }
                pending = result
                state = "HAVEDATA"
            case "GETFORCE":
                guard let result = pending else { return }
                var reply = IPIWire.header("FORCEREADY")
                reply += IPIWire.bytes(of: fault == .nonFiniteEnergy ? Double.nan : result.energy / hartree)
                let forces = fault == .wrongAtomCount ? Array(result.forces.dropLast()) : result.forces
                reply += IPIWire.bytes(of: Int32(forces.count))
                reply += IPIWire.bytes(of: forces.flatMap { [$0.x, $0.y, $0.z] }.map { $0 * bohr / hartree })
                // Row by row, as i-PI reads it and its Fortran drivers write it.
                let (r0, r1, r2) = result.virial.rows
                reply += IPIWire.bytes(of: [r0.x, r0.y, r0.z, r1.x, r1.y, r1.z, r2.x, r2.y, r2.z].map { $0 / hartree })
                let extra = Array("{\"note\": 1}".utf8)
                reply += IPIWire.bytes(of: Int32(extra.count)) + extra
                write(reply)
                pending = nil
                state = "READY"
            case "EXIT":
                lock.withLock { _receivedExit = true }
                return
            default:
                return
            }
        }
    }
}

/// A potential that gives the same answer for every configuration.
final class FixedAnswer: Potential {
    let name = "fixed"
    private let answer: ForceResult
    init(_ answer: ForceResult) { self.answer = answer }
    func compute(_ configuration: Configuration) throws -> ForceResult { answer }
}
